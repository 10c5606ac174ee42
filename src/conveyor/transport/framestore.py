"""The multi-camera frame store: frames written once into shared memory, passed by reference.

Each camera has a ring of ``slots`` frame slots of its own shape and dtype. The producer copies a
frame into a free slot once (or decodes straight into it with ``claim()``), and messages carry a
``FrameRef`` (store, camera, slot, generation) of a few dozen bytes; any process resolves it to a
read-only numpy view with ``view()``: no copy, a few microseconds whatever the frame size.

**Holds.** A slot is never rewritten while anyone holds it. Holds are counted per *lane*: every
process that attaches takes a lane of its own (rows of int32 counters in shared memory that only
it writes), and a slot's hold count is the sum of its column. Single-writer counters need no
atomic read-modify-write (the ``atomics`` package costs ~17 us an operation here; a numpy column
sum costs ~2 us). A lane has two rows, because holds are of two kinds:

- *message* holds are facts about messages, not processes: an encoder adds one in its row when
  a message naming the frame is written to a ring, the consumer removes one in its row when it
  commits the message. They must outlive a process that dies (the message is still in the
  ring), so a dead process's message row keeps its counts;
- *private* holds (a writer's hold on the frame it wrote, ``retain``) belong to the process:
  when it dies they die with it. The next process that claims a lane clears the private rows of
  dead processes, so a crash gives their slots back.

**Generations.** A slot's generation is even when it holds a published frame and odd while it
is being written. The writer makes it odd *before* checking that nobody holds the slot, and a
late ``retain()`` adds its hold *before* checking the generation (a full fence between, on both
sides), so a stale reference can never pin or read another frame's pixels: it raises
``StaleFrameError``.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from conveyor._errors import (
    ConfigurationError,
    ConveyorTimeout,
    FrameStoreFull,
    StaleFrameError,
)
from conveyor.spec import CameraSpec
from conveyor.transport.doorbell import full_fence
from conveyor.transport.frameref import FrameRef
from conveyor.transport.procs import pid_alive
from conveyor.transport.segment import SHM_DIR, Segment, new_name

_MAGIC = 0x31454D4152464E43  # b"CNFRAME1"
_PAGE = 4096
_META = np.dtype([("generation", "<u8"), ("ts", "<f8"), ("index", "<u8"), ("_pad", "<u8")])

__all__ = ["CameraSpec", "FrameRef", "FrameSlot", "FrameStore", "resolve"]


def _page(n: int) -> int:
    return -(-n // _PAGE) * _PAGE


class FrameSlot:
    """A claimed slot, writable until ``publish()``: decode straight into ``array``."""

    def __init__(self, store: FrameStore, camera: int, slot: int, generation: int) -> None:
        self.array = store._writable[camera][slot]
        self._store, self._camera, self._slot, self._gen = store, camera, slot, generation
        self._done = False

    def publish(self, ts: float | None = None, index: int = 0) -> FrameRef:
        """Make the frame visible; returns its reference, held once by the caller."""
        self._done = True
        return self._store._publish(self._camera, self._slot, self._gen, ts, index)

    def abort(self) -> None:
        """Give the slot back unwritten."""
        if not self._done:
            self._done = True
            self._store._meta["generation"][self._store._first[self._camera] + self._slot] -= 1

    def __enter__(self) -> FrameSlot:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None:
            self.abort()


class FrameStore:
    """Per-camera rings of frame slots in one shared-memory segment."""

    def __init__(self, segment: Segment, lane: int | None = None) -> None:
        self.segment = segment
        self.name = segment.name
        buf = segment.buf
        head = np.frombuffer(buf, dtype="<u8", count=4)
        if head[0] != _MAGIC:
            raise ConfigurationError(f"segment {self.name!r} is not a conveyor frame store")
        meta = json.loads(bytes(buf[64 : 64 + int(head[1])]))
        self.cameras = [
            CameraSpec(c["name"], tuple(c["shape"]), c["dtype"], c["slots"])
            for c in meta["cameras"]
        ]
        self._index = {c.name: i for i, c in enumerate(self.cameras)}
        self.lanes = int(meta["lanes"])
        self._first = meta["first_slot"]
        nslots = sum(c.slots for c in self.cameras)
        self._meta = np.frombuffer(buf, dtype=_META, count=nslots, offset=meta["meta_offset"])
        self._generation = self._meta["generation"]  # a column view: taken once, read per frame
        self._lane_pids = np.frombuffer(buf, "<u8", self.lanes, offset=meta["lanes_offset"])
        self._holds = np.frombuffer(
            buf, "<i4", 2 * self.lanes * nslots, offset=meta["holds_offset"]
        ).reshape(2 * self.lanes, nslots)  # row 2k: lane k's message holds; 2k+1: private
        ro = segment.readonly()
        self._writable: list[list[np.ndarray]] = []
        self._readonly: list[list[np.ndarray]] = []
        for cam, offset, stride in zip(
            self.cameras, meta["data_offsets"], meta["slot_strides"], strict=True
        ):
            w, r = [], []
            for s in range(cam.slots):
                at = offset + s * stride
                w.append(np.ndarray(cam.shape, cam.dtype, buffer=buf, offset=at))
                r.append(np.ndarray(cam.shape, cam.dtype, buffer=ro, offset=at))
            self._writable.append(w)
            self._readonly.append(r)
        self._cursor = [0] * len(self.cameras)
        self.lane = self._claim_lane() if lane is None else lane
        self._message_holds = self._holds[2 * self.lane]
        self._my_holds = self._holds[2 * self.lane + 1]

    # -- construction --------------------------------------------------------------------------

    @classmethod
    def create(cls, cameras: Sequence[CameraSpec], lanes: int = 64) -> FrameStore:
        """Allocate (and pre-fault) every slot of every camera now."""
        if not cameras:
            raise ConfigurationError("a frame store needs at least one camera")
        names = [c.name for c in cameras]
        if len(set(names)) != len(names):
            raise ConfigurationError(f"camera names must be unique, got {names}")
        if not 1 <= lanes <= 1024:
            raise ConfigurationError(f"lanes must be between 1 and 1024, got {lanes}")
        nslots = sum(c.slots for c in cameras)
        first, acc = [], 0
        for c in cameras:
            first.append(acc)
            acc += c.slots
        meta: dict[str, Any] = {
            "cameras": [
                {"name": c.name, "shape": list(c.shape), "dtype": c.dtype, "slots": c.slots}
                for c in cameras
            ],
            "lanes": lanes,
            "first_slot": first,
        }
        meta_size = _page(64 + len(json.dumps(meta)) + 1024)  # room for the offsets below
        meta["meta_offset"] = meta_size
        meta["lanes_offset"] = meta_size + _page(nslots * _META.itemsize)
        meta["holds_offset"] = meta["lanes_offset"] + _page(lanes * 8)
        pos = meta["holds_offset"] + _page(2 * lanes * nslots * 4)
        meta["data_offsets"], meta["slot_strides"] = [], []
        for c in cameras:
            stride = _page(c.frame_bytes)
            meta["data_offsets"].append(pos)
            meta["slot_strides"].append(stride)
            pos += stride * c.slots
        raw = json.dumps(meta).encode()
        seg = Segment.create("frames", pos, name=new_name("frames"))
        head = np.frombuffer(seg.buf, dtype="<u8", count=2)
        head[0], head[1] = _MAGIC, len(raw)
        seg.buf[64 : 64 + len(raw)] = raw
        del head
        store = cls(seg, lane=0)
        store._lane_pids[0] = os.getpid()
        _stores[store.name] = store
        return store

    @classmethod
    def attach(cls, name: str) -> FrameStore:
        """Map a store made by another process; this process takes a lane of its own."""
        store = _stores.get(name)
        if store is None:
            store = _stores[name] = cls(Segment.attach(name))
        return store

    def _claim_lane(self) -> int:
        """Take a free lane (or a dead process's lane) under a file lock on the segment; clear
        the private holds of every dead process on the way (their slots come back)."""
        me = os.getpid()
        with _segment_lock(self.name):
            for lane in range(self.lanes):
                pid = int(self._lane_pids[lane])
                if pid == me:
                    return lane
            for lane in range(self.lanes):
                pid = int(self._lane_pids[lane])
                if pid and pid != me and not pid_alive(pid):
                    self._holds[2 * lane + 1] = 0
                    self._lane_pids[lane] = 0
            for lane in range(self.lanes):
                if int(self._lane_pids[lane]) == 0:
                    self._lane_pids[lane] = me
                    return lane
        raise ConfigurationError(
            f"frame store {self.name}: all {self.lanes} lanes are taken by live processes; "
            "create the store with more lanes"
        )

    # -- writing -------------------------------------------------------------------------------

    def camera_index(self, camera: str | int) -> int:
        if isinstance(camera, int) and 0 <= camera < len(self.cameras):
            return camera
        try:
            return self._index[camera]  # type: ignore[index]
        except KeyError:
            raise ConfigurationError(
                f"unknown camera {camera!r}; this store has {list(self._index)}"
            ) from None

    def claim(self, camera: str | int, timeout: float | None = None) -> FrameSlot:
        """A free slot to write into, waiting up to ``timeout`` s (0: FrameStoreFull at once)."""
        cam = self.camera_index(camera)
        deadline = None if timeout is None else time.monotonic() + timeout
        nap = 1e-4
        while True:
            found = self._try_claim(cam)
            if found is not None:
                return FrameSlot(self, cam, *found)
            if timeout == 0:
                raise FrameStoreFull(
                    f"camera {self.cameras[cam].name!r}: all {self.cameras[cam].slots} slots "
                    "are held by readers"
                )
            if deadline is not None and time.monotonic() >= deadline:
                raise ConveyorTimeout(
                    f"camera {self.cameras[cam].name!r}: no slot freed within {timeout} s"
                )
            # Rare slow path (readers hold every slot: backpressure); back off up to 2 ms.
            time.sleep(nap)
            nap = min(nap * 2, 2e-3)

    def _try_claim(self, cam: int) -> tuple[int, int] | None:
        spec = self.cameras[cam]
        base = self._first[cam]
        gens = self._generation
        for step in range(spec.slots):
            slot = (self._cursor[cam] + step) % spec.slots
            idx = base + slot
            if self._holds[:, idx].sum():
                continue
            gen = int(gens[idx])
            gens[idx] = gen + 1  # odd: being written; late retains of old refs now fail
            full_fence()
            if self._holds[:, idx].sum() != 0:
                gens[idx] = gen
                continue
            self._cursor[cam] = (slot + 1) % spec.slots
            return slot, gen + 2
        return None

    def _publish(self, cam: int, slot: int, gen: int, ts: float | None, index: int) -> FrameRef:
        idx = self._first[cam] + slot
        meta = self._meta[idx]
        meta["ts"] = time.time() if ts is None else ts
        meta["index"] = index
        self._my_holds[idx] += 1
        self._generation[idx] = gen
        return FrameRef(self.name, cam, slot, gen)

    def write(
        self,
        camera: str | int,
        frame: np.ndarray,
        ts: float | None = None,
        index: int = 0,
        timeout: float | None = None,
    ) -> FrameRef:
        """Copy ``frame`` into a free slot (the one copy) and return its reference, held once.

        The caller owns that hold: ``release(ref)`` it when done. Sending the reference in a
        ring message adds a hold of its own until the consumer commits.
        """
        cam = self.camera_index(camera)
        spec = self.cameras[cam]
        if frame.shape != spec.shape or frame.dtype != np.dtype(spec.dtype):
            raise ConfigurationError(
                f"camera {spec.name!r}: expected a {spec.shape} {spec.dtype} frame, "
                f"got {frame.shape} {frame.dtype}"
            )
        with self.claim(cam, timeout) as slot:
            np.copyto(slot.array, frame, casting="no")
            return slot.publish(ts, index)

    # -- reading and holding -------------------------------------------------------------------

    def view(self, ref: FrameRef) -> np.ndarray:
        """The frame's pixels as a read-only view, valid while a hold on ``ref`` is kept."""
        idx = self._slot_index(ref)
        if int(self._generation[idx]) != ref.generation:
            raise StaleFrameError(self._stale_text(ref, idx))
        return self._readonly[ref.camera][ref.slot]

    def timestamp(self, ref: FrameRef) -> float:
        return float(self._meta["ts"][self._slot_index(ref)])

    def retain(self, ref: FrameRef, message: bool = False) -> None:
        """Add a hold: the slot will not be rewritten until a matching ``release``.

        ``message=True``: a hold for a message in a ring (it survives this process's death).
        """
        idx = self._slot_index(ref)
        row = self._message_holds if message else self._my_holds
        row[idx] += 1
        full_fence()
        if int(self._generation[idx]) != ref.generation:
            row[idx] -= 1
            raise StaleFrameError(self._stale_text(ref, idx))

    def release(self, ref: FrameRef, message: bool = False) -> None:
        """Drop one hold (taken by ``write``, ``publish``, ``retain``; ``message=True``: by a
        ring message, released by its consumer)."""
        row = self._message_holds if message else self._my_holds
        row[self._slot_index(ref)] -= 1

    def holds(self, ref: FrameRef) -> int:
        """How many holds the slot has now (for tests and statistics)."""
        return int(self._holds[:, self._slot_index(ref)].sum())

    def occupancy(self, camera: str | int) -> int:
        """How many of the camera's slots are held now."""
        cam = self.camera_index(camera)
        first = self._first[cam]
        cols = self._holds[:, first : first + self.cameras[cam].slots]
        return int((cols.sum(axis=0) != 0).sum())

    def _slot_index(self, ref: FrameRef) -> int:
        if ref.store != self.name:
            raise ConfigurationError(f"{ref} belongs to store {ref.store!r}, not {self.name!r}")
        if not (
            0 <= ref.camera < len(self.cameras) and 0 <= ref.slot < self.cameras[ref.camera].slots
        ):
            raise ConfigurationError(f"{ref} names no slot of store {self.name!r}")
        return int(self._first[ref.camera]) + ref.slot

    def _stale_text(self, ref: FrameRef, idx: int) -> str:
        now = int(self._generation[idx])
        return (
            f"frame reference is stale: camera {self.cameras[ref.camera].name!r} slot "
            f"{ref.slot} was generation {ref.generation} and is now {now} (the frame was "
            "released by every holder and the slot reused)"
        )

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Unmap (and unlink, for the creator). Views still alive keep the memory mapped."""
        if _stores.get(self.name) is self:
            del _stores[self.name]
        if not self.segment.closed and not self.segment.owner:
            self._lane_pids[self.lane] = 0  # counts stay; the next process may take the lane
        self._writable = self._readonly = []
        self._meta = self._holds = self._my_holds = self._lane_pids = None  # type: ignore
        self._generation = None  # type: ignore
        self._message_holds = None
        self.segment.close()

    def __enter__(self) -> FrameStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        cams = ", ".join(f"{c.name} {c.shape}x{c.slots}" for c in self.cameras)
        return f"<FrameStore {self.name} lane={self.lane} [{cams}]>"


class _segment_lock:
    """An exclusive file lock on the store's /dev/shm entry (lane claims are rare)."""

    def __init__(self, name: str) -> None:
        self._path = SHM_DIR / name
        self._fd: int | None = None

    def __enter__(self) -> None:
        if self._path.exists():
            self._fd = os.open(self._path, os.O_RDWR)
            fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock


# -- process-wide registry: resolve a reference from any message -------------------------------

# Attached stores by segment name: a cache of mappings, not run state (each run's store has its
# own name, and a FrameRef names its store, so any message resolves in any process).
_stores: dict[str, FrameStore] = {}


def resolve(ref: FrameRef) -> np.ndarray:
    """The pixels of ``ref`` in this process, attaching its store on first use."""
    return FrameStore.attach(ref.store).view(ref)


def retain_refs(refs: Iterable[FrameRef], message: bool = False) -> None:
    for ref in refs:
        FrameStore.attach(ref.store).retain(ref, message)


def release_refs(refs: Iterable[FrameRef], message: bool = False) -> None:
    for ref in refs:
        FrameStore.attach(ref.store).release(ref, message)
