"""Declaring tasks and wiring graphs: what works, and errors that say how to fix the rest."""

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

import conveyor as cv
from conveyor.graph import Graph
from conveyor.task import spec_of
from tests.unit.graph_fixtures import Detections, Frame, Track, Tracks, cameras, collect, detect


def test_specs_record_types_and_options() -> None:
    s = spec_of(detect)
    assert s.kind == "task" and s.inputs == (("frames", Frame),) and s.output is Detections
    assert s.resource == "gpu" and s.batch == 4 and s.batched
    t = spec_of(Track)
    assert t.stateful and t.key == "camera" and t.inputs == (("det", Detections),)
    assert spec_of(cameras).kind == "source" and spec_of(cameras).output is Frame
    assert spec_of(collect).kind == "sink" and spec_of(collect).output is None
    # The decorated objects still work as plain Python.
    assert Track()(Detections("a", 0, 5)).total == 5


def test_optional_output_means_maybe_nothing() -> None:
    @cv.task
    def keep_big(det: Detections) -> Tracks | None:
        return None

    assert spec_of(keep_big).output is Tracks and spec_of(keep_big).optional_output


@pytest.mark.parametrize(
    ("define", "message"),
    [
        (lambda: cv.task(lambda x: x), "has no type annotation"),
        (lambda: cv.task(batch=4)(_batch_not_list), "must be annotated list[T]"),
        (lambda: cv.task(_no_return), "no return annotation"),
        (lambda: cv.source(_source_not_generator), "Iterator[T]"),
        (lambda: cv.task(resource="tpu")(_no_return), "resource must be one of"),
        (lambda: cv.task(batch=0)(_no_return), "batch must be a positive int"),
        (lambda: cv.task(_two_types), "return one message type"),
    ],
)
def test_bad_declarations_are_explained(define, message: str) -> None:  # noqa: ANN001
    with pytest.raises(cv.ConfigurationError, match=message.replace("[", r"\[")):
        define()


def _batch_not_list(frame: Frame) -> Detections: ...
def _no_return(frame: Frame): ...  # noqa: ANN202
def _source_not_generator() -> Frame: ...
def _two_types(frame: Frame) -> Detections | Tracks: ...


def test_graph_wires_by_type_in_topological_order() -> None:
    g = Graph([collect, Track, detect, cameras])
    assert g.order == ["cameras", "detect", "Track", "collect"]
    assert [str(e) for e in g.edges] == [
        "Track -> collect.tracks (Tracks)",
        "detect -> Track.det (Detections)",
        "cameras -> detect.frames (Frame)",
    ]


def test_missing_producer_is_explained() -> None:
    with pytest.raises(cv.ConfigurationError, match="no task produces Detections"):
        Graph([cameras, Track, collect])


@dataclass
class Other:
    x: int


def test_two_producers_need_wiring() -> None:
    @cv.task(name="detect_b")
    def detect_b(frame: Frame) -> Detections: ...

    with pytest.raises(cv.ConfigurationError, match=r"wire=\{'det': 'detect'\}"):
        Graph([cameras, detect, detect_b, Track, collect])

    @cv.task(name="track_b", wire={"det": "detect_b"})
    def track_b(det: Detections) -> Tracks: ...

    g = Graph([cameras, detect, detect_b, track_b])
    assert [e.producer for e in g.inputs_of("track_b")] == ["detect_b"]


def test_cycles_are_refused_with_their_path() -> None:
    @cv.task
    def a(t: Tracks, f: Frame) -> Detections: ...

    @cv.task
    def b(d: Detections) -> Tracks: ...

    with pytest.raises(cv.ConfigurationError, match="cycle: (a -> b -> a|b -> a -> b)"):
        Graph([cameras, a, b])


def test_duplicate_names_and_no_source() -> None:
    with pytest.raises(cv.ConfigurationError, match="two tasks are named"):
        Graph([cameras, detect, spec_of(detect)])
    with pytest.raises(cv.ConfigurationError, match="no source"):
        Graph([Track, cv.task(name="mk")(_mk)])
    with pytest.raises(cv.ConfigurationError, match="expected a task"):
        Graph([cameras, print])


def _mk(t: Tracks) -> Detections: ...


def test_source_class_and_fan_out() -> None:
    @cv.source
    class Replay:
        def __iter__(self) -> Iterator[Frame]:
            yield from ()

    @cv.task
    def thumbnails(frame: Frame) -> None: ...

    g = Graph([Replay, detect, thumbnails])
    assert sorted(e.consumer for e in g.outputs_of("Replay")) == ["detect", "thumbnails"]
