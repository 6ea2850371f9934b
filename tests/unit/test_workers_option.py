"""``--workers``: a count, or ``auto`` for one per core this process may run on."""

import os

import pytest

from netlog.settings import OPTIONS, OptionError, Settings

WORKERS = next(option for option in OPTIONS if option.name == "workers")


def test_default_is_one_process():
    assert Settings().workers == 1
    assert (WORKERS.flag, WORKERS.env) == ("--workers", "NETLOG_WORKERS")


@pytest.mark.parametrize("text", ["auto", "AUTO", " auto "])
def test_auto_is_the_cores_this_process_may_use(text):
    assert WORKERS.convert(text) == len(os.sched_getaffinity(0))


def test_a_count():
    assert WORKERS.convert("3") == 3


@pytest.mark.parametrize("text", ["0", "-2", "two", ""])
def test_not_a_count(text):
    with pytest.raises(OptionError):
        WORKERS.convert(text)
