"""configure()'s structlog chain, on real structlog and stdlib loggers (no sockets).

Records are captured by a list handler on a private logger; what the sink
would get is the LogRecord's attributes.
"""

from __future__ import annotations

import logging
import sys

import pytest
import structlog

from netlog.client import FIELDS_ATTR, _caller_stacklevel, _carry_reserved

CHAIN = [_carry_reserved, _caller_stacklevel, structlog.stdlib.render_to_log_kwargs]


class ListHandler(logging.Handler):
    """Keeps every record it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def captured() -> ListHandler:
    return ListHandler()


def bound(stdlib_logger: logging.Logger, handler: ListHandler) -> structlog.stdlib.BoundLogger:
    stdlib_logger.addHandler(handler)
    stdlib_logger.setLevel(logging.DEBUG)
    stdlib_logger.propagate = False
    return structlog.wrap_logger(
        stdlib_logger, wrapper_class=structlog.stdlib.BoundLogger, processors=CHAIN
    )


@pytest.fixture
def plain(captured: ListHandler) -> structlog.stdlib.BoundLogger:
    """A plain ``logging.Logger``, as one made before LoggerFactory is."""
    return bound(logging.Logger("plain"), captured)  # noqa: LOG001 - private on purpose


@pytest.fixture
def factory_made(captured: ListHandler) -> structlog.stdlib.BoundLogger:
    """A logger from structlog's LoggerFactory (its own findCaller)."""
    structlog.stdlib.LoggerFactory()  # sets the logger class, process-wide
    try:
        made = logging.getLoggerClass()("factory")
    finally:
        logging.setLoggerClass(logging.Logger)
    return bound(made, captured)


def here() -> int:
    """The line number of the line calling it."""
    return sys._getframe(1).f_lineno


def helper(log: structlog.stdlib.BoundLogger) -> None:
    """A logging helper that asks for its caller's line, the stdlib way."""
    log.info("from helper", stacklevel=2)


class TestCarryReserved:
    """Keys LogRecord owns travel in one attribute, the others stay attributes."""

    def test_thread_and_name_are_carried_as_written(self, plain, captured):
        plain.info("event", thread=3, name="x", user="ada")
        (record,) = captured.records
        assert getattr(record, FIELDS_ATTR) == {"thread": 3, "name": "x"}
        assert record.user == "ada"  # type: ignore[attr-defined]
        assert record.name == "plain"
        assert record.thread != 3
        assert not hasattr(record, "thread_")

    def test_nothing_carried_when_nothing_clashes(self, plain, captured):
        plain.info("event", user="ada")
        assert not hasattr(captured.records[0], FIELDS_ATTR)

    def test_log_kwargs_still_reach_logging(self):
        event = _carry_reserved(None, "info", {"event": "e", "exc_info": True, "thread": 1})
        assert event == {"event": "e", "exc_info": True, FIELDS_ATTR: {"thread": 1}}


class TestCallerStacklevel:
    """The record's source is the line that called structlog, whatever the logger."""

    @pytest.mark.parametrize("logger", ["plain", "factory_made"])
    def test_each_method_records_this_line(self, logger, request, captured):
        log = request.getfixturevalue(logger)
        lines = [here() + 1]
        log.info("info")
        lines.append(here() + 1)
        log.log(logging.WARNING, "log")
        lines.append(here() + 4)
        try:
            _ = 1 / 0
        except ZeroDivisionError:
            log.exception("exception")
        sources = [(r.pathname, r.lineno, r.funcName) for r in captured.records]
        assert sources == [(__file__, line, "test_each_method_records_this_line") for line in lines]

    @pytest.mark.parametrize("logger", ["plain", "factory_made"])
    def test_a_helpers_stacklevel_is_kept(self, logger, request, captured):
        log = request.getfixturevalue(logger)
        line = here() + 1
        helper(log)
        (record,) = captured.records
        assert (record.lineno, record.funcName) == (line, "test_a_helpers_stacklevel_is_kept")

    def test_other_callers_are_left_alone(self):
        event = {"event": "e"}
        assert _caller_stacklevel(logging.Logger("x"), "info", event) == {"event": "e"}  # noqa: LOG001
