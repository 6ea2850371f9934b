"""netlog tail on real files in tmp_path, called in-process (no subprocess).

The filters alone are in test_query_filter.py, the store reader alone in
test_store_reader.py.
"""

import json
import time

import pytest
from recordkit import rec

from netlog.cli.main import main
from netlog.store import reader as reader_module
from netlog.store.writer import FILE_NAME, JsonlFileSink


def write(directory, records, **options):
    sink = JsonlFileSink(directory, **options)
    sink.open()
    sink.write(records)
    sink.flush()
    sink.close()


def tail(capsys, *args):
    status = main(["tail", *map(str, args), "--color", "never"])
    out, err = capsys.readouterr()
    return status, out, err


def tail_json(capsys, *args):
    status, out, err = tail(capsys, *args, "--json")
    assert status == 0, err
    return [json.loads(line) for line in out.splitlines()], err


def ids(records):
    return [r["fields"]["i"] for r in records]


class TestReading:
    """What `netlog tail` prints from the files on disk."""

    def test_default_is_the_last_ten_oldest_first_across_rotation(self, tmp_path, capsys):
        write(tmp_path, [rec(i) for i in range(40)], max_bytes=1000, backups=10)
        assert len(list(tmp_path.glob(FILE_NAME + ".*"))) >= 2
        records, _ = tail_json(capsys, tmp_path)
        assert ids(records) == list(range(30, 40))

    def test_all_and_counts(self, tmp_path, capsys):
        write(tmp_path, [rec(i) for i in range(40)], max_bytes=1000, backups=10)
        assert ids(tail_json(capsys, tmp_path, "-n", "all")[0]) == list(range(40))
        assert ids(tail_json(capsys, tmp_path, "-n", "25")[0]) == list(range(15, 40))
        assert tail_json(capsys, tmp_path, "-n", "0")[0] == []

    def test_long_lines_across_read_blocks(self, tmp_path, capsys):
        records = [rec(i, message=str(i) * (30_000 + i)) for i in range(12)]
        write(tmp_path, records)
        found, _ = tail_json(capsys, tmp_path, "-n", "5")
        assert ids(found) == list(range(7, 12))
        assert found[0]["message"] == "7" * 30_007

    def test_half_written_last_line_is_not_printed(self, tmp_path, capsys):
        write(tmp_path, [rec(1), rec(2)])
        with (tmp_path / FILE_NAME).open("ab") as handle:
            handle.write(b'{"ts": "2023-11-14T22:13:20Z", "message": "half')
        status, out, err = tail(capsys, tmp_path, "--json")
        assert (status, err) == (0, "")
        assert ids(json.loads(line) for line in out.splitlines()) == [1, 2]

    def test_rotation_between_listing_and_opening(self, tmp_path, capsys, monkeypatch):
        sink = JsonlFileSink(tmp_path, max_bytes=600, backups=10)
        sink.open()
        sink.write([rec(i) for i in range(6)])
        sink.flush()
        real = reader_module._open_listed
        calls = []

        def rotate_after_listing(paths, current):
            calls.append(list(paths))
            if len(calls) == 1:  # the sink rotates between the listing and the opens
                for i in range(6, 12):
                    sink.write([rec(i)])
                    sink.flush()
            return real(paths, current)

        monkeypatch.setattr(reader_module, "_open_listed", rotate_after_listing)
        assert ids(tail_json(capsys, tmp_path, "-n", "all")[0]) == list(range(12))
        assert len(calls) == 2
        sink.close()

    def test_a_single_file_can_be_named(self, tmp_path, capsys):
        write(tmp_path, [rec(1), rec(2)])
        assert ids(tail_json(capsys, tmp_path / FILE_NAME)[0]) == [1, 2]

    def test_bad_lines_are_skipped_and_counted(self, tmp_path, capsys):
        write(tmp_path, [rec(1)])
        with (tmp_path / FILE_NAME).open("ab") as handle:
            handle.write(b"not json\n[1, 2]\n\n\xff\xfe\n")
        write(tmp_path, [rec(2)])
        status, out, err = tail(capsys, tmp_path, "--json", "-n", "all")
        assert status == 0
        assert ids(json.loads(line) for line in out.splitlines()) == [1, 2]
        assert err == "netlog tail: skipped 3 lines that were not JSON records\n"
        assert "Traceback" not in err

    def test_one_bad_line_is_counted_in_the_singular(self, tmp_path, capsys):
        write(tmp_path, [rec(1)])
        with (tmp_path / FILE_NAME).open("ab") as handle:
            handle.write(b"not json\n")
        status, _, err = tail(capsys, tmp_path, "--json")
        assert (status, err) == (0, "netlog tail: skipped 1 line that was not a JSON record\n")

    def test_pretty_output_escapes_controls(self, tmp_path, capsys):
        write(
            tmp_path,
            [rec(1, message="evil\x1b]0;pwned\x07\nforged line", exc="Traceback:\n  \x1b[2Jboom")],
        )
        status, out, _ = tail(capsys, tmp_path)
        assert status == 0
        assert "\x1b" not in out
        assert "\x07" not in out
        lines = out.splitlines()
        assert "evil\\x1b]0;pwned\\x07\\nforged line" in lines[0]
        assert lines[1:] == ["    Traceback:", "      \\x1b[2Jboom"]
        assert "2023-11-14T22:13:21.000000Z" in lines[0]

    def test_colours_on_request(self, tmp_path, capsys):
        write(tmp_path, [rec(1, level="error")])
        main(["tail", str(tmp_path), "--color", "always"])
        assert "\x1b[" in capsys.readouterr().out

    def test_json_output_escapes_raw_terminal_controls_of_foreign_files(self, tmp_path, capsys):
        message = "csi \u009b31m and \u2028 sep"
        line = '{"ts": "2023-11-14T22:13:20Z", "message": "' + message + '", "fields": {"i": 0}}\n'
        (tmp_path / FILE_NAME).write_text(line, encoding="utf-8")
        status, out, _ = tail(capsys, tmp_path, "--json")
        assert status == 0
        assert "\u009b" not in out
        assert "\u2028" not in out
        assert json.loads(out)["message"] == message

    def test_json_output_escapes_a_raw_del_in_an_ascii_line(self, tmp_path, capsys):
        line = '{"ts": "2023-11-14T22:13:20Z", "message": "del \x7f here", "fields": {"i": 0}}\n'
        (tmp_path / FILE_NAME).write_text(line, encoding="utf-8")
        status, out, _ = tail(capsys, tmp_path, "--json")
        assert status == 0
        assert "\x7f" not in out
        assert "\\u007f" in out
        assert json.loads(out)["message"] == "del \x7f here"


SRC = {
    "file": "/tmp/app/billing.py",
    "line": 54,
    "func": "worker",
    "process": 27930,
    "thread": "worker-0",
}


class TestSource:
    """Where a LogRecord was made: short by default, after the fields; --src and the env."""

    @pytest.fixture
    def logs(self, tmp_path):
        write(tmp_path, [rec(1, fields={"_src": SRC, "amount": 12.5})])
        return tmp_path

    def test_short_by_default(self, logs, capsys, monkeypatch):
        monkeypatch.delenv("NETLOG_CONSOLE_SRC", raising=False)
        status, out, _ = tail(capsys, logs)
        assert status == 0
        assert "_src" not in out
        assert "{'" not in out
        assert "i=1 amount=12.5 billing.py:54 in worker peer=127.0.0.1:5000/json" in out

    @pytest.mark.parametrize(
        ("args", "env", "shown"),
        [
            (
                ["--src", "full"],
                None,
                "/tmp/app/billing.py:54 in worker, thread worker-0, pid 27930",
            ),
            (["--src", "OFF"], None, "amount=12.5 peer="),
            ([], "off", "amount=12.5 peer="),
            ([], "full", "/tmp/app/billing.py:54"),
            (["--src", "short"], "full", "amount=12.5 billing.py:54 in worker peer="),
        ],
    )
    def test_chosen(self, logs, capsys, monkeypatch, args, env, shown):
        if env is None:
            monkeypatch.delenv("NETLOG_CONSOLE_SRC", raising=False)
        else:
            monkeypatch.setenv("NETLOG_CONSOLE_SRC", env)
        status, out, _ = tail(capsys, logs, *args)
        assert status == 0
        assert shown in out
        if "off" in (env, *args) or "OFF" in args:
            assert "billing" not in out

    def test_json_keeps_the_stored_source(self, logs, capsys):
        records, _ = tail_json(capsys, logs, "--src", "off")
        assert records[0]["fields"]["_src"] == SRC

    def test_bad_environment_value(self, logs, capsys, monkeypatch):
        monkeypatch.setenv("NETLOG_CONSOLE_SRC", "loud")
        assert main(["tail", str(logs)]) == 2
        err = capsys.readouterr().err
        assert err == (
            "netlog tail: error: environment variable NETLOG_CONSOLE_SRC: "
            "'loud' is not one of short, full, off\n"
        )

    def test_a_bad_serve_variable_is_not_tails_business(self, logs, capsys, monkeypatch):
        monkeypatch.setenv("NETLOG_MAX_BYTES", "10XB")
        status, out, err = tail(capsys, logs)
        assert (status, err) == (0, "")
        assert "billing.py:54" in out


class TestFilters:
    """Every filter through the command line."""

    @pytest.fixture
    def logs(self, tmp_path):
        records = [
            rec(0, level="debug", logger="app", message="starting up"),
            rec(
                1,
                level="info",
                logger="app.db",
                message="Connected to DB",
                fields={"user": "ada", "n": 5},
            ),
            rec(2, level="warning", logger="apple", message="slow query", fields={"user": "bob"}),
            rec(
                3,
                level="error",
                logger="app.web",
                message="request failed",
                fields={"user": "ada", "ok": False},
            ),
            rec(4, level="critical", logger="other", message="disk full"),
            rec(5, level="notice", logger="sys", message="odd level"),
            rec(6, level="level 35", logger="app", message="numbered level"),
            rec(7, level="chatty", logger="app", message="unknown level"),
        ]
        write(tmp_path, records)
        return tmp_path

    @pytest.mark.parametrize(
        ("args", "expected"),
        [
            ([], list(range(8))),
            (["--level", "debug"], list(range(8))),
            (["--level", "info"], [1, 2, 3, 4, 5, 6, 7]),
            (["--level", "warning"], [2, 3, 4, 6]),
            (["--level", "WARN"], [2, 3, 4, 6]),
            (["--level", "error"], [3, 4]),
            (["--level", "critical"], [4]),
            (["--level", "25"], [2, 3, 4, 5, 6]),
            (["--logger", "app"], [0, 1, 3, 6, 7]),
            (["--logger", "app.db", "--logger", "other"], [1, 4]),
            (["--logger", "app.web.handlers"], []),
            (["--grep", "DB"], [1]),
            (["--grep", "level"], [5, 6, 7]),
            (["--grep", "^s", "--regex"], [0, 2]),
            (["--grep", "^s"], []),
            (["--field", "user=ada"], [1, 3]),
            (["--field", "user=ada", "--field", "n=5"], [1]),
            (["--field", "ok=false"], [3]),
            (["--field", "format=json", "--level", "critical"], [4]),
            (["--since", "2023-11-14T22:13:23Z"], [3, 4, 5, 6, 7]),
            (["--since", "2023-11-14T23:13:25+01:00"], [5, 6, 7]),
            (["--logger", "app", "--level", "warning", "--field", "user=ada"], [3]),
            (["-n", "2", "--logger", "app"], [6, 7]),
        ],
    )
    def test_filter(self, logs, capsys, args, expected):
        records, _ = tail_json(capsys, logs, "-n", "all", *args)
        assert ids(records) == expected

    def test_since_duration(self, tmp_path, capsys):
        now = time.time()
        write(tmp_path, [rec(0, ts=now - 7200), rec(1, ts=now - 1800), rec(2, ts=now - 5)])
        assert ids(tail_json(capsys, tmp_path, "--since", "1h")[0]) == [1, 2]
        assert ids(tail_json(capsys, tmp_path, "--since", "1m")[0]) == [2]


class TestBadArguments:
    """One line on stderr, exit 2."""

    @pytest.mark.parametrize(
        ("args", "words"),
        [
            (["--level", "loud"], ["--level", "loud"]),
            (["-n", "lots"], ["-n", "lots"]),
            (["-n", "-3"], ["-3"]),
            (["--since", "yesterday"], ["--since", "yesterday"]),
            (["--field", "novalue"], ["--field", "KEY=VALUE"]),
            (["--color", "pink"], ["--color", "pink"]),
            (["--src", "long"], ["--src", "long"]),
            (["--grep", "(", "--regex"], ["--grep", "regular expression"]),
            (["--no-such"], ["--no-such"]),
        ],
    )
    def test_bad(self, tmp_path, capsys, args, words):
        write(tmp_path, [rec(1)])
        try:
            status = main(["tail", str(tmp_path), *args])
        except SystemExit as exc:
            status = exc.code
        assert status == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1, err
        for word in words:
            assert word in err

    def test_missing_dir(self, tmp_path, capsys):
        assert main(["tail", str(tmp_path / "nope")]) == 2
        err = capsys.readouterr().err
        assert err.strip().splitlines() == [
            f"netlog tail: error: {tmp_path / 'nope'} is not a log dir or a file"
        ]

    def test_environment_names_the_dir(self, tmp_path, capsys, monkeypatch):
        write(tmp_path, [rec(1)])
        monkeypatch.setenv("NETLOG_LOG_DIR", str(tmp_path))
        assert ids(tail_json(capsys)[0]) == [1]

    def test_log_dir_option_as_serve_spells_it(self, tmp_path, capsys, monkeypatch):
        write(tmp_path, [rec(5)])
        monkeypatch.setenv("NETLOG_LOG_DIR", str(tmp_path / "elsewhere"))
        assert ids(tail_json(capsys, "--log-dir", tmp_path)[0]) == [5]
        assert ids(tail_json(capsys, f"--log-dir={tmp_path}")[0]) == [5]
        assert ids(tail_json(capsys, tmp_path, "--log-dir", f"{tmp_path}/")[0]) == [5]

    def test_two_different_log_dirs_are_refused(self, tmp_path, capsys):
        write(tmp_path / "a", [rec(1)])
        write(tmp_path / "b", [rec(2)])
        assert main(["tail", str(tmp_path / "a"), "--log-dir", str(tmp_path / "b")]) == 2
        out, err = capsys.readouterr()
        assert out == ""
        assert err == (
            f"netlog tail: error: two log dirs: {tmp_path / 'a'} and --log-dir {tmp_path / 'b'};"
            " give one\n"
        )

    def test_default_dir_is_netlog_data(self, tmp_path, capsys, monkeypatch):
        write(tmp_path / "netlog-data", [rec(4)])
        monkeypatch.delenv("NETLOG_LOG_DIR", raising=False)
        monkeypatch.chdir(tmp_path)
        assert ids(tail_json(capsys)[0]) == [4]
