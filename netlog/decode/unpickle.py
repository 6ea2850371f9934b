"""A restricted unpickler for ``SocketHandler`` / ``DatagramHandler`` frames.

The bytes come from the network, so ``pickle.loads`` is out of the question:
a pickle names any global it likes and calls it.  :class:`SafeUnpickler`
overrides ``find_class`` so that it imports **nothing**.  A global is either

* one of a handful of side-effect-free value constructors (the allowlist
  below), resolved to a guarded wrapper around the real constructor, or
* a :class:`Placeholder` subclass named after the global.  Calling it,
  ``__new__``-ing it, ``BUILD``-ing it, appending to it: all of that only
  records the arguments.  Nothing runs, nothing is imported, nothing fails,
  so a record carrying ``logging.getLogger('app')`` (structlog's stdlib path)
  or an application object in ``extra=`` is *kept*, and the value is later
  shown as the text ``<logging.getLogger('app')>``.

The allowlist holds only constructors that take plain values, do bounded
work, touch no global state and can be shown faithfully as JSON later:
``set``/``frozenset``, the ``datetime`` value types, ``OrderedDict`` and
``_codecs.encode`` restricted to ``(str, "latin1")`` (protocol 0-2 pickles
spell every ``bytes`` value that way).  Each is wrapped: if it raises, the
result is a placeholder instead, so a strange argument cannot turn a record
into a bad frame.  Everything else is deliberately *not* allowed, most of all
``copyreg._reconstructor`` (it calls an arbitrary ``__new__``),
``builtins.getattr``/``eval``/``__import__`` and anything with a file or a
process behind it.

One more hazard is below ``find_class``: CPython's C unpickler sizes its memo
array from the index a ``PUT``/``LONG_BINPUT`` names, so a nine-byte pickle
can make it allocate and zero gigabytes (measured on 3.11: 512 MiB for one
opcode; CPython gh-115952, fixed upstream only in late 2025).
:func:`check_opcodes` walks the opcodes first and rejects a memo index that
no honest pickler could have produced (one past the number of bytes read so
far), and any argument that runs past the end of the frame.  It costs a few
microseconds per frame, which is the price of the fast C unpickler.
"""

from __future__ import annotations

import _compat_pickle
import collections
import datetime as dt
import pickle
import struct
from typing import Any, ClassVar, Final

from netlog.errors import DecodeError

__all__ = [
    "FrameLoader",
    "Placeholder",
    "SafeUnpickler",
    "check_opcodes",
    "is_placeholder",
    "render_placeholder",
    "short_repr",
    "unpickle_dict",
]

#: Longest text a placeholder renders to.
PLACEHOLDER_CHARS: Final = 200

_MAX_CACHED_CLASSES: Final = 512


class Placeholder:
    """Stands in for an unknown global and for anything built from it.

    Every hook the unpickler may call (``__new__`` with any arguments,
    ``__init__``, ``__call__``, ``__setstate__``, ``append``/``extend``/
    ``add``, item assignment) only stores what it was given.  There is no
    ``__getattr__``, ``__iter__`` or ``__getitem__``, so allowlisted
    constructors given a placeholder fail cleanly instead of iterating it.
    """

    __slots__ = ("args", "items", "kwargs", "state")
    qualname: ClassVar[str] = "?"

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    state: Any
    items: list[Any]

    def __new__(cls, *args: Any, **kwargs: Any) -> Placeholder:  # noqa: D102, PYI034 - the class docstring covers it; subclasses come from type()
        self = object.__new__(cls)
        self.args = args
        self.kwargs = kwargs
        self.state = None
        self.items = []
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Accept anything: ``REDUCE``/``INST`` call the class like a function."""

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __call__(self, *args: Any, **kwargs: Any) -> Placeholder:
        """A placeholder used as a callable (``getattr(x, 'y')(...)``) yields another."""
        return _called(self, args, kwargs)

    def append(self, item: Any) -> None:
        """Collect ``APPEND``: the placeholder may stand for a list-like type."""
        self.items.append(item)

    def extend(self, items: Any) -> None:
        """Collect ``APPENDS``."""
        if isinstance(items, list):
            self.items.extend(items)

    def add(self, item: Any) -> None:
        """Collect ``ADDITEMS``."""
        self.items.append(item)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.items.append((key, value))

    def __repr__(self) -> str:
        return render_placeholder(self)


class _CallResult(Placeholder):
    """What calling a placeholder *instance* gives."""

    __slots__ = ("target",)
    target: Placeholder


def _called(target: Placeholder, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Placeholder:
    result = _CallResult(*args, **kwargs)
    result.target = target
    return result


_classes: dict[str, type[Placeholder]] = {}


def _placeholder_class(qualname: str) -> type[Placeholder]:
    """Return the placeholder class for a global, cached while the cache is small.

    The cache keeps repeated frames from building a class each time; its
    bound keeps a hostile stream of made-up names from growing it forever
    (past the bound a fresh class is made per lookup, which is still correct).
    """
    cls = _classes.get(qualname)
    if cls is None:
        cls = type("Placeholder", (Placeholder,), {"__slots__": (), "qualname": qualname})
        if len(_classes) < _MAX_CACHED_CLASSES:
            _classes[qualname] = cls
    return cls


def is_placeholder(value: Any) -> bool:
    """Tell whether a decoded value is a placeholder instance or class."""
    return isinstance(value, Placeholder) or (
        isinstance(value, type) and issubclass(value, Placeholder)
    )


# --- the allowlist ---------------------------------------------------------


def _guarded(qualname: str, constructor: Any) -> Any:
    """Wrap a value constructor so that a failure yields a placeholder, not an error."""
    fallback = _placeholder_class(qualname)

    def build(*args: Any, **kwargs: Any) -> Any:
        try:
            return constructor(*args, **kwargs)
        except Exception:  # noqa: BLE001 - any failure means "show it as text", by design
            return fallback(*args, **kwargs)

    return build


def _latin1_encode(*args: Any, **kwargs: Any) -> Any:
    """``_codecs.encode`` for the one call protocol 0-2 pickles make: ``(str, "latin1")``."""
    if (
        not kwargs
        and len(args) == 2
        and isinstance(args[0], str)
        and args[1] in {"latin1", "latin-1"}
    ):
        try:
            return args[0].encode("latin-1")
        except UnicodeEncodeError:
            pass
    return _placeholder_class("_codecs.encode")(*args, **kwargs)


_ALLOWED: Final[dict[str, Any]] = {
    "builtins.set": _guarded("builtins.set", set),
    "builtins.frozenset": _guarded("builtins.frozenset", frozenset),
    "datetime.datetime": _guarded("datetime.datetime", dt.datetime),
    "datetime.date": _guarded("datetime.date", dt.date),
    "datetime.time": _guarded("datetime.time", dt.time),
    "datetime.timedelta": _guarded("datetime.timedelta", dt.timedelta),
    "datetime.timezone": _guarded("datetime.timezone", dt.timezone),
    "collections.OrderedDict": _guarded("collections.OrderedDict", collections.OrderedDict),
    "_codecs.encode": _latin1_encode,
}


def _python3_name(module: str, name: str) -> str:
    """Map protocol 0-2 (Python 2) names to today's, as the stock unpickler would."""
    mapped = _compat_pickle.NAME_MAPPING.get((module, name))
    if mapped is not None:
        module, name = mapped
    else:
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    return f"{module}.{name}"


class SafeUnpickler(pickle.Unpickler):
    """The C unpickler with imports replaced by the allowlist and placeholders."""

    def find_class(self, module: str, name: str) -> Any:  # noqa: D102 - see the class docstring
        qualname = _python3_name(module, name)
        allowed = _ALLOWED.get(qualname)
        if allowed is not None:
            return allowed
        return _placeholder_class(qualname)

    def persistent_load(self, pid: Any) -> Any:  # noqa: ARG002, D102 - no persistent ids on the wire
        raise pickle.UnpicklingError("persistent ids are not accepted")


class _FrameSource:
    """The file the unpickler reads one frame from.

    With ``peek`` the C unpickler takes the whole frame as its in-memory
    buffer in one call; without it (``io.BytesIO`` has none) it calls
    ``read`` once per opcode, which measured 3x slower (10 µs vs 3.5 µs for
    a typical LogRecord).  :class:`FrameLoader` rebinds one source to each
    frame of a read.
    """

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def peek(self, size: int = 0) -> bytes:  # noqa: ARG002 - the whole frame is always available
        return self.data[self.pos :] if self.pos else self.data

    def read(self, size: int = -1) -> bytes:
        start = self.pos
        stop = len(self.data) if size < 0 else min(len(self.data), start + size)
        self.pos = stop
        return self.data[start:stop]

    def readline(self) -> bytes:
        start = self.pos
        stop = self.data.find(b"\n", start)
        stop = len(self.data) if stop < 0 else stop + 1
        self.pos = stop
        return self.data[start:stop]

    def readinto(self, target: Any) -> int:
        chunk = self.read(len(target))
        target[: len(chunk)] = chunk
        return len(chunk)


# --- the opcode pre-check --------------------------------------------------

# How each opcode's argument is laid out, as an int per opcode byte:
# >= 0: that many fixed bytes; the negative codes below are special.
_UNKNOWN: Final = -1
_LINE: Final = -2
_TWO_LINES: Final = -3
_LEN1: Final = -4
_LEN4: Final = -5
_LEN8: Final = -6
_STOP: Final = -7
_LONG_BINPUT: Final = -8
_PUT: Final = -9
# Opcodes that can make a tuple share an object (GET, DUP) or build a
# tuple: rare in SocketHandler frames, so they are last in the chain.
_GET1: Final = -10
_GET4: Final = -11
_GETLINE: Final = -12
_DUP: Final = -13
_TUPLE: Final = -14


def _layout() -> list[int]:
    table = [_UNKNOWN] * 256
    for codes, kind in (
        ("(]}01NRQabdelosu\x81\x88\x89\x8f\x90\x91\x92\x93\x94\x97\x98", 0),
        ("KqC\x80\x82", 1),
        ("M\x83", 2),
        ("J\x84", 4),
        ("G\x95", 8),
        ("ILSVFP", _LINE),
        ("h", _GET1),
        ("j", _GET4),
        ("g", _GETLINE),
        ("2", _DUP),
        (")t\x85\x86\x87", _TUPLE),
        ("ci", _TWO_LINES),
        ("U\x8a\x8c", _LEN1),
        ("TBX\x8b", _LEN4),
        ("\x8d\x8e\x96", _LEN8),
        (".", _STOP),
        ("r", _LONG_BINPUT),
        ("p", _PUT),
    ):
        for code in codes:
            table[ord(code)] = kind
    # SHORT_BINBYTES is length-prefixed, not a fixed byte.
    table[ord("C")] = _LEN1
    return table


_LAYOUT: Final = _layout()
_U32: Final = struct.Struct("<I").unpack_from
_U64: Final = struct.Struct("<Q").unpack_from


def check_opcodes(data: bytes) -> str | None:  # noqa: C901, PLR0912, PLR0915 - one loop over the opcode kinds
    """Return why a pickle must not reach the C unpickler, or None if it may.

    Only memory hazards are looked for; everything else (an unknown opcode,
    a stack underflow) the unpickler reports itself, and nothing it executes
    before that point can allocate more than the frame's size.  Branches are
    ordered by how often SocketHandler frames use them; this costs about as
    much as the unpickling itself (~5 µs for a typical LogRecord frame).

    A frame that both builds tuples and shares objects (memo ``GET``,
    ``DUP``) is also checked by :func:`tuple_hash_problem`: the unpickler
    hashes a tuple used as a dict key or set member by walking it, and
    ``T = (T', T')`` nested 64 times is a 2**64-node walk.
    """
    layout = _LAYOUT
    u32 = _U32
    len4, len1, stop_, long_binput = (
        _LEN4,
        _LEN1,
        _STOP,
        _LONG_BINPUT,
    )  # locals: faster than globals
    i = 0
    shares = tuples = False
    try:
        while True:
            code = data[i]
            if code == 0x58:  # BINUNICODE, most of a LogRecord frame: no table lookup
                i += 5 + u32(data, i + 1)[0]
                if data[i] == 0x71:  # a BINPUT follows nearly every string: skip it too
                    i += 2
                continue
            kind = layout[code]
            i += 1
            if kind >= 0:
                i += kind
            elif kind == len4:
                i += 4 + u32(data, i)[0]
                if data[i] == 0x71:
                    i += 2
            elif kind == _GET1:  # BINGET: SocketHandler frames have a few
                shares = True
                i += 1
            elif kind == len1:
                i += 1 + data[i]
                if data[i] == 0x71:
                    i += 2
            elif kind == stop_:
                return tuple_hash_problem(data) if shares and tuples else None
            elif kind == long_binput:
                if u32(data, i)[0] > i:
                    return "memo index out of range"
                i += 4
            elif kind in {_LINE, _PUT}:
                stop = data.index(b"\n", i)
                if kind == _PUT:
                    index = int(data[i:stop])
                    if not 0 <= index <= i:
                        return "memo index out of range"
                i = stop + 1
            elif kind == _TWO_LINES:
                i = data.index(b"\n", data.index(b"\n", i) + 1) + 1
            elif kind == _LEN8:
                i += 8 + _U64(data, i)[0]
            elif kind == _TUPLE:
                tuples = True
            elif kind == _GET4:
                shares = True
                i += 4
            elif kind == _GETLINE:
                shares = True
                i = data.index(b"\n", i) + 1
            elif kind == _DUP:
                shares = True
            else:
                return f"unknown opcode 0x{data[i - 1]:02x}"
    except (IndexError, struct.error):
        return "truncated pickle"
    except ValueError:
        return "bad opcode argument"


#: How each opcode moves the stack, for :func:`tuple_hash_problem`:
#: ``(pops up to a mark, then pops, then pushes)``, as pickletools' table
#: says (written out: importing pickletools costs the server ~0.5 MiB).
_STACK_EFFECT: Final = {
    ord(code): effect
    for codes, effect in (
        ("pqr\x80\x95", (False, 0, 0)),
        (
            "IJKML\x8a\x8bSTUBC\x8e\x96\x97N\x88\x89V\x8cX\x8dFG])}\x8f(ghj\x82\x83\x84cP",
            (False, 0, 1),
        ),
        ("0.", (False, 1, 0)),
        ("\x98\x85\x94Q", (False, 1, 1)),
        ("2", (False, 1, 2)),
        ("a\x86\x93Rb\x81", (False, 2, 1)),
        ("\x87s\x92", (False, 3, 1)),
        ("1", (True, 0, 0)),
        ("ltd\x91io", (True, 0, 1)),
        ("eu\x90", (True, 1, 1)),
    )
    for code in codes
}
_MARK: Final = -1


def tuple_hash_problem(data: bytes) -> str | None:  # noqa: C901, PLR0912, PLR0915 - one loop over the opcodes
    """Tell why hashing a tuple of this pickle would cost too much, or None.

    Replays the stack, keeping for each item the number of nodes a hash of
    it walks (1 for anything but a tuple: a str, frozenset or placeholder
    hash is cached or constant).  A tuple whose walk exceeds four times the
    frame's size (plus 64 Ki) can only come from shared sub-tuples, the
    hash amplification; an honest frame's tuples are at most its size.
    Runs only for frames that build tuples and share objects (rare), at
    about 0.3 µs an opcode.  Malformed pickles are left to the unpickler.
    """
    limit = 4 * len(data) + (1 << 16)
    layout = _LAYOUT
    effects = _STACK_EFFECT
    stack: list[int] = []
    memo: dict[int, int] = {}
    i = 0
    try:
        while True:
            code = data[i]
            kind = layout[code]
            i += 1
            weight = 1
            if code in _TUPLE_N:
                count = _TUPLE_N[code]
                if count < 0:
                    mark = len(stack) - 1 - stack[::-1].index(_MARK)
                    items = stack[mark + 1 :]
                    del stack[mark:]
                else:
                    items = stack[len(stack) - count :] if count else []
                    if len(items) != count or _MARK in items:
                        return None
                    del stack[len(stack) - count :]
                weight = 1 + sum(items)
                if weight > limit:
                    return "a tuple shares its items too often to be hashed"
                stack.append(weight)
                continue
            if kind in _GETS:
                index, i = _memo_index(data, i, code, len(memo))
                stack.append(memo.get(index, 1))
                continue
            if kind == _DUP:
                stack.append(_top(stack))
                continue
            if code in _MEMO_PUT:
                index, i = _memo_index(data, i, code, len(memo))
                memo[index] = _top(stack)
                continue
            if kind == _STOP:
                return None
            # Every other opcode: skip its argument, apply its stack effect.
            if kind >= 0:
                i += kind
            elif kind == _LEN1:
                i += 1 + data[i]
            elif kind == _LEN4:
                i += 4 + _U32(data, i)[0]
            elif kind == _LEN8:
                i += 8 + _U64(data, i)[0]
            elif kind == _LINE:
                i = data.index(b"\n", i) + 1
            elif kind == _TWO_LINES:
                i = data.index(b"\n", data.index(b"\n", i) + 1) + 1
            else:
                return None
            to_mark, pops, pushes = effects[code]
            if code == 0x30 and stack and stack[-1] == _MARK:  # POP of a mark
                stack.pop()
                continue
            if to_mark:
                del stack[len(stack) - 1 - stack[::-1].index(_MARK) :]
            if pops:
                if len(stack) < pops:
                    return None
                del stack[len(stack) - pops :]
            if code == 0x28:  # MARK
                stack.append(_MARK)
            else:
                stack.extend([1] * pushes)
    except (IndexError, ValueError, struct.error, KeyError):
        return None


def _memo_index(data: bytes, i: int, code: int, size: int) -> tuple[int, int]:
    """The memo index a GET/PUT opcode at ``i - 1`` names, and where the next opcode starts."""
    if code in {0x68, 0x71}:  # BINGET, BINPUT
        return data[i], i + 1
    if code in {0x6A, 0x72}:  # LONG_BINGET, LONG_BINPUT
        return _U32(data, i)[0], i + 4
    if code == 0x94:  # MEMOIZE: the next free index
        return size, i
    stop = data.index(b"\n", i)  # GET, PUT: a decimal line
    return int(data[i:stop]), stop + 1


def _top(stack: list[int]) -> int:
    """The weight of the top object: marks are not objects to the unpickler."""
    for weight in reversed(stack):
        if weight != _MARK:
            return weight
    raise IndexError


#: Tuple-building opcodes and how many items each takes (-1: up to the mark).
_TUPLE_N: Final = {0x29: 0, 0x74: -1, 0x85: 1, 0x86: 2, 0x87: 3}
_GETS: Final = frozenset({_GET1, _GET4, _GETLINE})
#: PUT, BINPUT, LONG_BINPUT, MEMOIZE.
_MEMO_PUT: Final = frozenset({0x70, 0x71, 0x72, 0x94})


_JOIN: Final = "".join

#: The largest frame whose unpickler the next frame of a read may reuse:
#: its memo has at most 4,096 entries (32 KiB) to clear.  A LogRecord frame
#: is typically 500-1,500 bytes.
_REUSE_MAX: Final = 2048


class FrameLoader:
    """Unpickles a run of frames, one read's worth, with a single :class:`SafeUnpickler`.

    Building the unpickler and binding it to its source costs about a
    microsecond, a twentieth of a LogRecord frame's whole cost, so a read
    of many frames shares one.  The loader is made per read and dropped
    after it, not kept per connection: the C unpickler keeps its memo array
    at the largest size any frame needed and a reference to the last frame,
    and an idle connection should not hold either.

    A frame that fails, or that has bytes after its ``STOP``, leaves unread
    bytes in the unpickler's buffer, which the next ``load`` would read as
    the start of the next frame; the unpickler is replaced after either.
    The memo is cleared after every frame, so a frame can only ``GET`` what
    it ``PUT`` itself, as with a fresh unpickler.

    Clearing keeps the memo array at its size and zeroes it, and a frame may
    legitimately grow it to twice its own length in entries (a
    ``LONG_BINPUT`` index may be as large as the bytes before it).  So only
    frames of at most :data:`_REUSE_MAX` bytes leave their unpickler to the
    next one: after a 600 KB frame, every later frame of the read would
    otherwise zero a 9.6 MB memo (measured: 1.4 ms per two-key frame).
    """

    __slots__ = ("_source", "_unpickler")

    def __init__(self) -> None:
        self._source = _FrameSource(b"")
        self._unpickler: SafeUnpickler | None = None

    def load(self, data: bytes) -> dict[str, Any]:
        """Unpickle one frame into a dict with ``str`` keys, or raise ``DecodeError("bad_frame")``.

        Whatever the C unpickler raises on hostile bytes (``UnpicklingError``,
        ``EOFError``, ``ValueError``, ``MemoryError``, ``RecursionError``, ...)
        is turned into the decoder's one error type, so callers never see
        anything else.
        """
        if not data:
            raise DecodeError("bad_frame", "empty pickle frame")
        problem = check_opcodes(data)
        if problem is not None:
            raise DecodeError("bad_frame", f"rejected pickle frame: {problem}")
        source = self._source
        source.data = data
        source.pos = 0
        unpickler = self._unpickler
        if unpickler is None or b"\x94" in data:
            # MEMOIZE (protocol 4+) stores at the memo's entry count, which
            # memo.clear() does not reset: in a reused unpickler the frame's
            # own BINGETs would miss (a good record lost as a bad frame).
            unpickler = self._unpickler = SafeUnpickler(source)
        try:
            value = unpickler.load()
        except Exception as exc:  # noqa: BLE001 - hostile bytes can make the C unpickler raise anything
            self._unpickler = None
            raise DecodeError("bad_frame", f"cannot unpickle frame: {type(exc).__name__}") from None
        if source.pos == len(data) and len(data) <= _REUSE_MAX:
            unpickler.memo.clear()
        else:
            self._unpickler = None
        if type(value) is not dict:
            raise DecodeError("bad_frame", f"pickle frame holds a {_type_name(value)}, not a dict")
        try:
            # Raises TypeError unless every key is a str, in C: half the cost
            # of collecting the key types.  A str *subclass* would pass, but
            # nothing here makes one: the unpickler's strings are str, and the
            # allowlisted constructors and placeholders make no str.
            _JOIN(value)
        except TypeError:
            raise DecodeError("bad_frame", "pickle frame dict has a non-string key") from None
        return value


def unpickle_dict(data: bytes) -> dict[str, Any]:
    """Unpickle a single frame (a datagram): :meth:`FrameLoader.load` with a loader of its own."""
    return FrameLoader().load(data)


def _type_name(value: Any) -> str:
    if isinstance(value, Placeholder):
        return type(value).qualname
    return type(value).__name__


# --- rendering -------------------------------------------------------------


def render_placeholder(value: Placeholder | type[Placeholder]) -> str:
    """Show a placeholder as ``<module.name(args)>``, at most ~200 characters."""
    parts: list[str] = []
    _render(value, parts, [PLACEHOLDER_CHARS], 0)
    text = "".join(parts)
    if len(text) > PLACEHOLDER_CHARS:
        text = text[: PLACEHOLDER_CHARS - 4] + "...>"
    return text


def short_repr(value: Any, limit: int = PLACEHOLDER_CHARS) -> str:
    """A ``repr``-like text of a decoded value that never exceeds ``limit`` by much.

    ``repr()`` itself is unusable on decoded data: a memo-amplified list
    renders to gigabytes, a nested one raises ``RecursionError``, and an int
    of 5000 digits raises ``ValueError``.
    """
    parts: list[str] = []
    _render(value, parts, [limit], 0)
    text = "".join(parts)
    if len(text) > limit:
        text = text[: max(0, limit - 3)] + "..."
    return text


_RENDER_DEPTH: Final = 4
#: Placeholders nest without containers (``f()()()...`` is two bytes a
#: call): past this depth they are shown as ``...`` too.
_RENDER_NESTING: Final = 16


def _render(value: Any, out: list[str], budget: list[int], depth: int) -> None:
    if budget[0] <= 0 or depth > _RENDER_NESTING:
        out.append("...")
        return
    if isinstance(value, type) and issubclass(value, Placeholder):
        text = f"<{value.qualname}>"
    elif isinstance(value, Placeholder):
        _render_instance(value, out, budget, depth)
        return
    elif isinstance(value, str | bytes | bytearray):
        text = repr(value[: budget[0]])
    elif isinstance(value, int):
        text = repr(value) if value.bit_length() < 1000 else f"<int of {value.bit_length()} bits>"
    elif value is None or isinstance(
        value, float | complex | dt.date | dt.time | dt.timedelta | dt.tzinfo
    ):
        text = repr(value)
    elif isinstance(value, list | tuple | set | frozenset | dict):
        if depth >= _RENDER_DEPTH:
            text = "..."
        else:
            _render_container(value, out, budget, depth)
            return
    else:
        text = f"<{type(value).__name__}>"
    budget[0] -= len(text)
    out.append(text)


def _render_container(value: Any, out: list[str], budget: list[int], depth: int) -> None:
    if isinstance(value, dict):
        opening, closing = "{", "}"
    elif isinstance(value, list):
        opening, closing = "[", "]"
    elif isinstance(value, tuple):
        opening, closing = "(", ",)" if len(value) == 1 else ")"
    else:
        opening, closing = "{", "}"
    out.append(opening)
    budget[0] -= 1
    first = True
    for item in value:
        if budget[0] <= 0:
            out.append(", ...")
            break
        if not first:
            out.append(", ")
            budget[0] -= 2
        first = False
        _render(item, out, budget, depth + 1)
        if isinstance(value, dict):
            out.append(": ")
            budget[0] -= 2
            _render(value[item], out, budget, depth + 1)
    out.append(closing)
    budget[0] -= len(closing)


def _render_instance(value: Placeholder, out: list[str], budget: list[int], depth: int) -> None:
    args: tuple[Any, ...] = value.args
    name = type(value).qualname
    if isinstance(value, _CallResult):
        # e.g. getattr(x, "y")(...): name it after what was called.
        # Charged to the one budget, so a chain of calls cannot grow it.
        inner: list[str] = []
        _render(value.target, inner, budget, depth + 1)
        name = "".join(inner).removeprefix("<").removesuffix(">")
    elif (
        name == "copyreg._reconstructor"
        and len(args) == 3
        and isinstance(args[0], type)
        and issubclass(args[0], Placeholder)
    ):
        # Protocol 0/1 spelling of "an instance of class X": show X.
        name = args[0].qualname
        args = () if args[2] is None else (args[2],)
    out.append("<" + name)
    budget[0] -= 2 if isinstance(value, _CallResult) else len(name) + 2
    if args or value.kwargs:
        out.append("(")
        first = True
        for arg in args:
            if not first:
                out.append(", ")
            first = False
            _render(arg, out, budget, depth + 1)
        for key, arg in value.kwargs.items():
            if not first:
                out.append(", ")
            first = False
            out.append(f"{key}=")
            _render(arg, out, budget, depth + 1)
        out.append(")")
    if value.state is not None:
        out.append(" ")
        _render(value.state, out, budget, depth + 1)
    if value.items:
        out.append(" ")
        _render(value.items, out, budget, depth + 1)
    out.append(">")
