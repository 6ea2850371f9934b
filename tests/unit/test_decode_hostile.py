"""Issue 15, item 1: hostile *values* in well-formed frames, through every decoder.

test_decoder_fuzz.py and test_reliability_fuzz.py mutate bytes, so most of
what they make never unpickles.  Here the frames are valid pickles (and
JSON) of hostile dicts: the values an attacker controls once the framing is
right.  Huge ints (past the 4,300-digit ``str()`` limit), NaN and infinities,
lone surrogates, self-references and shared structures, datetimes at the
ends of their range, bytes, sets, placeholders of unknown globals, levels,
times and messages of the wrong type.  The rule is the decoders' one rule:
records, or ``DecodeError``, whatever the input; and every record encodes
to one JSON line.
"""

import contextlib
import datetime as dt
import math
import pickle
import struct
import urllib.parse

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from netlog.decode.datagram import decode_datagram
from netlog.decode.http import decode_body
from netlog.decode.stream import StreamDecoder
from netlog.errors import DecodeError
from netlog.sinks.encode import encode_line

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Unknown:
    """Pickled by reference: the restricted unpickler makes it a placeholder."""

    def __init__(self, state):
        self.state = state


# Built by map: hypothesis shows sampled values with repr(), which 10**5000 refuses.
HUGE_INTS = st.tuples(st.sampled_from([5000, 4299, 1000, 64, 20]), st.sampled_from([1, -1])).map(
    lambda pair: pair[1] * 10 ** pair[0]
)
FLOATS = st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -0.0, 5e-324])
ODD_TEXT = st.sampled_from(["\ud800", "\udfff x", "\x00\x1b]0;t\x07", "\u202e", "%s %(a)s %"])
DATES = st.sampled_from(
    [
        dt.datetime.min,  # noqa: DTZ901 - naive on purpose: what a sender may pickle
        dt.datetime.max,  # noqa: DTZ901 - same
        dt.datetime.min.replace(tzinfo=dt.timezone(dt.timedelta(hours=23))),
        dt.datetime.max.replace(tzinfo=dt.timezone(-dt.timedelta(hours=23))),
        dt.date.min,
        dt.timedelta.max,
        dt.time(23, 59, 59, 999999),
    ]
)
SCALARS = st.one_of(
    st.integers(),
    HUGE_INTS,
    st.floats(allow_nan=True, allow_infinity=True),
    FLOATS,
    st.text(max_size=20),
    ODD_TEXT,
    st.binary(max_size=20),
    st.booleans(),
    st.none(),
    DATES,
)


def _shared(child):
    """Structures that hold one object many times, or themselves."""
    return st.one_of(
        child.map(lambda v: [v, v, v]),
        child.map(lambda v: {"a": v, "b": (v, v)}),
        # Up to 2**18 nodes unrolled: hypothesis prints a failing example with repr().
        st.integers(1, 18).map(_dag),
        st.integers(1, 18).map(_tuple_dag),
        st.just(_cycle()),
        st.just(_dict_cycle()),
    )


def _dag(levels: int) -> list:
    node: list = ["leaf"]
    for _ in range(levels):
        node = [node, node]
    return node


def _tuple_dag(levels: int) -> tuple:
    node: tuple = ("leaf",)
    for _ in range(levels):
        node = (node, node)
    return node


def _cycle() -> list:
    value: list = []
    value.extend([value, value])
    return value


def _dict_cycle() -> dict:
    value: dict = {}
    value["self"] = value
    value["again"] = [value, value]
    return value


VALUES = st.recursive(
    SCALARS,
    lambda child: st.one_of(
        st.lists(child, max_size=4),
        st.lists(child, max_size=4).map(tuple),
        st.dictionaries(st.text(max_size=5), child, max_size=4),
        st.frozensets(st.one_of(st.integers(), st.text(max_size=5), HUGE_INTS), max_size=4),
        child.map(Unknown),
        _shared(child),
    ),
    max_leaves=12,
)
NAMES = (
    *("msg", "name", "levelno", "levelname", "created", "exc_text", "stack_info", "args"),
    *("lineno", "pathname", "threadName", "extra", "x"),
)
KEYS = st.sampled_from(NAMES)
#: Each LogRecord key present or not, so that every one meets every value.
RECORDS = st.fixed_dictionaries({}, optional=dict.fromkeys(NAMES, VALUES))
#: Found by hand or by these strategies; kept so that every run tries them.
KNOWN_POISON = [
    {"msg": "poison", "levelno": 10**5000},  # issue 15 item 1: f"level {n}" raised ValueError
    {"msg": "dag", "x": _dag(64)},  # item 2: a 2**64-node walk
    {"msg": _cycle(), "name": _dict_cycle()},
    {"msg": "big ints", "x": [10**4000] * 400},
]


#: What HTTPHandler's ``str()`` of hostile LogRecord attributes can look like.
FORM_VALUES = st.one_of(
    st.text(max_size=30),
    ODD_TEXT,
    st.sampled_from(
        [
            "9" * 5000,
            "-" + "9" * 5000,
            "nan",
            "inf",
            "1e999",
            "None",
            "%(a)1000s" * 50,
            "%s %d %c %r %% %(a)s",
            "(1e308, 10, 'x')",
            "{'a': " + "9" * 4400 + "}",
            "(" * 200 + ")" * 200,
            "%" + "9" * 5000 + "s",
            "%.1000f %.1000e",
            "(<class 'ValueError'>, ValueError('x'), <traceback object at 0x7f00>)",
        ]
    ),
)
JSON_KEYS = ("event", "message", "level", "levelname", "timestamp", "time", "logger", "exception")


def _tuple_hash_bomb(levels: int) -> bytes:
    """``{"msg": "x", "f": {T: 1}}``, ``T = (T', T')`` ``levels`` deep: hashing T walks 2**levels.

    Made by hand: building it in Python would hash T here.
    """
    ops = b"N" + b"q\x010h\x01h\x01\x86" * levels  # BINPUT 1, POP, BINGET 1 twice, TUPLE2
    return b"\x80\x02}q\x00(X\x03\x00\x00\x00msgX\x01\x00\x00\x00xX\x01\x00\x00\x00f}q\x02" + (
        ops + b"K\x01su."
    )


def _call_chain(calls: int) -> bytes:
    """``{"msg": a.b()()()...}``: two bytes a call, each a placeholder inside the next."""
    return b"\x80\x02}q\x00X\x03\x00\x00\x00msgq\x01ca\nb\n" + b")R" * calls + b"s."


#: Pickle bodies that Python's pickler cannot make (or not without hanging).
POISON_BODIES = {
    "tuple hash bomb": _tuple_hash_bomb(64),
    "call chain": _call_chain(100_000),
}


class Named(dict):
    """A poison record that hypothesis reports by name (its repr could take forever)."""

    def __init__(self, name: str, record: dict) -> None:
        super().__init__(record)
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


def _known_poison(test):
    for index, record in enumerate(KNOWN_POISON):
        test = example(Named(f"KNOWN_POISON[{index}]", record), 4)(test)
    return test


def _pickle(record: dict, protocol: int) -> bytes | None:
    try:
        body = pickle.dumps(dict(record), protocol)
    except (ValueError, RecursionError, pickle.PicklingError):
        # Protocols 0-1 write ints as decimal text: 10**5000 has none.
        return None
    return body if len(body) <= 1 << 20 else None


def _check(records) -> None:
    for record in records:
        line = encode_line(record)
        assert line.endswith(b"\n")
        assert line.count(b"\n") == 1
        orjson.loads(line)


class TestHostileValues:
    """Valid frames of hostile values: records or DecodeError, never anything else."""

    @SETTINGS
    @given(RECORDS, st.integers(2, 5))
    @_known_poison
    def test_pickles_over_tcp(self, record, protocol):
        body = _pickle(record, protocol)
        if body is None:
            return
        good = pickle.dumps({"msg": "good", "levelno": 20}, 2)
        data = b"".join(struct.pack(">L", len(b)) + b for b in (good, body, good))
        decoder = StreamDecoder("p", max_frame=1 << 20, max_line=1 << 20)
        records = decoder.feed(data) + decoder.feed(b"")
        _check(records)
        # Its safety net never caught anything: the decoder raised only DecodeError.
        assert not decoder.dropped["internal_error"], decoder.last_problem
        # One bad frame never costs the good ones around it.
        assert [r.message for r in records if r.message == "good"] == ["good", "good"]

    @pytest.mark.parametrize("name", POISON_BODIES)
    def test_hand_made_poison(self, name):
        body = POISON_BODIES[name]
        good = pickle.dumps({"msg": "good", "levelno": 20}, 2)
        data = b"".join(struct.pack(">L", len(b)) + b for b in (good, body, good))
        decoder = StreamDecoder("p")
        records = decoder.feed(data)
        _check(records)
        assert not decoder.dropped["internal_error"], decoder.last_problem
        assert [r.message for r in records if r.message == "good"] == ["good", "good"]
        with contextlib.suppress(DecodeError):
            _check([decode_datagram(struct.pack(">L", len(body)) + body, "p", 0.0)])

    @SETTINGS
    @given(RECORDS, st.integers(2, 5))
    @_known_poison
    def test_pickles_over_udp(self, record, protocol):
        body = _pickle(record, protocol)
        if body is None:
            return
        try:
            records = [decode_datagram(struct.pack(">L", len(body)) + body, "p", 0.0)]
        except DecodeError:
            return
        _check(records)

    @SETTINGS
    @given(st.dictionaries(KEYS, FORM_VALUES, max_size=8))
    def test_http_forms(self, record):
        # What HTTPHandler does: urlencode(record.__dict__), str() of each value.
        body = urllib.parse.urlencode(record, errors="surrogatepass")
        try:
            records = decode_body(body.encode(), "application/x-www-form-urlencoded", "p", 0.0)
        except DecodeError:
            return
        _check(records)

    @SETTINGS
    @given(
        st.recursive(
            st.one_of(
                st.integers(-(2**70), 2**70),
                st.floats(allow_nan=False),
                st.text(max_size=20),
                st.booleans(),
                st.none(),
            ),
            lambda child: st.one_of(
                st.lists(child, max_size=4), st.dictionaries(st.text(max_size=5), child, max_size=4)
            ),
            max_leaves=12,
        ).flatmap(lambda v: st.fixed_dictionaries({}, optional={k: st.just(v) for k in JSON_KEYS}))
    )
    def test_json_everywhere(self, obj):
        try:
            text = orjson.dumps(obj)
        except TypeError:  # an int past 64 bits
            return
        decoder = StreamDecoder("p")
        records = decoder.feed(text + b"\n") + decoder.feed(b"")
        records.append(decode_datagram(text, "p", 0.0))
        records += decode_body(text, "application/json", "p", 0.0)
        _check(records)
