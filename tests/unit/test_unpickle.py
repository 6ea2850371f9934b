import collections
import datetime as dt
import logging
import logging.handlers
import os
import pickle
import pickletools
import resource
import struct
import subprocess
import time
import tracemalloc

import pytest

from netlog.decode import unpickle as unpickle_module
from netlog.decode.unpickle import (
    FrameLoader,
    Placeholder,
    SafeUnpickler,
    check_opcodes,
    is_placeholder,
    render_placeholder,
    short_repr,
    tuple_hash_problem,
    unpickle_dict,
)
from netlog.errors import DecodeError

PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)


class _Reduce:
    """Pickles as an arbitrary call, the way an attacker would craft one."""

    def __init__(self, func, *args):
        self.func = func
        self.args = args

    def __reduce__(self):
        return self.func, self.args


class Point:
    def __init__(self, x, y):
        self.x = x
        self.y = y


class TestHostilePickles:
    """Nothing a pickle names is imported or run."""

    @pytest.mark.parametrize("protocol", PROTOCOLS)
    def test_os_system_runs_nothing(self, tmp_path, protocol):
        marker = tmp_path / "pwned"
        data = pickle.dumps({"msg": _Reduce(os.system, f"touch {marker}")}, protocol)
        result = unpickle_dict(data)
        assert not marker.exists()
        assert isinstance(result["msg"], Placeholder)
        assert "system" in render_placeholder(result["msg"])
        assert str(marker) in render_placeholder(result["msg"])

    @pytest.mark.parametrize("protocol", PROTOCOLS)
    def test_subprocess_popen_runs_nothing(self, tmp_path, protocol):
        marker = tmp_path / "pwned"
        data = pickle.dumps({"x": _Reduce(subprocess.Popen, ["touch", str(marker)])}, protocol)
        unpickle_dict(data)
        assert not marker.exists()

    def test_eval_is_a_placeholder(self):
        data = pickle.dumps({"x": _Reduce(eval, "__import__('os').getpid()")}, 2)
        value = unpickle_dict(data)["x"]
        assert render_placeholder(value) == "<builtins.eval(\"__import__('os').getpid()\")>"

    def test_getattr_chain_stays_inert(self):
        # The classic gadget: getattr(__import__('os'), 'system')('id').
        data = (
            b"\x80\x02}X\x01\x00\x00\x00x"
            b"cbuiltins\ngetattr\n(cbuiltins\n__import__\n(X\x02\x00\x00\x00ostRX\x06\x00\x00\x00systemtR"
            b"(X\x02\x00\x00\x00idtRs."
        )
        value = unpickle_dict(data)["x"]
        assert render_placeholder(value).startswith("<builtins.getattr(<builtins.__import__('os')>")

    def test_persistent_id_is_rejected(self):
        data = b"\x80\x02}X\x01\x00\x00\x00xX\x03\x00\x00\x00pidQs."
        with pytest.raises(DecodeError) as info:
            unpickle_dict(data)
        assert info.value.reason == "bad_frame"

    def test_find_class_imports_nothing(self):
        unpickler = SafeUnpickler.__new__(SafeUnpickler)
        value = SafeUnpickler.find_class(unpickler, "netlog_no_such_module", "thing")
        assert is_placeholder(value)
        assert value.qualname == "netlog_no_such_module.thing"

    def test_copyreg_reconstructor_is_not_called(self):
        # Protocol 0/1 objects go through copyreg._reconstructor, which would
        # call an arbitrary __new__: it must stay a placeholder.
        data = pickle.dumps({"p": Point(1, 2)}, 1)
        value = unpickle_dict(data)["p"]
        assert isinstance(value, Placeholder)
        assert render_placeholder(value) == "<test_unpickle.Point {'x': 1, 'y': 2}>"


class TestMemoryHazards:
    """Pickles that would make the C unpickler allocate far more than their size."""

    @pytest.mark.parametrize("index", [1 << 24, 1 << 30, 0xFFFFFFFF])
    def test_long_binput_memo_bomb(self, index):
        # A 9-byte pickle that makes CPython 3.11's C unpickler zero-fill
        # index * 16 bytes of memo (measured 512 MiB for index 2**25).
        data = b"\x80\x02}r" + index.to_bytes(4, "little") + b"."
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with pytest.raises(DecodeError, match="memo index"):
            unpickle_dict(data)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        assert after - before < 64 * 1024  # KiB

    def test_text_put_memo_bomb(self):
        with pytest.raises(DecodeError, match="memo index"):
            unpickle_dict(b"(dp100000000\n.")

    def test_bytes8_claiming_huge_length(self):
        data = b"\x80\x04}\x8e" + (1 << 40).to_bytes(8, "little") + b"x."
        with pytest.raises(DecodeError, match="truncated"):
            unpickle_dict(data)

    def test_deep_nesting_unpickles_without_recursion(self):
        depth = 100_000
        data = b"\x80\x02}X\x01\x00\x00\x00a" + b"]" * depth + b"a" * (depth - 1) + b"s."
        value = unpickle_dict(data)["a"]
        assert isinstance(value, list)
        assert short_repr(value).startswith("[[[[")


class TestCheckOpcodes:
    """The opcode pre-check accepts every honest pickle."""

    @pytest.mark.parametrize("protocol", PROTOCOLS)
    def test_real_pickles_pass(self, protocol):
        many = {f"k{i}": [i, str(i), float(i), b"b", (i,), {i}] for i in range(400)}
        value = {
            "many": many,
            "when": dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC),
            "big": 10**40,
            "text": "ü\n\\ \x00",
            "point": Point(1, 2),
        }
        data = pickle.dumps(value, protocol)
        assert check_opcodes(data) is None
        assert unpickle_dict(data)["many"]["k399"][1] == "399"

    def test_truncated_pickle(self):
        data = pickle.dumps({"a": "b" * 100}, 2)
        for cut in range(len(data) - 1):
            assert check_opcodes(data[:cut]) is not None

    def test_unknown_opcode(self):
        assert check_opcodes(b"\xff") == "unknown opcode 0xff"


class TestUnpickleDict:
    """Only a dict with str keys is a record."""

    def test_not_a_dict(self):
        with pytest.raises(DecodeError, match="holds a list") as info:
            unpickle_dict(pickle.dumps([1, 2], 1))
        assert info.value.reason == "bad_frame"

    def test_placeholder_top_level(self):
        with pytest.raises(DecodeError, match=r"(os|posix)\.system"):
            unpickle_dict(pickle.dumps(_Reduce(os.system, "true"), 2))

    def test_non_str_key(self):
        with pytest.raises(DecodeError, match="non-string key"):
            unpickle_dict(pickle.dumps({1: "x"}, 1))

    def test_empty(self):
        with pytest.raises(DecodeError, match="empty"):
            unpickle_dict(b"")

    @pytest.mark.parametrize(
        "data",
        [b"garbage", b"\x80\x02.", b"\x80\x02}0.", b"\x80\x02h\x05.", b"}(a.", b"\x80\x02X\x01"],
    )
    def test_corrupt_bytes(self, data):
        with pytest.raises(DecodeError) as info:
            unpickle_dict(data)
        assert info.value.reason == "bad_frame"

    def test_logrecord_from_socket_handler(self):
        record = logging.makeLogRecord({"msg": "hi %s", "args": ("ü",), "extra_key": 5})
        frame = logging.handlers.SocketHandler("x", 0).makePickle(record)
        value = unpickle_dict(frame[4:])
        assert value["msg"] == "hi ü"
        assert value["extra_key"] == 5


class TestFrameLoader:
    """One unpickler serves a read's frames, and no frame sees another's bytes or memo."""

    GOOD = pickle.dumps({"msg": "second", "n": 2}, 1)

    def test_frames_in_a_row(self):
        load = FrameLoader().load
        for i in range(5):
            assert load(pickle.dumps({"msg": f"m{i}", "i": i}, 1)) == {"msg": f"m{i}", "i": i}

    @pytest.mark.parametrize(
        "bad",
        [
            b"h\x05" + b"N" * 10 + b".",  # fails at its second byte, ten unread behind
            b"}(X\x01\x00\x00\x00aN" + b"\x93" * 3 + b"u.",  # an opcode the checker passes on
            b"\x80\x02X\x01\x00\x00\x00",  # truncated
        ],
    )
    def test_a_failed_frame_leaves_nothing_for_the_next(self, bad):
        loader = FrameLoader()
        with pytest.raises(DecodeError):
            loader.load(bad)
        assert loader.load(self.GOOD) == {"msg": "second", "n": 2}

    def test_bytes_after_stop_are_not_read_as_the_next_frame(self):
        loader = FrameLoader()
        first = pickle.dumps({"msg": "first"}, 1) + b"N."
        assert loader.load(first) == {"msg": "first"}
        assert loader.load(self.GOOD) == {"msg": "second", "n": 2}

    def test_a_large_memo_is_not_kept_for_the_next_frames(self):
        # A 600 KB frame may PUT at index 600,000 (no larger than the bytes
        # before it), which sizes the C unpickler's memo at 1.2 M entries.
        # Reused, that unpickler would allocate and zero 9.6 MB again for
        # every later frame of the read, however small.
        size = 600_000
        big = b"X" + struct.pack("<I", size) + b"a" * size + b"r" + struct.pack("<I", size)
        loader = FrameLoader()
        assert loader.load(big + b"0}.") == {}
        tracemalloc.start()
        try:
            assert loader.load(pickle.dumps({"a": 1}, 1)) == {"a": 1}
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 100_000

    def test_memo_does_not_carry_over(self):
        loader = FrameLoader()
        loader.load(pickle.dumps({"k": "remembered"}, 1))  # PUTs at memo 0, 1, 2
        # A frame that GETs index 1 without PUTting it: a fresh unpickler fails.
        with pytest.raises(DecodeError, match="cannot unpickle"):
            loader.load(b"}q\x00(X\x01\x00\x00\x00kh\x01u.")


class TestAllowlist:
    """Side-effect-free value types come back as real values."""

    @pytest.mark.parametrize("protocol", PROTOCOLS)
    def test_values(self, protocol):
        value = {
            "dt": dt.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            "d": dt.date(2024, 1, 2),
            "t": dt.time(3, 4),
            "td": dt.timedelta(days=1, seconds=2),
            "s": {1, 2, 3},
            "fs": frozenset({"a"}),
            "od": collections.OrderedDict([("a", 1)]),
            "b": b"\x00\xff",
        }
        assert unpickle_dict(pickle.dumps(value, protocol)) == value

    def test_failing_constructor_gives_a_placeholder(self):
        data = pickle.dumps({"d": _Reduce(dt.timedelta, 10**12)}, 2)
        value = unpickle_dict(data)["d"]
        assert render_placeholder(value) == "<datetime.timedelta(1000000000000)>"

    def test_codecs_encode_only_latin1(self):
        data = pickle.dumps({"x": _Reduce(__import__("codecs").encode, "abc", "rot13")}, 2)
        assert render_placeholder(unpickle_dict(data)["x"]) == "<_codecs.encode('abc', 'rot13')>"


class TestPlaceholder:
    """Constructing a placeholder never fails and renders briefly."""

    def test_structlog_logger(self):
        data = pickle.dumps({"_logger": logging.getLogger("app")}, 1)
        assert render_placeholder(unpickle_dict(data)["_logger"]) == "<logging.getLogger('app')>"

    def test_every_hook_records(self):
        cls = SafeUnpickler.find_class(SafeUnpickler.__new__(SafeUnpickler), "m", "C")
        obj = cls.__new__(cls, 1, k=2)
        obj.__init__(1, k=2)
        obj.__setstate__({"s": 1})
        obj.append(3)
        obj.extend([4])
        obj.add(5)
        obj["k"] = 6
        assert render_placeholder(obj) == "<m.C(1, k=2) {'s': 1} [3, 4, 5, ('k', 6)]>"
        assert render_placeholder(obj(7)) == "<m.C(1, k=2) {'s': 1} [3, 4, 5, ('k', 6)](7)>"

    def test_render_is_bounded(self):
        data = pickle.dumps({"x": _Reduce(os.getenv, "a" * 10_000, list(range(10_000)))}, 2)
        text = render_placeholder(unpickle_dict(data)["x"])
        assert len(text) <= 200
        assert text.endswith("...>")

    def test_class_itself(self):
        data = pickle.dumps({"cls": Point}, 2)
        assert render_placeholder(unpickle_dict(data)["cls"]) == "<test_unpickle.Point>"

    def test_many_names_do_not_grow_the_cache_forever(self):
        for i in range(2000):
            SafeUnpickler.find_class(SafeUnpickler.__new__(SafeUnpickler), "m", f"n{i}")
        assert len(unpickle_module._classes) <= 512


class TestShortRepr:
    """short_repr survives values repr() cannot."""

    def test_huge_int(self):
        assert short_repr(10**5000) == "<int of 16610 bits>"

    def test_amplified_list(self):
        big = ["x" * 10_000] * 100_000
        start = time.perf_counter()
        text = short_repr(big)
        assert time.perf_counter() - start < 0.1
        assert len(text) <= 200

    def test_scalars(self):
        assert short_repr(("a", 1, None, 2.5, b"b")) == "('a', 1, None, 2.5, b'b')"
        assert short_repr((1,)) == "(1,)"
        assert short_repr({"a": [1]}) == "{'a': [1]}"


def _tuple_hash_bomb(levels: int) -> bytes:
    """``{"f": {T: 1}}``, ``T = (T', T')`` ``levels`` deep (BINPUT, POP, BINGET twice, TUPLE2)."""
    ops = b"N" + b"q\x010h\x01h\x01\x86" * levels
    return (
        b"\x80\x02}q\x00(X\x03\x00\x00\x00msgX\x01\x00\x00\x00xX\x01\x00\x00\x00f}q\x02"
        + ops
        + b"K\x01su."
    )


class TestSharedTuples:
    """Issue 15 item 2's sibling: the unpickler hashes a tuple key by walking it."""

    def test_hash_bomb_is_refused_before_unpickling(self):
        # Hashing T would walk 2**64 nodes, inside the C unpickler, where no
        # budget reaches: it never finished.
        assert check_opcodes(_tuple_hash_bomb(64)) == (
            "a tuple shares its items too often to be hashed"
        )
        with pytest.raises(DecodeError, match="shares its items"):
            unpickle_dict(_tuple_hash_bomb(64))

    def test_a_little_sharing_is_fine(self):
        assert unpickle_dict(_tuple_hash_bomb(8))["f"]
        shared = (1, 2)
        value = {"msg": "m", "pts": {(shared, shared, i): i for i in range(100)}}
        for protocol in PROTOCOLS:
            assert unpickle_dict(pickle.dumps(value, protocol)) == value

    def test_stack_effects_match_pickletools(self):
        for op in pickletools.opcodes:
            before = [item.name for item in op.stack_before]
            to_mark = "mark" in before
            pops = before.index("mark") if to_mark else len(before)
            assert unpickle_module._STACK_EFFECT[ord(op.code)] == (
                to_mark,
                pops,
                len(op.stack_after),
            ), op.name

    def test_honest_tuples_need_no_replay(self):
        assert tuple_hash_problem(pickle.dumps({"t": tuple(range(1000))}, 4)) is None


class TestMemoizeAfterReuse:
    """Protocol 4 frames after another frame of the same read were lost as bad frames."""

    def test_each_frame_keeps_its_memo(self):
        twice: list = []
        twice.extend([twice, twice])
        loader = FrameLoader()
        for protocol in (1, 4, 4, 5, 2, 4):
            frame = pickle.dumps({"msg": "m", "shared": ["s", "s"], "twice": twice}, protocol)
            value = loader.load(frame)
            assert value["twice"][0] is value["twice"]


class TestCallChains:
    """A placeholder called 100,000 times in a row renders as a bounded text."""

    def test_render_is_bounded(self):
        body = b"\x80\x02}q\x00X\x03\x00\x00\x00msgq\x01ca\nb\n" + b")R" * 100_000 + b"s."
        value = unpickle_dict(body)["msg"]
        # This recursed once per call: RecursionError, not DecodeError.
        assert len(render_placeholder(value)) <= 200
        assert len(short_repr([value, value])) <= 200
