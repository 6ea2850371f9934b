"""How a container's printed line becomes a record (Docker's drivers carry only the stream)."""

from __future__ import annotations

import collections

import pytest

from netlog.decode.container import container_line, leading_level


def _line(text: bytes, stream: str | None) -> tuple[str, str]:
    record = container_line(text, stream, "c:1", 1.0, notes=collections.Counter(), fmt="fluent")
    assert record is not None
    assert record.format == "fluent"
    return record.level, record.message


@pytest.mark.parametrize(
    ("line", "level"),
    [
        (b"INFO:root:started", "info"),
        (b"WARNING:app.db:slow query", "warning"),
        (b"[error] boom", "error"),
        (b"level=warn msg=x", "warn"),
        (b"2026/11/30 plain go log line", None),
        (b"Information is free", None),
    ],
)
def test_a_leading_level_word_is_recognised(line: bytes, level: str | None) -> None:
    assert leading_level(line) == level


def test_stderr_without_a_level_word_is_error_and_stdout_is_info() -> None:
    assert _line(b"disk is on fire", "stderr") == ("error", "disk is on fire")
    assert _line(b"listening on :80", "stdout") == ("info", "listening on :80")


def test_python_logging_on_stderr_keeps_its_own_level() -> None:
    assert _line(b"INFO:uvicorn:started", "stderr")[0] == "info"


def test_a_json_line_says_its_own_level_whatever_the_stream() -> None:
    level, message = _line(b'{"level": "info", "msg": "ready"}', "stderr")
    assert (level, message) == ("info", "ready")


def test_a_blank_line_is_no_record() -> None:
    assert (
        container_line(b"  ", "stdout", "c:1", 1.0, notes=collections.Counter(), fmt="gelf") is None
    )


def test_text_that_only_looks_like_json_takes_the_stream_level() -> None:
    assert _line(b"{not json", "stderr") == ("error", "{not json")
