"""Other languages' JSON loggers, each from a line its own documentation shows.

Every line below is copied from the logger's README, docs or reference
output (the source is cited above it), then fed to the one JSON-line
decision every transport uses (``json_or_text``), and the record is checked
key by key: what a user of that logger expects as ts, level, logger,
message and exc, and that everything else stayed in fields.
"""

import collections
import datetime as dt
import math

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netlog.decode.conventions import MAX_RENDERED
from netlog.decode.formats import json_or_text
from netlog.levels import level_rank

RECEIVED = 1_900_000_000.0


def record(line: str):
    notes = collections.Counter()
    result = json_or_text(line.encode(), "127.0.0.1:5", RECEIVED, notes)
    assert not notes, notes
    assert result.format == "json"
    return result


def utc(*parts: int, offset_hours: int = 0) -> float:
    zone = dt.timezone(dt.timedelta(hours=offset_hours))
    return dt.datetime(*parts, tzinfo=zone).timestamp()


class TestNode:
    """pino, bunyan and winston."""

    def test_pino(self):
        # pino's README, "Usage": logger.info('hello world'), then a child.
        line = (
            '{"level":30,"time":1531171074631,"msg":"hello world","pid":657,'
            '"hostname":"Davids-MBP-3.fritz.box"}'
        )
        result = record(line)
        assert result.ts == pytest.approx(1531171074.631)
        assert result.level == "info"
        assert result.logger == ""
        assert result.message == "hello world"
        assert result.exc is None
        assert result.fields == {"pid": 657, "hostname": "Davids-MBP-3.fritz.box"}

    def test_pino_error_object(self):
        # pino's err serializer ({type, message, stack}), as a pino user's
        # README shows a failed webhook; level 50 is pino's error.
        line = (
            '{"level":50,"time":1697123458456,"pid":12345,"hostname":"server-01",'
            '"tid":4,"msg":"Failed posting webhook","action":"webhook","event":"messageNew",'
            '"err":{"type":"Error","message":"connect ECONNREFUSED 10.0.0.5:443",'
            '"stack":"Error: connect ECONNREFUSED 10.0.0.5:443\\n    at ..."}}'
        )
        result = record(line)
        assert result.level == "error"
        assert result.message == "Failed posting webhook"
        assert result.exc == "Error: connect ECONNREFUSED 10.0.0.5:443\n    at ..."
        # The type and message stay findable as err.type / err.message, and a
        # user key called "event" is not taken for structlog's.
        assert result.fields["err"] == {
            "type": "Error",
            "message": "connect ECONNREFUSED 10.0.0.5:443",
        }
        assert result.fields["event"] == "messageNew"
        assert result.ts == pytest.approx(1697123458.456)

    @pytest.mark.parametrize(
        ("number", "level"),
        [(10, "trace"), (20, "debug"), (30, "info"), (40, "warn"), (50, "error"), (60, "fatal")],
    )
    def test_pino_scale(self, number, level):
        # pino's docs, "logger.levels": trace 10 ... fatal 60.
        result = record(f'{{"level":{number},"time":1531171074631,"msg":"m"}}')
        assert result.level == level
        assert "level" not in result.fields

    def test_pino_custom_level_keeps_its_number(self):
        result = record('{"level":35,"time":1531171074631,"msg":"m"}')
        assert result.level == "info"
        assert result.fields == {"level": 35}
        assert level_rank(result.level) == level_rank("info")

    def test_bunyan(self):
        # bunyan's README, "Introduction": log.warn({lang: 'fr'}, 'au revoir').
        line = (
            '{"name":"myapp","hostname":"banana.local","pid":40161,"level":40,"lang":"fr",'
            '"msg":"au revoir","time":"2013-01-04T18:46:23.853Z","v":0}'
        )
        result = record(line)
        assert result.ts == pytest.approx(utc(2013, 1, 4, 18, 46, 23, 853000))
        assert result.level == "warn"
        assert result.logger == "myapp"
        assert result.message == "au revoir"
        assert result.exc is None
        assert result.fields == {"hostname": "banana.local", "pid": 40161, "lang": "fr", "v": 0}

    def test_bunyan_error_object(self):
        # bunyan's README, "Serializers": err is {message, name, stack, code}.
        line = (
            '{"name":"myapp","hostname":"banana.local","pid":40161,"level":50,'
            '"err":{"message":"boom","name":"TypeError","stack":"TypeError: boom\\n    at '
            'Object.<anonymous> (/app/hi.js:5:9)"},"msg":"boom","time":"2013-01-04T18:46:23.851Z",'
            '"v":0}'
        )
        result = record(line)
        assert result.level == "error"
        assert result.exc == "TypeError: boom\n    at Object.<anonymous> (/app/hi.js:5:9)"
        assert result.fields["err"] == {"message": "boom", "name": "TypeError"}

    def test_winston_json(self):
        # winston's JSON format with format.timestamp(), as its File transport writes.
        line = (
            '{"level":"info","message":"Hello distributed log files!",'
            '"timestamp":"2015-01-30T13:13:06.884Z"}'
        )
        result = record(line)
        assert result.ts == pytest.approx(utc(2015, 1, 30, 13, 13, 6, 884000))
        assert result.level == "info"
        assert result.message == "Hello distributed log files!"
        assert (result.logger, result.exc, result.fields) == ("", None, {})

    def test_winston_errors_format(self):
        # logform's errors({stack: true}) puts the stack at the top level.
        line = (
            '{"level":"error","message":"oh no","stack":"Error: oh no\\n    at Object.<anonymous>'
            ' (/app/index.js:3:14)","timestamp":"2015-01-30T13:13:06.884Z","service":"api"}'
        )
        result = record(line)
        assert result.exc == "Error: oh no\n    at Object.<anonymous> (/app/index.js:3:14)"
        assert result.fields == {"service": "api"}


class TestGo:
    """zap, zerolog, log/slog and logrus."""

    def test_zap_production(self):
        # sandipb/zap-examples README: zap.NewProduction(), Info then Error.
        info = record(
            '{"level":"info","ts":1525294364.332839,"caller":"simple1/main.go:43",'
            '"msg":"This is an INFO message"}'
        )
        assert info.ts == pytest.approx(1525294364.332839)
        assert info.level == "info"
        assert info.message == "This is an INFO message"
        assert info.fields == {"caller": "simple1/main.go:43"}
        error = record(
            '{"level":"error","ts":1525294364.332882,"caller":"simple1/main.go:46",'
            '"msg":"This is an ERROR message","stacktrace":"main.main\\n\\t/Users/snbhatta/dev/'
            "zap-examples/src/simple1/main.go:46\\nruntime.main\\n\\t/usr/local/go/src/runtime/"
            'proc.go:195"}'
        )
        assert error.level == "error"
        assert error.exc == (
            "main.main\n\t/Users/snbhatta/dev/zap-examples/src/simple1/main.go:46\n"
            "runtime.main\n\t/usr/local/go/src/runtime/proc.go:195"
        )
        assert error.fields == {"caller": "simple1/main.go:46"}

    def test_zap_named_logger_error_field_and_dpanic(self):
        # zap's EncoderConfig keys: "logger" (NameKey); zap.Error(err) writes
        # "error"; DPanic is between error and panic.  A user "timestamp"
        # field (qiita's zap example logs one) does not replace "ts".
        line = (
            '{"level":"dpanic","ts":1569769104.776992,"logger":"http","caller":'
            '"client/http_client.go:38","msg":"Response received.","timestamp":1569769104.5155523,'
            '"error":"network connection refused"}'
        )
        result = record(line)
        assert result.level == "critical"
        assert result.logger == "http"
        assert result.ts == pytest.approx(1569769104.776992)
        assert result.exc is None
        assert result.fields == {
            "caller": "client/http_client.go:38",
            "timestamp": 1569769104.5155523,
            "error": "network connection refused",
        }

    def test_zerolog(self):
        # zerolog's README, "Simple Logging Example" (TimeFormatUnix).
        result = record('{"level":"debug","time":1516134303,"message":"hello world"}')
        assert result.ts == 1516134303.0
        assert result.level == "debug"
        assert result.message == "hello world"
        assert (result.logger, result.exc, result.fields) == ("", None, {})

    def test_zerolog_error_with_pkgerrors_stack(self):
        # zerolog's README, "Error Logging with Stacktrace".
        line = (
            '{"level":"error","stack":[{"func":"inner","line":"20","source":"errors.go"},'
            '{"func":"middle","line":"24","source":"errors.go"},{"func":"outer","line":"32",'
            '"source":"errors.go"},{"func":"main","line":"15","source":"errors.go"},{"func":"main",'
            '"line":"204","source":"proc.go"},{"func":"goexit","line":"1374","source":'
            '"asm_amd64.s"}],"error":"seems we have an error here","time":1609086683}'
        )
        result = record(line)
        assert result.ts == 1609086683.0
        assert result.level == "error"
        assert result.message == ""
        assert result.exc.splitlines()[:2] == ["inner", "\terrors.go:20"]
        assert result.exc.splitlines()[-1] == "\tasm_amd64.s:1374"
        assert result.fields == {"error": "seems we have an error here"}

    def test_zerolog_panic_and_rfc3339(self):
        # zerolog's default TimeFieldFormat is RFC 3339; panic is its top level.
        line = '{"level":"panic","time":"2023-09-11T17:43:26+08:00","message":"boom"}'
        result = record(line)
        assert result.level == "critical"
        assert result.ts == pytest.approx(utc(2023, 9, 11, 17, 43, 26, offset_hours=8))

    def test_slog_json_handler(self):
        # Go's log/slog package documentation, JSONHandler.
        result = record(
            '{"time":"2022-11-08T15:28:26.000000000-05:00","level":"INFO","msg":"hello","count":3}'
        )
        assert result.ts == pytest.approx(utc(2022, 11, 8, 15, 28, 26, offset_hours=-5))
        assert result.level == "info"
        assert result.message == "hello"
        assert (result.logger, result.exc, result.fields) == ("", None, {"count": 3})

    def test_slog_source_and_level_offsets(self):
        # slog's docs: AddSource writes "source"; Level.String() names
        # LevelInfo+2 "INFO+2", which ranks at least as info.
        line = (
            '{"time":"2009-11-10T23:00:00Z","level":"INFO+2","source":{"function":"main.main",'
            '"file":"/tmp/sandbox/prog.go","line":20},"msg":"hello, world"}'
        )
        result = record(line)
        assert result.level == "info"
        assert result.fields == {
            "level": "INFO+2",
            "source": {"function": "main.main", "file": "/tmp/sandbox/prog.go", "line": 20},
        }
        assert record('{"level":"WARN","msg":"m"}').level == "warn"
        assert record('{"level":"ERROR+4","msg":"m"}').level == "error"

    def test_logrus_json_formatter(self):
        # logrus' README, log.SetFormatter(&log.JSONFormatter{}): its time is
        # Go's time.Time.String() there.
        line = (
            '{"animal":"walrus","level":"info","msg":"A group of walrus emerges from the ocean",'
            '"size":10,"time":"2014-03-10 19:57:38.562264131 -0400 EDT"}'
        )
        result = record(line)
        assert result.ts == pytest.approx(utc(2014, 3, 10, 19, 57, 38, 562264, offset_hours=-4))
        assert result.level == "info"
        assert result.message == "A group of walrus emerges from the ocean"
        assert result.fields == {"animal": "walrus", "size": 10}
        warning = record(
            '{"level":"warning","msg":"The group\'s number increased tremendously!",'
            '"number":122,"omg":true,"time":"2014-03-10 19:57:38.562471297 -0400 EDT"}'
        )
        assert warning.level == "warning"
        assert warning.fields == {"number": 122, "omg": True}


class TestJava:
    """logstash-logback-encoder and log4j2's ECS layout."""

    def test_logstash_logback_encoder(self):
        # logstash-logback-encoder's standard fields, as a Play app's README shows them.
        line = (
            '{"@timestamp":"2016-01-21T00:06:39.520-08:00","@version":1,"message":'
            '"Returning index","logger_name":"application","thread_name":'
            '"play-akka.actor.default-dispatcher-4","level":"INFO","level_value":20000,'
            '"HOSTNAME":"Johns-MacBook-Pro.local","user_id":"5"}'
        )
        result = record(line)
        assert result.ts == pytest.approx(utc(2016, 1, 21, 0, 6, 39, 520000, offset_hours=-8))
        assert result.level == "info"
        assert result.logger == "application"
        assert result.message == "Returning index"
        assert result.exc is None
        assert result.fields == {
            "@version": 1,
            "thread_name": "play-akka.actor.default-dispatcher-4",
            "level_value": 20000,
            "HOSTNAME": "Johns-MacBook-Pro.local",
            "user_id": "5",
        }

    def test_logstash_logback_encoder_stack_trace(self):
        # Its README: the throwable goes to "stack_trace".
        line = (
            '{"@timestamp":"2026-09-07T10:00:00.000+09:00","message":"[Unhandled] GET /api",'
            '"logger_name":"c.s.GlobalExceptionHandler","thread_name":"exec-1","level":"ERROR",'
            '"level_value":40000,"stack_trace":"java.lang.NullPointerException: x\\n\\tat '
            'c.s.Api.get(Api.java:42)"}'
        )
        result = record(line)
        assert result.level == "error"
        assert result.exc == "java.lang.NullPointerException: x\n\tat c.s.Api.get(Api.java:42)"
        assert "stack_trace" not in result.fields

    def test_log4j2_ecs_dotted(self):
        # Elasticsearch's own log (log4j2, ECS layout), a failed start.
        line = (
            '{"@timestamp":"2024-11-27T09:05:11.123Z","log.level":"ERROR","message":'
            '"fatal exception while booting Elasticsearch","ecs.version":"1.2.0",'
            '"process.thread.name":"main","log.logger":"org.elasticsearch.bootstrap.Elasticsearch",'
            '"error.type":"java.lang.IllegalArgumentException","error.message":"high disk '
            'watermark [99%] more than flood stage disk watermark [95%]","error.stack_trace":'
            '"java.lang.IllegalArgumentException: high disk watermark\\n\\tat org.elasticsearch.'
            'DiskThresholdSettings.validate(DiskThresholdSettings.java:294)"}'
        )
        result = record(line)
        assert result.ts == pytest.approx(utc(2024, 11, 27, 9, 5, 11, 123000))
        assert result.level == "error"
        assert result.logger == "org.elasticsearch.bootstrap.Elasticsearch"
        assert result.message == "fatal exception while booting Elasticsearch"
        assert result.exc.startswith("java.lang.IllegalArgumentException: high disk watermark\n")
        assert result.fields == {
            "ecs.version": "1.2.0",
            "process.thread.name": "main",
            "error.type": "java.lang.IllegalArgumentException",
            "error.message": "high disk watermark [99%] more than flood stage disk watermark [95%]",
        }

    def test_ecs_nested_objects(self):
        # ECS written as nested objects (ecs-logging's "log": {"logger", "origin"}
        # and the ECS field reference's error.{type, message, stack_trace}).
        line = (
            '{"@timestamp":"2020-03-20T18:11:37.895Z","log":{"level":"warn","logger":"app",'
            '"origin":{"file":{"line":14,"name":"test.py"},"function":"func"}},"message":'
            '"Example message!","ecs":{"version":"1.6.0"},"error":{"type":"ValueError",'
            '"message":"bad","stack_trace":"Traceback (most recent call last):\\n  ..."}}'
        )
        result = record(line)
        assert result.level == "warn"
        assert result.logger == "app"
        assert result.exc == "Traceback (most recent call last):\n  ..."
        assert result.fields == {
            "log": {"origin": {"file": {"line": 14, "name": "test.py"}, "function": "func"}},
            "ecs": {"version": "1.6.0"},
            "error": {"type": "ValueError", "message": "bad"},
        }


class TestDotNet:
    """Serilog's CLEF, Microsoft.Extensions.Logging's JSON console, NLog's JsonLayout."""

    def test_clef_spec_example(self):
        # clef-json.org, "Example event": @l absent means Information.
        result = record(
            '{"@t":"2016-06-07T03:44:57.8532799Z","@mt":"Hello, {User}","User":"nblumhardt"}'
        )
        assert result.ts == pytest.approx(utc(2016, 6, 7, 3, 44, 57, 853279))
        assert result.level == "info"
        assert result.message == "Hello, nblumhardt"
        assert (result.logger, result.exc) == ("", None)
        assert result.fields == {"@mt": "Hello, {User}", "User": "nblumhardt"}

    def test_clef_renderings_levels_and_exception(self):
        # serilog-formatting-compact-reader's README, its example log.
        number = record(
            '{"@t":"2016-10-12T04:46:58.0684369Z","@mt":"Number {N:x8}","@r":["0000002a"],"N":42}'
        )
        assert number.message == "Number 0000002a"
        destructured = record(
            '{"@t":"2016-10-12T04:46:58.0554314Z","@mt":"Hello, {@User}",'
            '"User":{"Name":"nblumhardt","Id":101}}'
        )
        assert destructured.message == 'Hello, {"Name":"nblumhardt","Id":101}'
        tags = record(
            '{"@t":"2016-10-12T04:46:58.0724384Z","@mt":"Tags are {Tags}","@l":"Warning",'
            '"Tags":["test","orange"]}'
        )
        assert (tags.level, tags.message) == ("warning", 'Tags are ["test","orange"]')
        failed = record(
            '{"@t":"2016-10-12T04:46:58.0904378Z","@mt":"Something failed","@l":"Error",'
            ' "@x":"System.DivideByZeroException: Attempted to divide by zero."}'
        )
        assert failed.level == "error"
        assert failed.exc == "System.DivideByZeroException: Attempted to divide by zero."
        assert failed.fields == {"@mt": "Something failed"}

    def test_clef_rendered_message_and_source_context(self):
        # A CLEF line with @m and Serilog's SourceContext; a property named
        # like a record key ("name", "level") stays the user's.
        line = (
            '{"@t":"2026-10-01T12:00:05Z","@m":"Boot failed","@l":"Fatal","@x":"System.Invalid'
            'OperationException: The runtime could not start.","SourceContext":"Umbraco.Cms.Core.'
            'Runtime.CoreRuntime","name":"ada","level":3}'
        )
        result = record(line)
        assert result.level == "fatal"
        assert result.logger == "Umbraco.Cms.Core.Runtime.CoreRuntime"
        assert result.message == "Boot failed"
        assert result.exc.startswith("System.InvalidOperationException")
        assert result.fields == {"name": "ada", "level": 3}
        assert record('{"@t":"2026-10-01T12:00:05Z","@m":"m","@l":"Verbose"}').level == "trace"

    def test_microsoft_extensions_logging_json_console(self):
        # dotnet/docs, "ASP.NET Core container images use the JSON console formatter".
        line = (
            '{"EventId":0,"LogLevel":"Information","Category":"Microsoft.Hosting.Lifetime",'
            '"Message":"Now listening on: http://localhost:7000/","State":{"Message":"Now '
            'listening on: http://localhost:7000/","address":"http://localhost:7000/",'
            '"{OriginalFormat}":"Now listening on: {address}"}}'
        )
        result = record(line)
        assert result.ts == RECEIVED  # no Timestamp unless TimestampFormat is set
        assert result.level == "info"
        assert result.logger == "Microsoft.Hosting.Lifetime"
        assert result.message == "Now listening on: http://localhost:7000/"
        assert result.exc is None
        assert result.fields["EventId"] == 0
        assert result.fields["State"]["{OriginalFormat}"] == "Now listening on: {address}"

    def test_microsoft_extensions_logging_exception_and_timestamp(self):
        # The same formatter with TimestampFormat set and an exception (its "Exception" key).
        line = (
            '{"Timestamp":"2024-01-02T03:04:05.6789012+00:00","EventId":0,"LogLevel":"Critical",'
            '"Category":"Agent.Cli.CliRunner","Message":"Record \'t2\' failed.","Exception":'
            '"System.ArgumentOutOfRangeException: Move date\\n   at Agent.Plan()","State":'
            '{"TaskId":"t2"}}'
        )
        result = record(line)
        assert result.ts == pytest.approx(utc(2024, 1, 2, 3, 4, 5, 678901))
        assert result.level == "critical"
        assert result.exc == "System.ArgumentOutOfRangeException: Move date\n   at Agent.Plan()"
        assert result.fields == {"EventId": 0, "State": {"TaskId": "t2"}}

    def test_nlog_json_layout(self):
        # NLog's wiki, JsonLayout: ${longdate} (naive, taken as UTC), ${level:upperCase=true}.
        result = record(
            '{ "time": "2010-01-01 12:34:56.0000", "level": "ERROR", "message": "hello, world" }'
        )
        assert result.ts == pytest.approx(utc(2010, 1, 1, 12, 34, 56))
        assert result.level == "error"
        assert result.message == "hello, world"
        assert (result.logger, result.exc, result.fields) == ("", None, {})
        with_logger = record(
            '{"time":"2010-01-01 12:34:56.0000","level":"WARN","logger":"App.Db","message":"slow",'
            '"exception":"System.TimeoutException: late"}'
        )
        assert (with_logger.level, with_logger.logger) == ("warn", "App.Db")
        assert with_logger.exc == "System.TimeoutException: late"


class TestHostileTemplates:
    """A CLEF template cannot turn one line into a huge message."""

    def test_repeated_holes_stop_past_the_cap(self):
        big = "x" * 100_000
        line = '{"@t":"2016-06-07T03:44:57Z","@mt":"' + "{X}" * 1000 + '","X":"' + big + '"}'
        result = record(line)
        assert MAX_RENDERED < len(result.message) <= MAX_RENDERED + len(big) + 3 * 1000
        assert result.message.endswith("{X}")

    def test_braces_and_missing_properties(self):
        result = record('{"@t":"2016-06-07T03:44:57Z","@mt":"{{literal}} {Missing} {N,5}","N":7}')
        assert result.message == "{literal} {Missing} 7"


class TestRust:
    """tracing-subscriber's JSON format and slog-json."""

    def test_tracing_subscriber_json(self):
        # tracing-subscriber's docs, fmt::format::Json.
        line = (
            '{"timestamp":"2022-02-15T18:47:10.821315Z","level":"INFO","fields":{"message":'
            '"preparing to shave yaks","number_of_yaks":3},"target":"fmt_json"}'
        )
        result = record(line)
        assert result.ts == pytest.approx(utc(2022, 2, 15, 18, 47, 10, 821315))
        assert result.level == "info"
        assert result.logger == "fmt_json"
        assert result.message == "preparing to shave yaks"
        assert result.exc is None
        assert result.fields == {"number_of_yaks": 3}

    def test_tracing_subscriber_spans(self):
        # The same docs, inside spans: span and spans stay as they came.
        line = (
            '{"timestamp":"2022-02-15T18:47:10.821495Z","level":"TRACE","fields":{"message":'
            '"hello! I\'m gonna shave a yak","excitement":"yay!","target":"x"},"target":'
            '"fmt_json::yak_shave","spans":[{"yaks":3,"name":"shaving_yaks"},{"yak":1,"name":'
            '"shave"}]}'
        )
        result = record(line)
        assert result.level == "trace"
        assert result.logger == "fmt_json::yak_shave"
        assert result.fields == {
            "spans": [{"yaks": 3, "name": "shaving_yaks"}, {"yak": 1, "name": "shave"}],
            "excitement": "yay!",
            # An event field named like one already lifted stays nested.
            "fields": {"target": "x"},
        }

    def test_slog_json(self):
        # slog-json's add_default_keys (src/lib.rs): "ts" RFC 3339, "level"
        # the short name (TRCE DEBG INFO WARN ERRO CRIT), "msg".
        result = record(
            '{"msg":"listening","level":"DEBG","ts":"2017-05-10T09:51:41.157+02:00","port":8080}'
        )
        assert result.ts == pytest.approx(utc(2017, 5, 10, 9, 51, 41, 157000, offset_hours=2))
        assert result.level == "debug"
        assert result.message == "listening"
        assert result.fields == {"port": 8080}
        assert record('{"msg":"m","level":"ERRO","ts":"2017-05-10T09:51:41Z"}').level == "error"
        assert record('{"msg":"m","level":"CRIT","ts":"2017-05-10T09:51:41Z"}').level == "crit"


class TestPythonKeepsItsMapping:
    """A bare number is a stdlib level only when the line says it came from Python."""

    def test_python_json_logger_levelno(self):
        # python-json-logger with "%(levelno)s %(name)s %(message)s".
        result = record('{"levelno": 30, "name": "app", "message": "disk low"}')
        assert (result.level, result.logger, result.message) == ("warning", "app", "disk low")

    def test_python_keys_make_a_bare_level_a_stdlib_number(self):
        result = record('{"level": 40, "funcName": "run", "message": "m"}')
        assert result.level == "error"
        assert result.fields == {"funcName": "run"}

    def test_structlog_number_stays_stdlib(self):
        assert record('{"event": "e", "level": 40}').level == "error"

    def test_structlog_user_msg_stays_a_field(self):
        # structlog writes "timestamp", never "time"/"ts": its user's "msg" is a field.
        line = '{"event": "e", "msg": "x", "level": "info", "timestamp": "2024-01-01T00:00:00Z"}'
        result = record(line)
        assert (result.message, result.fields) == ("e", {"msg": "x"})

    def test_a_go_lines_event_field_is_the_users(self):
        # A zap line (its "ts" and "msg") whose user logged zap.String("event", ...).
        result = record('{"level":"info","ts":1525294364.3,"msg":"hit","event":"login"}')
        assert (result.message, result.level, result.fields) == ("hit", "info", {"event": "login"})


class TestRanks:
    """Every mapped name ranks where its logger puts it."""

    @pytest.mark.parametrize(
        ("name", "rank"),
        [("trace", 5), ("debug", 10), ("info", 20), ("warn", 30), ("error", 40), ("critical", 50)],
    )
    def test_mapped_names_rank(self, name, rank):
        assert level_rank(name) == rank

    @pytest.mark.parametrize(
        ("word", "rank"),
        [
            ("information", 20),
            ("panic", 50),
            ("dpanic", 50),
            ("debg", 10),
            ("erro", 40),
            ("trce", 5),
        ],
    )
    def test_other_words_rank_when_queried(self, word, rank):
        assert level_rank(word) == rank


class TestTimes:
    """Epoch numbers by magnitude, as numbers or strings."""

    @pytest.mark.parametrize(
        "value",
        [
            "1700000000",
            "1.7e9",
            '"1700000000"',
            "1700000000000",
            '"1700000000000"',
            "1700000000000000",
            "1700000000000000000",
            '"1700000000000000000"',
        ],
    )
    def test_units(self, value):
        result = record(f'{{"msg":"m","time":{value}}}')
        assert result.ts == pytest.approx(1.7e9)
        assert "time" not in result.fields


#: Every key some convention reads, plus a few of nobody's.
CONVENTION_KEYS = [
    "event", "message", "msg", "@m", "Message", "@mt", "@t", "@l", "@x", "@r", "level",
    "levelname", "levelno", "severity", "LogLevel", "log.level", "log", "logger", "name",
    "logger_name", "log.logger", "Category", "SourceContext", "target", "fields", "time",
    "ts", "timestamp", "@timestamp", "Timestamp", "asctime", "exception", "exc_info",
    "exc_text", "stack", "stack_trace", "stacktrace", "error.stack_trace", "Exception",
    "err", "error", "funcName", "User", "N", "x",
]  # fmt: skip
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["INFO+2", "Information", "{User} {N:x8} {{", "2014-03-10 19:57:38 EDT"]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(CONVENTION_KEYS) | st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)


class TestAnyMixOfConventions:
    """Whatever keys of whichever loggers a line mixes, it becomes a well-formed record."""

    @settings(max_examples=400, deadline=None)
    @given(st.dictionaries(st.sampled_from(CONVENTION_KEYS), JSON_VALUES, max_size=10))
    def test_a_record_with_the_schema(self, obj):
        line = orjson.dumps(obj)
        result = json_or_text(line, "p", RECEIVED, collections.Counter())
        assert type(result.ts) is float
        assert math.isfinite(result.ts)
        assert all(type(v) is str for v in (result.level, result.logger, result.message))
        assert result.exc is None or type(result.exc) is str
        assert result.level == result.level.lower()
        orjson.dumps(result.fields)  # writable as it is
