"""describe_exception: one line for an unexpected exception, never a traceback."""

from netlog.report import EXCEPTION_TEXT, Reporter, describe_exception


def _fail(message: str) -> None:
    raise ValueError(message)


def _raise(message: str) -> BaseException:
    try:
        _fail(message)
    except ValueError as exc:
        return exc
    raise AssertionError


class TestDescribeException:
    """Type, message and where it was raised, on one line."""

    def test_type_message_and_place(self):
        text = describe_exception(_raise("bad level"))
        assert text.startswith("ValueError: bad level (")
        assert "test_report.py:" in text
        assert text.endswith(" in _fail)")
        assert "\n" not in text

    def test_long_message_is_cut(self):
        text = describe_exception(_raise("x" * 10_000))
        assert len(text) < EXCEPTION_TEXT + 200
        assert "x" * EXCEPTION_TEXT + "..." in text

    def test_never_raised(self):
        assert describe_exception(KeyError("k")) == "KeyError: 'k'"

    def test_reported_once_per_key(self):
        lines: list[str] = []

        class Stream:
            def write(self, text: str) -> None:
                lines.append(text)

            def flush(self) -> None:
                pass

        report = Reporter(Stream())
        for _ in range(315):
            report(f"dropped: {describe_exception(_raise('bug'))}", key="internal_error")
        assert len(lines) == 1
