"""The transport between real processes: intact frames, wake-ups, peer death, crash recovery."""

from __future__ import annotations

import multiprocessing as mp
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from conveyor import ConveyorTimeout
from conveyor.transport import (
    CameraSpec,
    ChannelBroken,
    Doorbell,
    EndOfChannel,
    FrameStore,
    Ring,
    RingReader,
    RingWriter,
)
from conveyor.transport import doorbell as doorbell_module
from conveyor.transport.framestore import resolve
from tests.integration import children

ctx = mp.get_context("spawn")


@pytest.fixture
def procs() -> Iterator[list[mp.process.BaseProcess]]:
    started: list[mp.process.BaseProcess] = []
    yield started
    for p in started:
        if p.is_alive():
            p.kill()
        p.join(10)


def start(procs: list, target: object, *args: object) -> mp.process.BaseProcess:
    p = ctx.Process(target=target, args=args, daemon=True)
    p.start()
    procs.append(p)
    return p


@pytest.mark.parametrize("use_store", [False, True], ids=["ring", "framestore"])
def test_every_frame_arrives_intact(procs: list, use_store: bool) -> None:
    shape, n = (1080, 1920, 3), 12
    with Ring(capacity=32 << 20) as ring:
        store = FrameStore.create([CameraSpec("cam", shape, slots=4)]) if use_store else None
        try:
            r = RingReader(ring.name)
            start(
                procs, children.produce_frames, ring.name, n, shape, store.name if store else None
            )
            got = []
            while True:
                try:
                    msg = r.read(timeout=30)
                except EndOfChannel:
                    break
                value = msg.value
                pixels = resolve(value["frame"]) if use_store else value["frame"]
                assert pixels.shape == shape and not pixels.flags.writeable
                assert zlib.crc32(np.ascontiguousarray(pixels).tobytes()) == value["crc"]
                got.append(value["i"])
                msg.commit()
            assert got == list(range(n))
            procs[0].join(10)
            assert procs[0].exitcode == 0
        finally:
            if store is not None:
                store.close()


def test_doorbell_wakes_a_sleeper_in_another_process(procs: list, monkeypatch) -> None:
    monkeypatch.setattr(doorbell_module, "MAX_NAP", 30.0)  # only a ring can wake us in time
    with Doorbell.create() as bell:
        woke = []
        start(procs, children.ring_bell_later, bell.name, 0.3)
        t0 = time.monotonic()
        ok = bell.wait(lambda: bool(woke), timeout=10, on_nap=lambda: woke.append(1))
        assert ok and time.monotonic() - t0 < 5


def test_reader_sees_producer_death_as_broken(procs: list) -> None:
    with Ring(capacity=1 << 16) as ring:
        r = RingReader(ring.name)
        p = start(procs, children.write_then_die, ring.name, 3)
        p.join(20)
        assert [r.read(timeout=5).value for _ in range(3)] == [0, 1, 2], "data before death"
        t0 = time.monotonic()
        with pytest.raises(ChannelBroken) as info:
            r.read(timeout=20)
        assert info.value.pid == p.pid and time.monotonic() - t0 < 5


def test_writer_sees_consumer_death_as_broken(procs: list) -> None:
    with Ring(capacity=4096, max_items=2) as ring:
        w = RingWriter(ring.name)
        p = start(procs, children.attach_reader_then_die, ring.name)
        p.join(20)
        w.write(1)
        w.write(2)
        with pytest.raises(ChannelBroken, match="consumer"):
            w.write(3, timeout=20)


def test_a_supervised_writer_waits_for_the_dead_consumers_replacement(procs: list) -> None:
    with Ring(capacity=4096, max_items=2) as ring:
        w = RingWriter(ring.name, wait_for_consumer=True)
        p = start(procs, children.attach_reader_then_die, ring.name)
        p.join(20)
        w.write(1)
        w.write(2)
        with pytest.raises(ConveyorTimeout):  # not ChannelBroken: it would wait on
            w.write(3, timeout=0.5)
        parent_end, child_end = ctx.Pipe()
        second = start(procs, children.read_until_closed, ring.name, child_end)
        w.write(3, timeout=20)  # the replacement consumer made room
        w.close()
        assert parent_end.poll(20)
        assert parent_end.recv() == [1, 2, 3]
        second.join(10)


def test_replacement_consumer_gets_every_uncommitted_message(procs: list) -> None:
    with Ring(capacity=1 << 16) as ring:
        w = RingWriter(ring.name)
        for i in range(10):
            w.write(i)
        first = start(procs, children.read_some_then_die, ring.name, 6, 3)
        first.join(20)
        assert first.exitcode is not None and first.exitcode < 0  # SIGKILLed
        parent_end, child_end = ctx.Pipe()
        second = start(procs, children.read_all, ring.name, child_end)
        assert parent_end.poll(20)
        assert parent_end.recv() == list(range(3, 10))  # nothing lost, nothing doubled
        second.join(10)


def test_frames_held_by_a_dead_consumers_messages_stay_held(procs: list) -> None:
    with (
        Ring(capacity=1 << 16) as ring,
        FrameStore.create([CameraSpec("cam", (4, 4), slots=2)]) as store,
    ):
        w = RingWriter(ring.name)
        refs = []
        for i in range(2):
            ref = store.write("cam", np.full((4, 4), i, np.uint8))
            w.write(ref)
            store.release(ref)
            refs.append(ref)
        dead = start(procs, children.read_some_then_die, ring.name, 2, 0)
        dead.join(20)
        # Both messages are uncommitted, so both frames are still held: no slot is free.
        assert [store.holds(r) for r in refs] == [1, 1]
        parent_end, child_end = ctx.Pipe()
        start(procs, children.read_all, ring.name, child_end)
        assert parent_end.poll(20) and parent_end.recv() == refs
        assert [store.holds(r) for r in refs] == [0, 0]


def test_sigkilled_owner_leaves_nothing_in_dev_shm(procs: list) -> None:
    parent_end, child_end = ctx.Pipe()
    p = start(procs, children.own_segments_then_wait, child_end)
    assert parent_end.poll(30)
    names = parent_end.recv()
    shm = Path("/dev/shm")
    owned = [n for n in (x.name for x in shm.iterdir()) if n.startswith(f"conveyor-{p.pid}-")]
    assert len(owned) >= 5, owned  # ring, its two doorbells (+FIFOs), store, bell, overflow
    assert all((shm / n).exists() for n in names)
    p.kill()
    p.join(10)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        left = [x.name for x in shm.iterdir() if x.name.startswith(f"conveyor-{p.pid}-")]
        if not left:
            break
        time.sleep(0.05)
    assert left == [], f"segments outlived their SIGKILLed owner: {left}"
