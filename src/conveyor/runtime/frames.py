"""Camera frames in a run: written once into the run's frame store, passed as small references.

A run given ``cameras=[CameraSpec(...), ...]`` creates one shared-memory ``FrameStore`` for them
before any pipeline starts; every process of the run sees it as ``conveyor.frame_store()``. A
source writes a frame once and yields a ``Frame`` message (camera, index, timestamp and a
``FrameRef`` of a few dozen bytes); any task, in any pipeline, reads ``frame.pixels``: a
read-only view of the shared memory, no copy.

Holds: the write holds the slot for its source. When a source yields a ``Frame`` (or a message
with ``Frame`` fields), the run takes that hold over and releases it once every task in the
source's pipeline that received the message is done with it; ring messages that name the frame
hold it on their own until their consumer commits. So a slot is reused only when no message
naming it is in flight, and a source that runs ahead of the pipeline waits for a free slot
(backpressure) instead of overwriting frames still in use.

Which store is "the run's" is context state (a ``ContextVar``), set by the run where its loop
runs: two inline runs in two threads each see their own. A thread that the run's own code
starts sees the store the process's last run set (a worker process runs one run).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Self

import numpy as np

from conveyor._errors import ConfigurationError, FrameStoreFull
from conveyor.spec import CameraSpec
from conveyor.transport.frameref import FrameRef
from conveyor.transport.framestore import FrameStore, resolve

_current: contextvars.ContextVar[FrameStore | None] = contextvars.ContextVar(
    "conveyor_frame_store", default=None
)
_process_store: FrameStore | None = None  # for threads the run's code starts (no context)
# Called when a write finds every slot of its camera held, before it waits for one: the loop
# saves due checkpoints there, which lets go of inputs (and their frames) held for replay.
_pressure: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar(
    "conveyor_frame_pressure", default=None
)


@dataclass
class Frame:
    """One camera frame in the run's frame store (a message type; subclass it to add fields)."""

    __conveyor_frame__ = True  # how the planner (below this layer) knows a frame type

    camera: str
    index: int
    ts: float
    ref: FrameRef

    @property
    def pixels(self) -> np.ndarray:
        """The frame as a read-only numpy view into shared memory (no copy)."""
        return resolve(self.ref)

    @classmethod
    def write(cls, camera: str, pixels: np.ndarray, index: int, ts: float | None = None) -> Self:
        """Copy ``pixels`` into the run's frame store (the one copy) and return the message."""
        ts = time.time() if ts is None else ts
        store = frame_store()
        try:
            ref = store.write(camera, pixels, ts=ts, index=index, timeout=0)
        except FrameStoreFull:
            relieve = _pressure.get()
            if relieve is not None:
                relieve()
            ref = store.write(camera, pixels, ts=ts, index=index)
        return cls(camera, index, ts, ref)


def frame_store() -> FrameStore:
    """The frame store of the run this process belongs to."""
    store = _current.get() or _process_store
    if store is None:
        raise ConfigurationError(
            "this run has no frame store: pass cameras=[conveyor.CameraSpec(name, shape), ...] "
            "to conveyor.run() (or to measure_costs) to have one"
        )
    return store


def on_frame_pressure(callback: Callable[[], None] | None) -> None:
    """Set (or with None, clear) what runs when a frame write must wait for a slot."""
    _pressure.set(callback)


def use_frame_store(store: FrameStore | None) -> None:
    """Make ``store`` the current run's store here (None: no store)."""
    global _process_store
    previous = _current.get()
    _current.set(store)
    if store is not None:
        _process_store = store
    elif _process_store is previous:
        _process_store = None


@contextlib.contextmanager
def frame_store_for(cameras: Sequence[CameraSpec]) -> Iterator[FrameStore | None]:
    """The run's store for ``cameras`` (None if none) while the block runs, then removed."""
    store = create_frame_store(cameras)
    try:
        yield store
    finally:
        use_frame_store(None)
        if store is not None:
            store.close()


def create_frame_store(cameras: Sequence[CameraSpec], current: bool = True) -> FrameStore | None:
    """The run's store for ``cameras`` (None if there are none), made current here unless
    ``current`` is False (the store of a camera added to a running run: its own process
    makes it current there)."""
    if not cameras:
        return None
    for c in cameras:
        if not isinstance(c, CameraSpec):
            raise ConfigurationError(f"cameras must be conveyor.CameraSpec values, got {c!r}")
    store = FrameStore.create(list(cameras))
    if current:
        use_frame_store(store)
    return store


_FIELDS: dict[type, tuple[str, ...]] = {}  # message type -> its Frame fields (looked at once)


def frame_holds(value: Any) -> list[FrameRef]:
    """The frames a source's message names (itself a ``Frame``, or ``Frame`` fields)."""
    if isinstance(value, Frame):
        return [value.ref]
    names = _FIELDS.get(type(value))
    if names is None:
        names = _FIELDS[type(value)] = (
            tuple(
                f.name
                for f in dataclasses.fields(value)
                if isinstance(getattr(value, f.name), Frame)
            )
            if dataclasses.is_dataclass(value) and not isinstance(value, type)
            else ()
        )
    return [getattr(value, n).ref for n in names]


def releaser(refs: list[FrameRef]) -> Callable[[], None]:
    """A callback that drops the source's hold on each of ``refs``."""

    def release() -> None:
        for ref in refs:
            FrameStore.attach(ref.store).release(ref)

    return release
