"""Message trees to bytes and back, with numpy arrays out of band.

``encode(value)`` pickles the tree (protocol 5) into a small *header*, but every numpy array of
a plain dtype is left out: the stream holds only ``(dtype, shape, order)`` and an out-of-band
buffer slot, and the array itself is returned in ``Encoded.arrays``. The caller (a ring) copies
each array exactly once, straight into shared memory, with ``np.copyto`` (so a non-contiguous
input costs one strided copy, not a temporary plus a copy). ``decode(header, buffers)`` rebuilds
the tree with each array as a read-only numpy view over its buffer: no copy on read.

Decoding is one C call, ``pickle.loads(stream, buffers=...)``: the arrays' buffers are handed
over out of band, so no Python-level unpickler runs per message.

**Flat messages.** A plain dataclass whose top-level fields hold arrays (a frame, its boxes and
scores) is sent *flat*: the header names a *layout* (its class, and each top-level array's field,
dtype, shape and order) and the pickle stream holds only the other fields. A ``Decoder`` (one
per ring reader) keeps the array views it built for each ring position and layout, so reading
the next message at a position already seen builds no array over a buffer: it hands out cheap
views of the views built then (fresh objects, so a caller reshaping one changes nothing else).
That is most of a read's cost: a nested message reads in a few microseconds.

Frame references (``FrameRef``) are also listed in the header, so that the channel can hold the
frame for as long as the message is in flight (see ``framestore.py``).

Anything pickle refuses (open files, locks, lambdas, generators, sockets) is refused at write
time with an ``EncodeError`` that names the field path, for example ``Detections.boxes[3]``.
Only conveyor's own processes read these bytes (segments are mode 0600), which is what makes
pickle acceptable here.
"""

from __future__ import annotations

import dataclasses
import importlib
import io
import pickle
import struct
import sys
import threading
import types
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from conveyor._errors import DecodeError, EncodeError
from conveyor.transport.frameref import FrameRef

ALIGN = 64  # arrays start on cache-line boundaries in shared memory


@dataclasses.dataclass(slots=True)
class Encoded:
    """A message ready to be written: header bytes + arrays to copy + frames it references."""

    header: bytes
    arrays: list[np.ndarray]
    frame_refs: list[FrameRef]


# Header: flags u8 | root-class length u16 | refs length u16 | root class ("module:qualname")
# | frame refs (packed) | pickle stream (protocol 5; arrays are out-of-band buffers).
_HEAD = struct.Struct("<BHH")
_REF = struct.Struct("<IIQ")  # camera, slot, generation (after a u8-length store name)
_F_ROOT_DATACLASS = 1  # the stream is the root dataclass's field values
_F_FLAT = 2  # a layout names the root class and its top-level arrays (the first buffers)
TABLE_ENTRY = struct.Struct("<QQ")  # where a buffer lies in a record: offset, nbytes
_MAX_CACHED = 512  # layouts and view sets kept; past that the cache starts again


def _rebuild_array(buf: Any, dtype: Any, shape: tuple[int, ...], order: Any) -> np.ndarray:
    """Called by pickle.loads with the array's out-of-band buffer: a view, never a copy."""
    if type(dtype) is str:
        dtype = _dtype(dtype)
    return np.ndarray(shape, dtype=dtype, buffer=buf, order=order)


_dtypes: dict[str, np.dtype] = {}


# -- the dataclass fast path ---------------------------------------------------------------------
# Pickle spends most of a small message's time on a dataclass's class reference and state dict
# (~6 us each way here). A dataclass whose state is exactly its fields travels instead as its
# class and a tuple of field values (the root one as a name in the header, so no class lookup
# in the stream at all), and is rebuilt the way pickle would (no __init__, no __post_init__).
# Anything unusual (custom pickling, extra attributes, local classes) takes plain pickle, so
# round trips stay exact.


class _DataclassInfo:
    __slots__ = ("key", "names", "slots")

    def __init__(self, cls: type) -> None:
        self.key = f"{cls.__module__}:{cls.__qualname__}"
        self.names = tuple(f.name for f in dataclasses.fields(cls))
        self.slots = not hasattr(cls, "__dict__") or "__slots__" in cls.__dict__


_fast_info: dict[type, _DataclassInfo | None] = {}


def _info_for(cls: type) -> _DataclassInfo | None:
    try:
        return _fast_info[cls]
    except KeyError:
        pass
    ok = (
        dataclasses.is_dataclass(cls)
        and "<locals>" not in cls.__qualname__
        and cls.__reduce_ex__ is object.__reduce_ex__
        and cls.__reduce__ is object.__reduce__
        and cls.__getstate__ is object.__getstate__
        and getattr(cls, "__setstate__", None) is None
    )
    info = _fast_info[cls] = _DataclassInfo(cls) if ok else None
    return info


def _field_values(obj: object, info: _DataclassInfo) -> tuple[Any, ...] | None:
    """The field values, or None when the instance carries state beyond its fields."""
    if info.slots:
        try:
            return tuple([getattr(obj, n) for n in info.names])
        except AttributeError:
            return None
    state = obj.__dict__
    if tuple(state) != info.names:
        return None
    return tuple(state.values())


def _build(cls: type, info: _DataclassInfo, values: tuple[Any, ...]) -> Any:
    obj: Any = object.__new__(cls)
    if info.slots:
        for name, value in zip(info.names, values, strict=True):
            object.__setattr__(obj, name, value)
    else:
        obj.__dict__.update(zip(info.names, values, strict=True))
    return obj


def _rebuild_dataclass(cls: type, values: tuple[Any, ...]) -> Any:
    """Called by pickle.loads for a nested dataclass sent on the fast path."""
    info = _fast_info.get(cls) or _info_for(cls)
    if info is None:
        raise DecodeError(f"{cls.__qualname__} is not a plain dataclass in this process")
    return _build(cls, info, values)


_roots: dict[bytes, tuple[type, _DataclassInfo]] = {}


def _root_class(key: bytes) -> tuple[type, _DataclassInfo]:
    hit = _roots.get(key)
    if hit is not None:
        return hit
    module, _, qualname = key.decode().partition(":")
    try:
        obj: Any = sys.modules.get(module) or importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise DecodeError(
            f"message names class {key.decode()}, which this process cannot import"
        ) from exc
    info = _info_for(obj)
    if info is None:
        raise DecodeError(f"class {key.decode()} is not a plain dataclass in this process")
    hit = _roots[key] = (obj, info)
    return hit


def _is_plain_array(obj: object) -> bool:
    return type(obj) is np.ndarray and not obj.dtype.hasobject


class _Pickler(pickle.Pickler):
    """Reused for every message of a thread (creating a Pickler costs more than a small dump)."""

    def __init__(self) -> None:
        self.file = io.BytesIO()
        super().__init__(self.file, protocol=5, buffer_callback=self._buffer_callback)
        self.reset()

    def reset(self) -> None:
        self.file.seek(0)
        self.file.truncate()
        self.arrays: list[np.ndarray] = []
        self.frame_refs: list[FrameRef] = []
        self.own_buffers = 0

    def _buffer_callback(self, buf: pickle.PickleBuffer) -> bool:
        # Out of band (False) only for the placeholders of our arrays; any other buffer (an
        # object-dtype array's, a bytearray's) stays in the stream.
        if self.own_buffers:
            self.own_buffers -= 1
            return False
        return True

    def reducer_override(self, obj: object) -> Any:
        if _is_plain_array(obj):
            arr: np.ndarray = obj  # type: ignore[assignment]
            order = _order(arr)
            self.arrays.append(arr)
            self.own_buffers += 1
            dt = arr.dtype
            # A simple dtype travels as its short string ('<f4'): pickling a dtype object
            # costs more than the rest of a small array's message.
            spec = dt.str if dt.names is None and dt.subdtype is None else dt
            return _rebuild_array, (pickle.PickleBuffer(b""), spec, arr.shape, order)
        cls = type(obj)
        if cls is FrameRef:
            self.frame_refs.append(obj)  # type: ignore[arg-type]
            return NotImplemented
        info = _fast_info[cls] if cls in _fast_info else _info_for(cls)
        if info is not None:
            values = _field_values(obj, info)
            if values is not None:
                return _rebuild_dataclass, (cls, values)
        return NotImplemented


_local = threading.local()


def _pickler() -> _Pickler:
    pickler = getattr(_local, "pickler", None)
    if pickler is None:
        pickler = _local.pickler = _Pickler()
    return pickler


def _pack_refs(refs: list[FrameRef]) -> bytes:
    out = []
    for ref in refs:
        name = ref.store.encode()
        out.append(bytes([len(name)]) + name + _REF.pack(ref.camera, ref.slot, ref.generation))
    return b"".join(out)


_store_names: dict[bytes, str] = {}  # a run has a handful of stores: names decoded once
_new_ref = tuple.__new__  # FrameRef's own __new__ is Python code; its fields are known here


def _unpack_refs(raw: bytes | memoryview) -> list[FrameRef]:
    refs, pos = [], 0
    while pos < len(raw):
        n = raw[pos]
        name = bytes(raw[pos + 1 : pos + 1 + n])
        store = _store_names.get(name)
        if store is None:
            if len(_store_names) >= _MAX_CACHED:
                _store_names.clear()
            store = _store_names[name] = name.decode()
        camera, slot, gen = _REF.unpack_from(raw, pos + 1 + n)
        refs.append(_new_ref(FrameRef, (store, camera, slot, gen)))
        pos += 1 + n + _REF.size
    return refs


def encode(value: object) -> Encoded:
    """Split ``value`` into a header and the arrays to copy into shared memory."""
    pickler = _pickler()
    pickler.reset()
    flags, root = 0, b""
    payload: object = value
    flat: list[np.ndarray] = []
    cls = type(value)
    info = _info_for(cls)
    if info is not None:
        values = _field_values(value, info)
        if values is not None:
            laid_out = _flat_layout(cls, info, values)
            if laid_out is None:
                payload, flags, root = values, _F_ROOT_DATACLASS, info.key.encode()
            else:
                root, flat, flat_refs, payload = laid_out
                flags = _F_FLAT
                pickler.frame_refs.extend(flat_refs)  # first: the layout's fields take them
    try:
        pickler.dump(payload)
    except Exception as exc:
        raise _explain(value, exc) from exc
    finally:
        pickler.clear_memo()  # the memo would keep the caller's objects alive
    refs = _pack_refs(pickler.frame_refs) if pickler.frame_refs else b""
    header = _HEAD.pack(flags, len(root), len(refs)) + root + refs + pickler.file.getvalue()
    arrays = flat + pickler.arrays if flat else pickler.arrays
    return Encoded(header, arrays, pickler.frame_refs)


# -- flat messages: top-level arrays by layout -------------------------------------------------


def _order(arr: np.ndarray) -> str:
    return "F" if arr.flags.f_contiguous and not arr.flags.c_contiguous else "C"


_layout_bytes: dict[tuple[Any, ...], bytes] = {}


def _flat_layout(
    cls: type, info: _DataclassInfo, values: tuple[Any, ...]
) -> tuple[bytes, list[np.ndarray], list[FrameRef], tuple[Any, ...]] | None:
    """(layout, top-level arrays, top-level frame references, the other fields with None in
    their places), or None when the message is not flat."""
    specs: list[tuple[int, str, tuple[int, ...], str]] = []
    arrays: list[np.ndarray] = []
    ref_fields: list[int] = []
    refs: list[FrameRef] = []
    for i, v in enumerate(values):
        kind = type(v)
        if kind is np.ndarray:
            dt = v.dtype
            if dt.hasobject or dt.names is not None or dt.subdtype is not None:
                return None  # pickled whole, as before
            specs.append((i, dt.str, v.shape, _order(v)))
            arrays.append(v)
        elif kind is FrameRef:
            ref_fields.append(i)
            refs.append(v)
    if not arrays or len({id(a) for a in arrays}) != len(arrays):
        return None  # no array to lay out, or one array twice (pickle keeps it shared)
    key = (cls, *specs, *ref_fields)
    layout = _layout_bytes.get(key)
    if layout is None:
        if len(_layout_bytes) >= _MAX_CACHED:
            _layout_bytes.clear()
        raw = (info.key, tuple(specs), tuple(ref_fields))
        layout = _layout_bytes[key] = pickle.dumps(raw, protocol=5)
    rest = list(values)
    for spec in specs:
        rest[spec[0]] = None
    for i in ref_fields:
        rest[i] = None
    return layout, arrays, refs, tuple(rest)


class _Layout:
    """A layout read back: the class, and how to view each top-level array."""

    # names and slots are the class info's, copied: read on every message
    __slots__ = ("cls", "names", "array_names", "ref_names", "views", "slots", "info")

    def __init__(self, raw: bytes) -> None:
        key, specs, ref_fields = pickle.loads(raw)
        self.cls, self.info = _root_class(key.encode())
        self.names = self.info.names
        self.slots = self.info.slots
        self.array_names = tuple(self.names[spec[0]] for spec in specs)
        self.ref_names = tuple(self.names[i] for i in ref_fields)
        self.views = [(_dtype(dt), tuple(shape), order) for _, dt, shape, order in specs]

    def arrays(self, buffers: Sequence[memoryview]) -> list[np.ndarray]:
        return [
            np.ndarray(shape, dtype=dt, buffer=buf, order=order)
            for (dt, shape, order), buf in zip(self.views, buffers, strict=True)
        ]

    def placed(self, table: bytes) -> list[tuple[Any, ...]]:
        """Each array's (shape, dtype, offset in its record, order), from the record's table."""
        return [
            (shape, dt, TABLE_ENTRY.unpack_from(table, k * TABLE_ENTRY.size)[0], order)
            for k, (dt, shape, order) in enumerate(self.views)
        ]

    def build(
        self, stream: memoryview | bytes, arrays: list[np.ndarray], refs: list[FrameRef], rest: Any
    ) -> Any:
        # The other fields' stream has None where each array or reference goes: filled in
        # place, so the field order is the class's (and the value goes flat again if forwarded).
        state = dict(zip(self.names, pickle.loads(stream, buffers=rest), strict=True))
        state.update(zip(self.array_names, arrays, strict=True))
        if self.ref_names:
            state.update(zip(self.ref_names, refs, strict=False))  # theirs come first
        obj: Any = object.__new__(self.cls)
        if self.slots:
            for name, value in state.items():
                object.__setattr__(obj, name, value)
        else:
            obj.__dict__ = state
        return obj


def _dtype(spec: str) -> np.dtype[Any]:
    return _dtypes.get(spec) or _dtypes.setdefault(spec, np.dtype(spec))


_layouts: dict[bytes, _Layout] = {}


def _layout(raw: bytes) -> _Layout:
    hit = _layouts.get(raw)
    if hit is None:
        if len(_layouts) >= _MAX_CACHED:
            _layouts.clear()
        hit = _layouts[raw] = _Layout(raw)
    return hit


def table_buffers(buf: memoryview, start: int, table_at: int, count: int) -> list[memoryview]:
    """The buffers a record's table lists: ``count`` entries from ``table_at``."""
    out = []
    for k in range(count):
        off, nbytes = TABLE_ENTRY.unpack_from(buf, table_at + k * TABLE_ENTRY.size)
        out.append(buf[start + off : start + off + nbytes])
    return out


class Decoder:
    """Decodes one reader's records, keeping what it learnt of each layout and position.

    Two caches, both keyed by a record's buffer table and header prefix (which fix every
    top-level array's type, shape and offset in the record): where the arrays lie in a record
    of that shape (so a new position costs one ``np.ndarray`` per array and no parsing), and the
    arrays already built at each ring position (so a position seen before costs a ``view()``).
    """

    def __init__(self) -> None:
        self._shapes: dict[bytes, tuple[_Layout, list[tuple[Any, ...]]]] = {}
        self._kept: dict[tuple[int, bytes], tuple[_Layout, list[np.ndarray]]] = {}

    def decode_at(
        self, buf: memoryview, start: int, table_at: int, count: int, header: memoryview
    ) -> tuple[Any, list[FrameRef]]:
        """Decode the record at ``start`` whose buffer table (``count`` entries) is at
        ``table_at``. Its arrays are read-only views of ``buf``, valid while the record is."""
        try:
            flags, layout_len, refs_len = _HEAD.unpack_from(header, 0)
            if not flags & _F_FLAT:
                return decode(header, table_buffers(buf, start, table_at, count))
            pos = _HEAD.size + layout_len
            shape_key = bytes(buf[table_at : table_at + count * TABLE_ENTRY.size + pos])
            kept = self._kept.get((start, shape_key))
            if kept is None:
                kept = self._keep(start, shape_key, buf, table_at + count * TABLE_ENTRY.size)
            layout, protos = kept
            n = len(protos)
            rest = (
                table_buffers(buf, start, table_at + n * TABLE_ENTRY.size, count - n)
                if count > n
                else ()
            )
            refs = _unpack_refs(header[pos : pos + refs_len]) if refs_len else []
            arrays = [p.view() for p in protos]
            value = layout.build(header[pos + refs_len :], arrays, refs, rest)
        except DecodeError:
            raise
        except Exception as exc:
            raise DecodeError(f"cannot decode message: {exc!r}") from exc
        return value, refs

    def _keep(
        self, start: int, shape_key: bytes, buf: memoryview, head_at: int
    ) -> tuple[_Layout, list[np.ndarray]]:
        shaped = self._shapes.get(shape_key)
        if shaped is None:
            shaped = self._learn(shape_key, buf, head_at)
        layout, placed = shaped
        protos = [
            np.ndarray(shape, dtype=dt, buffer=buf, offset=start + off, order=order)
            for shape, dt, off, order in placed
        ]
        if len(self._kept) >= _MAX_CACHED:
            self._kept.clear()
        kept = self._kept[start, shape_key] = (layout, protos)
        return kept

    def _learn(
        self, shape_key: bytes, buf: memoryview, head_at: int
    ) -> tuple[_Layout, list[tuple[Any, ...]]]:
        _flags, layout_len, _refs = _HEAD.unpack_from(buf, head_at)
        layout = _layout(bytes(buf[head_at + _HEAD.size : head_at + _HEAD.size + layout_len]))
        table_len = len(shape_key) - _HEAD.size - layout_len
        shaped = (layout, layout.placed(shape_key[:table_len]))
        if len(self._shapes) >= _MAX_CACHED:
            self._shapes.clear()
        self._shapes[shape_key] = shaped
        return shaped

    def clear(self) -> None:
        """Drop the kept views (before the buffer they view is unmapped)."""
        self._kept.clear()


def decode(header: bytes | memoryview, buffers: Sequence[memoryview]) -> tuple[Any, list[FrameRef]]:
    """Rebuild a tree; its arrays are views over ``buffers`` (read-only if they are)."""
    try:
        flags, root_len, refs_len = _HEAD.unpack_from(header, 0)
        pos = _HEAD.size + root_len
        refs = _unpack_refs(header[pos : pos + refs_len]) if refs_len else []
        if flags & _F_FLAT:
            layout = _layout(bytes(header[_HEAD.size : pos]))
            n = len(layout.views)
            arrays = layout.arrays(buffers[:n])
            return layout.build(header[pos + refs_len :], arrays, refs, buffers[n:]), refs
        value = pickle.loads(header[pos + refs_len :], buffers=buffers)
        if flags & _F_ROOT_DATACLASS:
            cls, info = _root_class(bytes(header[_HEAD.size : _HEAD.size + root_len]))
            value = _build(cls, info, value)
    except DecodeError:
        raise
    except Exception as exc:
        raise DecodeError(f"cannot decode message: {exc!r}") from exc
    return value, refs


def array_layout(arrays: Sequence[np.ndarray], start: int) -> list[tuple[int, int]]:
    """(offset, nbytes) of each array when packed from ``start``, each aligned to ALIGN."""
    out = []
    pos = start
    for arr in arrays:
        pos = -(-pos // ALIGN) * ALIGN
        out.append((pos, arr.nbytes))
        pos += arr.nbytes
    return out


def write_array(dst: memoryview, arr: np.ndarray) -> None:
    """Copy ``arr`` into ``dst`` in the layout ``decode`` expects: the one copy on write."""
    if arr.nbytes == 0:
        return
    order: Any = _order(arr)
    target = np.ndarray(arr.shape, dtype=arr.dtype, buffer=dst, order=order)
    np.copyto(target, arr, casting="no")


# -- naming the field that cannot cross --------------------------------------------------------

_HINTS: list[tuple[type | tuple[type, ...], str]] = [
    (
        types.LambdaType,
        "functions defined inline (lambdas, local functions) cannot be sent; "
        "send data, or use a module-level function",
    ),
    (types.GeneratorType, "a generator's running state cannot be copied; send a list"),
    (io.IOBase, "an open file cannot be sent; send its path or its contents"),
]


def _hint(obj: object) -> str:
    if (
        isinstance(obj, types.FunctionType)
        and "<locals>" not in obj.__qualname__
        and obj.__name__ != "<lambda>"
    ):
        return "this function cannot be pickled"
    for kinds, text in _HINTS:
        if isinstance(obj, kinds):
            return text
    kind = type(obj).__name__
    if "lock" in kind.lower():
        return "a lock is local to one process; create one in each process instead"
    return "it cannot be pickled"


def _children(obj: object, path: str) -> Iterator[tuple[object, str]]:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            yield getattr(obj, f.name), f"{path}.{f.name}"
    elif isinstance(obj, dict):
        for key, val in obj.items():
            yield key, f"{path}<key {key!r}>"
            yield val, f"{path}[{key!r}]"
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for i, val in enumerate(obj):
            yield val, f"{path}[{i}]"
    elif hasattr(obj, "__dict__") and not isinstance(obj, (type, types.ModuleType)):
        for key, val in vars(obj).items():
            yield val, f"{path}.{key}"


def _fails(obj: object) -> BaseException | None:
    try:
        _Pickler().dump(obj)
    except Exception as exc:
        return exc
    return None


def _root_name(obj: object) -> str:
    if isinstance(obj, (dict, list, tuple, set, frozenset)):
        return "message"
    return type(obj).__name__


def _explain(value: object, exc: Exception) -> EncodeError:
    """Walk down to the deepest field that still fails to pickle and name it."""
    path, bad, depth = _root_name(value), value, 0
    while depth < 64:  # a cyclic tree must not loop forever
        for child, child_path in _children(bad, path):
            if _fails(child) is not None:
                path, bad = child_path, child
                break
        else:
            break
        depth += 1
    return EncodeError(
        f"cannot send {path}: {type(bad).__qualname__} cannot cross processes "
        f"({_hint(bad)}; pickle said: {exc})",
        path=path,
    )
