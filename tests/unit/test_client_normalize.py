"""What the sink makes of the LogRecord attributes netlog.client and structlog send.

The user's keys that LogRecord owns come in one attribute (netlog.client's
FIELDS_ATTR) and land in ``fields`` as written; a source inside structlog or
logging is the library's line, never the application's, so it is replaced by
CallsiteParameterAdder's keys or dropped.
"""

import logging

from netlog.client import FIELDS_ATTR
from netlog.decode.normalize import Budget, from_logrecord

STRUCTLOG_BASE = "/venv/lib/python3.11/site-packages/structlog/_base.py"


def record(**attrs):
    """The dict SocketHandler pickles, with ``attrs`` over a real LogRecord's."""
    data = logging.makeLogRecord({"name": "app", "msg": "m", "levelname": "INFO"}).__dict__
    return {**data, "pathname": "/srv/app/billing.py", "lineno": 54, "funcName": "worker", **attrs}


def fields_of(data):
    return from_logrecord(data, "p", 1.0, Budget(1 << 22)).fields


class TestCarriedFields:
    """Keys LogRecord owns, carried by netlog.client, are fields under their own names."""

    def test_unpacked_as_written(self):
        fields = fields_of(record(**{FIELDS_ATTR: {"thread": 3, "name": "x"}, "user": "ada"}))
        assert fields["thread"] == 3
        assert fields["name"] == "x"
        assert fields["user"] == "ada"
        assert FIELDS_ATTR not in fields

    def test_not_a_dict_is_kept_as_it_came(self):
        assert fields_of(record(**{FIELDS_ATTR: "odd"}))[FIELDS_ATTR] == "odd"

    def test_a_field_already_there_wins(self):
        fields = fields_of(record(**{FIELDS_ATTR: {"_src": "x"}}))
        assert fields["_src"]["file"] == "/srv/app/billing.py"


class TestLibrarySource:
    """A source inside structlog or logging is replaced or dropped; the app's is kept."""

    def test_the_applications_source_is_kept(self):
        src = fields_of(record())["_src"]
        assert (src["file"], src["line"], src["func"]) == ("/srv/app/billing.py", 54, "worker")

    def test_structlogs_line_is_dropped(self):
        src = fields_of(record(pathname=STRUCTLOG_BASE, funcName="_proxy_to_logger"))["_src"]
        assert not {"file", "line", "func"} & set(src)
        assert src["thread"] == "MainThread"

    def test_loggings_own_file_is_dropped(self):
        path = "/usr/lib/python3.11/logging/__init__.py"
        assert "file" not in fields_of(record(pathname=path))["_src"]

    def test_callsite_keys_replace_it(self):
        data = record(
            pathname=STRUCTLOG_BASE,
            func_name="worker",
            **{FIELDS_ATTR: {"pathname": "/srv/app/billing.py", "lineno": 54}},
        )
        src = fields_of(data)["_src"]
        assert (src["file"], src["line"], src["func"]) == ("/srv/app/billing.py", 54, "worker")

    def test_nothing_left_means_no_source(self):
        data = record(pathname=STRUCTLOG_BASE, process=None, threadName=None, taskName=None)
        assert "_src" not in fields_of(data)

    def test_an_app_package_named_like_a_library_is_kept(self):
        path = "/srv/app/logging/formatting.py"
        assert fields_of(record(pathname=path))["_src"]["file"] == path

    def test_a_users_own_src_value_is_left_alone(self):
        assert fields_of(record(pathname=STRUCTLOG_BASE, _src="mine"))["_src"] == "mine"
