"""netlog.client from real application processes to a real sink."""

import os
import socket
import subprocess
import sys
import textwrap

import pytest

from netlogproc import HOST, ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def app(code: str, *args: str, env=None) -> subprocess.Popen:
    """An application process running ``code``; it reads go-ahead lines on stdin."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def expect_line(proc: subprocess.Popen, text: str) -> None:
    line = proc.stdout.readline().strip()
    assert line == text, (line, proc.stderr.read() if proc.poll() is not None else "")


def finish(proc: subprocess.Popen, timeout: float = 30) -> str:
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return err


BEFORE_AND_AFTER = """
    import logging, sys, threading
    from netlog.client import SinkHandler
    handler = SinkHandler("127.0.0.1", int(sys.argv[1]), capacity=int(sys.argv[2]))
    log = logging.getLogger("app")
    log.addHandler(handler)
    log.setLevel(logging.INFO)

    def burst(thread, start, count):
        for i in range(start, start + count):
            log.info("t%d n%d", thread, i, extra={"thread_no": thread, "n": i})

    def phase(start, count):
        threads = [threading.Thread(target=burst, args=(t, start, count)) for t in range(2)]
        for t in threads: t.start()
        for t in threads: t.join()

    phase(0, int(sys.argv[3]))
    print("phase one logged", flush=True)
    sys.stdin.readline()
    phase(int(sys.argv[3]), int(sys.argv[4]))
    # exits without calling close(): atexit must deliver what is queued
"""


class TestSinkHandler:
    """Records survive a sink that is late, and the app's exit."""

    def test_records_logged_before_the_sink_exists_arrive_in_order(self, netlog_factory):
        port = free_port()
        proc = app(BEFORE_AND_AFTER, str(port), "10000", "500", "500")  # 2 threads x 500 each
        expect_line(proc, "phase one logged")
        server = netlog_factory("--log-tcp-port", str(port))
        proc.stdin.write("go\n")
        proc.stdin.flush()
        finish(proc)
        records = server.wait_records(2000)
        assert len(records) == 2000
        for thread in range(2):
            seen = [r["fields"]["n"] for r in records if r["fields"].get("thread_no") == thread]
            assert seen == list(range(1000))

    def test_full_buffer_drops_the_oldest_and_reports_the_count(self, netlog_factory):
        port = free_port()
        # 2 threads x 125 while the sink is down, room for 100; then 2 x 25.
        proc = app(BEFORE_AND_AFTER, str(port), "100", "125", "25")
        expect_line(proc, "phase one logged")
        server = netlog_factory("--log-tcp-port", str(port))
        records = server.wait_records(101)  # the drop report and what was kept
        proc.stdin.write("go\n")
        proc.stdin.flush()
        finish(proc)
        records = server.wait_records(151)
        warnings = [r for r in records if r["logger"] == "netlog.client"]
        assert len(warnings) == 1
        assert warnings[0]["level"] == "warning"
        assert warnings[0]["fields"]["dropped"] == 150
        assert "150" in warnings[0]["message"]
        kept = [r for r in records if r["logger"] == "app"]
        assert len(kept) == 100 + 50
        # Per thread, what survived of phase one is its newest records:
        # the oldest were dropped first.
        for thread in range(2):
            ns = sorted(
                r["fields"]["n"]
                for r in kept
                if r["fields"]["thread_no"] == thread and r["fields"]["n"] < 125
            )
            assert ns == list(range(125 - len(ns), 125))

    def test_log_and_exit_at_once_loses_nothing(self, netlog):
        code = """
            import logging, sys
            from netlog.client import SinkHandler
            log = logging.getLogger("quick")
            log.addHandler(SinkHandler("127.0.0.1", int(sys.argv[1])))
            for i in range(300):
                log.warning("quick %d", i)
        """
        finish(app(code, str(netlog.ports["log_tcp"])))
        records = netlog.wait_records(300)
        assert [r["message"] for r in records] == [f"quick {i}" for i in range(300)]

    def test_json_wire(self, netlog):
        code = """
            import logging, sys
            from netlog.client import SinkHandler
            log = logging.getLogger("jsonwire")
            log.addHandler(SinkHandler("127.0.0.1", int(sys.argv[1]), wire="json"))
            log.error("as json", extra={"user": "ada"})
        """
        finish(app(code, str(netlog.ports["log_tcp"])))
        (record,) = netlog.wait_records(1)
        assert record["format"] == "json"
        assert record["level"] == "error"
        assert record["logger"] == "jsonwire"
        assert record["fields"]["user"] == "ada"

    def test_gevent_monkey_patched_app(self, netlog):
        code = """
            from gevent import monkey; monkey.patch_all()
            import logging, sys
            import gevent
            from netlog.client import SinkHandler
            log = logging.getLogger("green")
            log.addHandler(SinkHandler("127.0.0.1", int(sys.argv[1])))
            log.setLevel(logging.INFO)
            def work(g):
                for i in range(50):
                    log.info("g%d %d", g, i)
                    gevent.sleep(0)
            gevent.joinall([gevent.spawn(work, g) for g in range(4)])
        """
        finish(app(code, str(netlog.ports["log_tcp"])))
        records = netlog.wait_records(200)
        assert len(records) == 200
        assert {r["logger"] for r in records} == {"green"}


class TestConfigure:
    """One call points stdlib logging and structlog at the sink."""

    def test_structlog_key_values_arrive_as_fields(self, netlog):
        code = """
            import logging, structlog
            from netlog.client import configure
            configure(service="billing")
            structlog.get_logger("billing.api").info("charged", amount=12.5, user="ada", name="x")
            logging.getLogger("plain").warning("stdlib too")
        """
        address = f"{HOST}:{netlog.ports['log_tcp']}"
        finish(app(code, env={"NETLOG_ADDRESS": address}))
        records = {r["message"]: r for r in netlog.wait_records(2)}
        charged = records["charged"]
        assert charged["logger"] == "billing.api"
        assert charged["level"] == "info"
        assert charged["fields"]["amount"] == 12.5
        assert charged["fields"]["user"] == "ada"
        assert charged["fields"]["name"] == "x"  # as written, though LogRecord owns "name"
        assert "name_" not in charged["fields"]
        assert charged["fields"]["service"] == "billing"
        assert records["stdlib too"]["fields"]["service"] == "billing"
        assert records["stdlib too"]["level"] == "warning"

    def test_level_filters(self, netlog):
        code = """
            import logging, sys
            from netlog.client import configure
            configure(sys.argv[1], level="WARNING", structlog=False)
            logging.getLogger("x").info("hidden")
            logging.getLogger("x").error("shown")
        """
        finish(app(code, f"{HOST}:{netlog.ports['log_tcp']}"))
        netlog.wait_records(1)
        assert [r["message"] for r in netlog.records()] == ["shown"]
        assert netlog.records()[0]["fields"]["service"] == "-c"


def app_file(tmp_path, code: str) -> str:
    """``code`` as a file of its own, so a record's source is a real path and line."""
    path = tmp_path / "billing.py"
    path.write_text(textwrap.dedent(code).lstrip())
    return str(path)


def line_of(path: str, text: str) -> int:
    """The 1-based number of the line of ``path`` containing ``text``."""
    with open(path) as file:  # noqa: PTH123
        return next(n for n, line in enumerate(file, 1) if text in line)


class TestUserKeys:
    """structlog keys LogRecord owns arrive in fields as written (issue 17, item 4)."""

    CODE = """
        import logging, sys, structlog
        from netlog.client import configure
        configure(sys.argv[1], wire=sys.argv[2])
        log = structlog.get_logger("worker")
        log.info("picked up", thread=3, process="billing", name="x", msg="m", lineno=7)
        log.info("other", thread=4)
    """

    @pytest.mark.parametrize("wire", ["pickle", "json"])
    def test_thread_key_is_kept_and_found_by_tail(self, netlog, wire):
        finish(app(self.CODE, f"{HOST}:{netlog.ports['log_tcp']}", wire))
        records = {r["message"]: r for r in netlog.wait_records(2)}
        fields = records["picked up"]["fields"]
        assert fields["thread"] == 3
        assert fields["process"] == "billing"
        assert fields["name"] == "x"
        assert fields["msg"] == "m"
        assert fields["lineno"] == 7
        assert not [key for key in fields if key.endswith("_") or key.startswith("netlog")]
        assert records["picked up"]["logger"] == "worker"
        found = netlog_cli("tail", str(netlog.log_dir), "--field", "thread=3")
        assert found.returncode == 0, found.stderr
        assert "picked up" in found.stdout
        assert "other" not in found.stdout


class TestSourceLocations:
    """A record's source is the application's line, or absent: never a library's (item 3)."""

    def test_configure_records_the_callers_line(self, netlog, tmp_path):
        path = app_file(
            tmp_path,
            """
            import logging, sys
            import structlog
            logging.getLogger("early")  # a plain Logger, made before configure()
            from netlog.client import configure
            configure(sys.argv[1])

            def charge():
                structlog.get_logger("early").info("early logger")
                structlog.get_logger("late").warning("late logger")
                structlog.get_logger("early").log(logging.ERROR, "by level")
                try:
                    1 / 0
                except ZeroDivisionError:
                    structlog.get_logger("early").exception("failed")
                logging.getLogger("plain").info("stdlib")

            charge()
            """,
        )
        proc = subprocess.run(
            [sys.executable, path, f"{HOST}:{netlog.ports['log_tcp']}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        records = {r["message"]: r for r in netlog.wait_records(5)}
        for message, text in [
            ("early logger", '"early").info'),
            ("late logger", '"late").warning'),
            ("by level", '"by level"'),
            ("failed", '"failed"'),
            ("stdlib", '"stdlib"'),
        ]:
            src = records[message]["fields"]["_src"]
            assert (src["file"], src["line"], src["func"]) == (path, line_of(path, text), "charge")

    def test_demo_records_its_own_lines(self, netlog):
        demo = subprocess.run(
            [sys.executable, "-m", "netlog.demo"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={
                **os.environ,
                "NETLOG_DEMO_HOST": HOST,
                "NETLOG_DEMO_PORT": str(netlog.ports["log_tcp"]),
                "NETLOG_DEMO_COUNT": "3",
                "NETLOG_DEMO_INTERVAL": "0.01",
            },
        )
        assert demo.returncode == 0, demo.stderr
        records = {r["fields"]["via"]: r for r in netlog.wait_records(3)}
        demo_py = str(ROOT / "netlog" / "demo.py")
        for via in ("stdlib", "structlog.stdlib"):
            src = records[via]["fields"]["_src"]
            assert (src["file"], src["func"]) == (demo_py, "_log"), via
        assert "_src" not in records["structlog.json"]["fields"]  # it sends none

    STRUCTLOG_VIA_STDLIB = """
        import logging, logging.handlers, sys
        import structlog
        stdlib = logging.getLogger("via.stdlib")
        stdlib.addHandler(logging.handlers.SocketHandler("127.0.0.1", int(sys.argv[1])))
        stdlib.setLevel(logging.INFO)
        stdlib.propagate = False
        adder = structlog.processors.CallsiteParameterAdder(
            [structlog.processors.CallsiteParameter.FUNC_NAME]
        )
        chain = [structlog.stdlib.render_to_log_kwargs]
        bare = structlog.wrap_logger(stdlib, wrapper_class=structlog.stdlib.BoundLogger,
                                     processors=chain)
        with_func = structlog.wrap_logger(stdlib, wrapper_class=structlog.stdlib.BoundLogger,
                                          processors=[adder, *chain])

        def handle_order():
            bare.info("bare")
            with_func.info("with callsite")
            stdlib.info("stdlib")
            logging.shutdown()

        handle_order()
    """

    def test_sink_never_records_a_library_line(self, netlog):
        """structlog through a plain stdlib logger, no netlog on the sending side."""
        finish(app(self.STRUCTLOG_VIA_STDLIB, str(netlog.ports["log_tcp"])))
        records = {r["message"]: r for r in netlog.wait_records(3)}
        bare = records["bare"]["fields"]["_src"]
        assert not {"file", "line", "func"} & set(bare)  # structlog/_base.py dropped
        assert bare["thread"] == "MainThread"
        with_func = records["with callsite"]["fields"]
        assert with_func["_src"]["func"] == "handle_order"  # CallsiteParameterAdder's
        assert "file" not in with_func["_src"]
        stdlib = records["stdlib"]["fields"]["_src"]
        assert (stdlib["file"], stdlib["func"]) == ("<string>", "handle_order")

    def test_send_records_no_source(self, netlog):
        done = netlog_cli("send", "--address", f"{HOST}:{netlog.ports['log_tcp']}", "from a shell")
        assert done.returncode == 0, done.stderr
        (record,) = netlog.wait_records(1)
        assert record["message"] == "from a shell"
        assert record["fields"] == {}


def netlog_cli(*args, stdin="", timeout=30):
    """The netlog command line, run the way the console script runs it."""
    code = "import sys; from netlog.cli.main import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


class TestCommands:
    """`netlog send` and `netlog probe`, with their exit statuses."""

    def test_send_from_stdin(self, netlog):
        address = f"{HOST}:{netlog.ports['log_tcp']}"
        done = netlog_cli(
            "send",
            "--address",
            address,
            "--level",
            "warning",
            "--logger",
            "deploy",
            stdin="deployed v1\nmigrated\n",
        )
        assert done.returncode == 0, done.stderr
        records = netlog.wait_records(2)
        assert [r["message"] for r in records] == ["deployed v1", "migrated"]
        assert {r["level"] for r in records} == {"warning"}
        assert {r["logger"] for r in records} == {"deploy"}

    def test_send_from_arguments(self, netlog):
        address = f"{HOST}:{netlog.ports['log_tcp']}"
        done = netlog_cli("send", "--address", address, "hello", "world")
        assert done.returncode == 0, done.stderr
        assert netlog.wait_records(1)[0]["message"] == "hello world"

    def test_send_fails_when_undeliverable(self):
        done = netlog_cli("send", "--address", f"{HOST}:{free_port()}", "--timeout", "0.5", "x")
        assert done.returncode == 1
        assert len(done.stderr.strip().splitlines()) == 1
        assert "could not deliver" in done.stderr

    def test_probe_pong(self, netlog):
        done = netlog_cli("probe", f"{HOST}:{netlog.ports['responder']}")
        assert done.returncode == 0, done.stderr
        assert "pong" in done.stdout

    def test_probe_no_answer(self):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
            silent.bind((HOST, 0))  # bound, never answers
            port = silent.getsockname()[1]
            done = netlog_cli("probe", f"{HOST}:{port}", "--timeout", "0.2", "--retries", "1")
        assert done.returncode == 1
        assert "no pong" in done.stderr

    @pytest.mark.parametrize("args", [["probe", "host:notaport"], ["send", "--level", "loud", "x"]])
    def test_bad_arguments_exit_2(self, args):
        done = netlog_cli(*args)
        assert done.returncode == 2
        assert len(done.stderr.strip().splitlines()) == 1
