"""Codec round trips: random trees, dtypes and shapes; zero copy on read; errors that name paths."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from conveyor.transport import DecodeError, EncodeError, FrameRef
from conveyor.transport.codec import array_layout, decode, encode, write_array


def roundtrip(value: object) -> tuple[Any, list[FrameRef], memoryview]:
    """Encode, copy arrays into one buffer as a ring would, decode from read-only views."""
    enc = encode(value)
    layout = array_layout(enc.arrays, 0)
    size = layout[-1][0] + layout[-1][1] if layout else 0
    raw = bytearray(max(size, 1))
    mv = memoryview(raw)
    for (off, n), arr in zip(layout, enc.arrays, strict=True):
        write_array(mv[off : off + n], arr)
    ro = mv.toreadonly()
    out, refs = decode(enc.header, [ro[off : off + n] for off, n in layout])
    return out, refs, ro


def assert_same(a: object, b: object) -> None:
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray)
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == b.tobytes()  # bit-exact, NaN payloads included
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b)
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    elif isinstance(a, float) and a != a:  # NaN
        assert b != b
    else:
        assert type(a) is type(b) and a == b


# -- random trees ------------------------------------------------------------------------------

dtypes = st.one_of(
    hnp.integer_dtypes(endianness="="),
    hnp.unsigned_integer_dtypes(endianness="="),
    hnp.floating_dtypes(endianness="=", sizes=(32, 64)),
    hnp.complex_number_dtypes(endianness="="),
    st.just(np.dtype(bool)),
    st.just(np.dtype(">i4")),
    st.just(np.dtype([("x", "<f4"), ("id", "<i8")])),
)
arrays = dtypes.flatmap(
    lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5))
)


@st.composite
def maybe_strided(draw: st.DrawFn) -> np.ndarray:
    arr = draw(arrays)
    kind = draw(st.sampled_from(["as_is", "fortran", "strided", "transposed"]))
    if kind == "fortran":
        return np.asfortranarray(arr)
    if kind == "strided" and arr.ndim >= 1:
        return arr[::2]
    if kind == "transposed":
        return arr.T
    return arr


leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.binary(max_size=20),
    maybe_strided(),
)
trees = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.tuples(children, children),
        st.dictionaries(st.text(max_size=5), children, max_size=4),
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trees)
def test_random_trees_roundtrip(tree: object) -> None:
    out, refs, _ = roundtrip(tree)
    assert_same(tree, out)
    assert refs == []


@settings(max_examples=100, deadline=None)
@given(maybe_strided())
def test_arrays_come_back_as_read_only_views_of_the_buffer(arr: np.ndarray) -> None:
    out, _, ro = roundtrip(arr)
    assert_same(arr, out)
    assert not out.flags.writeable
    if out.nbytes:
        backing = np.frombuffer(ro, np.uint8)
        assert np.shares_memory(out, backing), "decode copied the array"


def test_zero_d_and_empty_arrays() -> None:
    for arr in (np.float32(3.5) * np.ones(()), np.zeros((0, 3)), np.array("text")):
        out, _, _ = roundtrip({"a": arr})
        assert_same(arr, out["a"])


# -- dataclasses -------------------------------------------------------------------------------


@dataclass
class Detections:
    camera: str
    ts: float
    boxes: np.ndarray
    scores: np.ndarray
    labels: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Box:
    xyxy: np.ndarray
    label: str


@dataclass
class Nested:
    name: str
    boxes: list[Box]
    det: Detections | None = None


@dataclass
class WithPostInit:
    value: int

    def __post_init__(self) -> None:
        self.doubled = self.value * 2  # state beyond the fields: plain pickle keeps it


@dataclass
class CustomState:
    value: int

    def __getstate__(self) -> dict:
        return {"value": self.value + 1}


def test_dataclass_fast_path_roundtrip() -> None:
    det = Detections(
        "cam-3",
        12.5,
        np.random.rand(50, 4).astype(np.float32),
        np.random.rand(50).astype(np.float32),
        ["person"] * 3,
    )
    msg = Nested("n", [Box(np.arange(4.0), "a"), Box(np.zeros(4, np.float32)[::2], "b")], det)
    out, _, _ = roundtrip(msg)
    assert type(out) is Nested and type(out.boxes[1]) is Box and type(out.det) is Detections
    assert out.name == "n" and out.det.camera == "cam-3" and out.det.labels == det.labels
    np.testing.assert_array_equal(out.det.boxes, det.boxes)
    np.testing.assert_array_equal(out.boxes[1].xyxy, msg.boxes[1].xyxy)
    with pytest.raises(AttributeError):
        out.boxes[0].label = "changed"  # still frozen


def test_dataclass_extra_state_and_custom_pickling_are_kept() -> None:
    out, _, _ = roundtrip(WithPostInit(4))
    assert out.value == 4 and out.doubled == 8
    out, _, _ = roundtrip([CustomState(1)])
    assert out[0].value == 2  # its own __getstate__ ran: plain pickle was used


def test_shared_array_stays_shared() -> None:
    arr = np.arange(10)
    out, _, _ = roundtrip([arr, arr])
    assert out[0] is out[1]


def test_frame_refs_are_listed() -> None:
    ref = FrameRef("conveyor-1-frames-x", 2, 5, 8)
    other = FrameRef("conveyor-1-frames-x", 0, 1, 2)
    out, refs, _ = roundtrip({"frame": ref, "same": [ref], "other": other})
    # The same object is listed once (held once per message); each distinct one is listed.
    assert out["frame"] == ref and out["other"] == other and refs == [ref, other]


# -- flat messages: top-level arrays by layout ---------------------------------------------------


@dataclass
class Flat:
    camera: str
    frame: Any
    boxes: Any
    index: int
    extra: Any = None


@dataclass(slots=True)
class FlatSlots:
    frame: np.ndarray
    ref: FrameRef
    tags: list[Any]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(maybe_strided(), maybe_strided(), trees)
def test_flat_dataclasses_roundtrip(frame: np.ndarray, boxes: np.ndarray, extra: object) -> None:
    msg = Flat("cam-1", frame, boxes, 7, extra)
    out, refs, ro = roundtrip(msg)
    assert type(out) is Flat and out.camera == "cam-1" and out.index == 7 and refs == []
    assert_same(frame, out.frame)
    assert_same(boxes, out.boxes)
    assert_same(extra, out.extra)
    assert list(vars(out)) == ["camera", "frame", "boxes", "index", "extra"]  # field order kept
    if out.frame.nbytes and frame.dtype.names is None:
        assert np.shares_memory(out.frame, np.frombuffer(ro, np.uint8)), "decode copied"


def test_flat_frame_refs_and_nested_arrays_take_their_places() -> None:
    ref = FrameRef("conveyor-1-frames-x", 1, 3, 9)
    inner = FrameRef("conveyor-1-frames-x", 0, 2, 4)
    msg = FlatSlots(np.arange(12.0).reshape(3, 4).T, ref, [np.arange(3), inner, "x"])
    out, refs, _ = roundtrip(msg)
    assert type(out) is FlatSlots and out.ref == ref and out.tags[1] == inner
    assert refs == [ref, inner]  # every reference is held while the message is in flight
    np.testing.assert_array_equal(out.frame, msg.frame)
    np.testing.assert_array_equal(out.tags[0], np.arange(3))


def test_one_array_in_two_fields_stays_one_array() -> None:
    arr = np.arange(6)
    out, _, _ = roundtrip(Flat("c", arr, arr, 1))
    assert out.frame is out.boxes


# -- refusals name the field -------------------------------------------------------------------


def local_function() -> None:
    pass


@pytest.mark.parametrize(
    ("make", "path", "hint"),
    [
        (
            lambda: Detections("c", 0.0, np.zeros(1), np.zeros(1), ["a", "b", "c", lambda: 1]),
            "Detections.labels[3]",
            "lambdas",
        ),
        (lambda: {"meta": {"lock": threading.Lock()}}, "message['meta']['lock']", "lock"),
        (
            lambda: Nested(
                "n", [], Detections("c", 0.0, np.zeros(1), np.zeros(1), [(i for i in range(3))])
            ),
            "Nested.det.labels[0]",
            "generator",
        ),
    ],
)
def test_unsendable_values_are_refused_with_their_path(make: Any, path: str, hint: str) -> None:
    with pytest.raises(EncodeError) as info:
        encode(make())
    assert info.value.path == path
    assert path in str(info.value) and hint in str(info.value)


def test_open_file_is_refused_with_its_path() -> None:
    with open(__file__) as handle, pytest.raises(EncodeError) as info:
        encode([1, {"log": handle}])
    assert info.value.path == "message[1]['log']" and "open file" in str(info.value)


def test_refusal_does_not_poison_the_next_message() -> None:
    with pytest.raises(EncodeError):
        encode([threading.Lock()])
    out, _, _ = roundtrip({"ok": np.arange(3)})
    np.testing.assert_array_equal(out["ok"], np.arange(3))


def test_garbage_header_raises_decode_error() -> None:
    with pytest.raises(DecodeError):
        decode(b"\x00\x00\x00\x00\x00not a pickle", [])
