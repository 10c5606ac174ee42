"""Message trees to bytes and back, with numpy arrays out of band.

``encode(value)`` pickles the tree (protocol 5) into a small *header*, but every numpy array of a
plain dtype is left out: the header holds only ``(index, dtype, shape, order)`` and the array
itself is returned in ``Encoded.arrays``. The caller (a ring) copies each array exactly once,
straight into shared memory, with ``np.copyto`` (so a non-contiguous input costs one strided
copy, not a temporary plus a copy). ``decode(header, buffers)`` rebuilds the tree with each array
as a read-only numpy view over its buffer: no copy on read.

Frame references (``FrameRef``) are also noted while encoding, so that the channel can hold the
frame for as long as the message is in flight (see ``framestore.py``).

Anything pickle refuses (open files, locks, lambdas, generators, sockets) is refused at write
time with an ``EncodeError`` that names the field path, for example ``Detections.boxes[3]``.
Only conveyor's own processes read these bytes (segments are mode 0600), which is what makes
pickle acceptable here.
"""

from __future__ import annotations

import dataclasses
import io
import pickle
import types
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from conveyor._errors import DecodeError, EncodeError
from conveyor.transport.frameref import FrameRef

ALIGN = 64  # arrays start on cache-line boundaries in shared memory


@dataclasses.dataclass(slots=True)
class Encoded:
    """A message ready to be written: pickle header + arrays to copy + frames it references."""

    header: bytes
    arrays: list[np.ndarray]
    frame_refs: list[FrameRef]

    @property
    def array_nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays)


def _array_placeholder(index: int, dtype: np.dtype, shape: tuple[int, ...], order: str) -> Any:
    """Never called: ``_Unpickler.find_class`` swaps in a method that has the buffers."""
    raise DecodeError("array placeholder decoded outside conveyor's decoder")


def _frame_ref_placeholder(store: str, camera: int, slot: int, generation: int) -> Any:
    raise DecodeError("frame reference decoded outside conveyor's decoder")


def _is_plain_array(obj: object) -> bool:
    return type(obj) is np.ndarray and not obj.dtype.hasobject  # type: ignore[attr-defined]


class _Pickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file, protocol=5)
        self.arrays: list[np.ndarray] = []
        self.frame_refs: list[FrameRef] = []

    def reducer_override(self, obj: object) -> Any:
        if _is_plain_array(obj):
            arr: np.ndarray = obj  # type: ignore[assignment]
            order = "F" if arr.flags.f_contiguous and not arr.flags.c_contiguous else "C"
            self.arrays.append(arr)
            return _array_placeholder, (len(self.arrays) - 1, arr.dtype, arr.shape, order)
        if type(obj) is FrameRef:
            self.frame_refs.append(obj)
            return _frame_ref_placeholder, tuple(obj)
        return NotImplemented


def encode(value: object) -> Encoded:
    """Split ``value`` into a pickle header and the arrays to copy into shared memory."""
    file = io.BytesIO()
    pickler = _Pickler(file)
    try:
        pickler.dump(value)
    except Exception as exc:
        raise _explain(value, exc) from exc
    return Encoded(file.getvalue(), pickler.arrays, pickler.frame_refs)


class _Unpickler(pickle.Unpickler):
    def __init__(self, header: bytes | memoryview, buffers: Sequence[memoryview]) -> None:
        super().__init__(io.BytesIO(header))
        self.buffers = buffers
        self.frame_refs: list[FrameRef] = []

    def find_class(self, module: str, name: str) -> Any:
        if module == __name__:
            if name == "_array_placeholder":
                return self._array
            if name == "_frame_ref_placeholder":
                return self._frame_ref
        return super().find_class(module, name)

    def _array(self, index: int, dtype: np.dtype, shape: tuple[int, ...], order: str) -> Any:
        try:
            buf = self.buffers[index]
        except IndexError:
            raise DecodeError(f"message names array {index} but carries {len(self.buffers)}")
        return np.ndarray(shape, dtype=dtype, buffer=buf, order=order)  # type: ignore[call-overload]

    def _frame_ref(self, store: str, camera: int, slot: int, generation: int) -> FrameRef:
        ref = FrameRef(store, camera, slot, generation)
        self.frame_refs.append(ref)
        return ref


def decode(
    header: bytes | memoryview, buffers: Sequence[memoryview]
) -> tuple[Any, list[FrameRef]]:
    """Rebuild a tree; its arrays are views over ``buffers`` (read-only if they are)."""
    unpickler = _Unpickler(header, buffers)
    try:
        value = unpickler.load()
    except DecodeError:
        raise
    except Exception as exc:
        raise DecodeError(f"cannot decode message: {exc}") from exc
    return value, unpickler.frame_refs


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
    order = "F" if arr.flags.f_contiguous and not arr.flags.c_contiguous else "C"
    target = np.ndarray(arr.shape, dtype=arr.dtype, buffer=dst, order=order)  # type: ignore[call-overload]
    np.copyto(target, arr, casting="no")


# -- naming the field that cannot cross --------------------------------------------------------

_HINTS: list[tuple[type | tuple[type, ...], str]] = [
    (types.LambdaType, "functions defined inline (lambdas, local functions) cannot be sent; "
     "send data, or use a module-level function"),
    (types.GeneratorType, "a generator's running state cannot be copied; send a list"),
    (io.IOBase, "an open file cannot be sent; send its path or its contents"),
]


def _hint(obj: object) -> str:
    if isinstance(obj, types.FunctionType) and "<locals>" not in obj.__qualname__ \
            and obj.__name__ != "<lambda>":
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
        _Pickler(io.BytesIO()).dump(obj)
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
