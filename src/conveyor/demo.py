"""`make demo` (until the people-flow application lands): watch frames cross processes.

A camera process renders 1080p frames (a moving bar over a gradient: every frame different),
writes each once into the shared-memory frame store and sends a small message with its
reference through a ring. This process reads them, checks every frame's pixels, and shows the
rates live. Then the same frames go through ``multiprocessing.Queue`` for comparison.

    python -m conveyor.demo [--seconds 4] [--cameras 4]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from rich.console import Console
from rich.live import Live
from rich.table import Table

from conveyor.transport import (
    CameraSpec,
    Doorbell,
    EndOfChannel,
    FrameRef,
    FrameStore,
    Ring,
    RingReader,
    RingWriter,
)
from conveyor.transport.ring import register_bell

SHAPE = (1080, 1920, 3)


@dataclass
class FrameReady:
    """What travels through the ring: a reference to the pixels, not the pixels."""

    camera: str
    index: int
    ts: float
    frame: FrameRef


def render(base: np.ndarray, index: int, out: np.ndarray) -> None:
    """Draw frame ``index`` into ``out``: the gradient, a bar at a moving column, the index."""
    np.copyto(out, base)
    col = (index * 37) % (SHAPE[1] - 40)
    out[:, col : col + 40] = (255, 255 - index % 256, index % 256)
    out[0, :8, 0] = np.frombuffer(index.to_bytes(8, "little"), np.uint8)


def check(frame: np.ndarray, index: int) -> bool:
    col = (index * 37) % (SHAPE[1] - 40)
    stamp = int.from_bytes(frame[0, :8, 0].tobytes(), "little")
    return stamp == index and bool(
        (frame[500, col + 20] == (255, 255 - index % 256, index % 256)).all()
    )


def gradient() -> np.ndarray:
    ramp = np.linspace(0, 200, SHAPE[1], dtype=np.float32).astype(np.uint8)
    return np.broadcast_to(ramp[None, :, None], SHAPE).copy()


def camera_process(store_name: str, ring_name: str, camera: int, seconds: float) -> None:
    store, ring = FrameStore.attach(store_name), RingWriter(ring_name)
    base, name = gradient(), store.cameras[camera].name
    index, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        with store.claim(camera, timeout=10) as slot:  # decode straight into shared memory
            render(base, index, slot.array)
            ref = slot.publish(index=index)
        ring.write(FrameReady(name, index, time.time(), ref), timeout=10)
        store.release(ref)  # the message in flight holds the frame now
        index += 1
    ring.close()


def queue_process(queue: mp.Queue[Any], frames: int) -> None:
    base = gradient()
    for index in range(frames):
        frame = np.empty(SHAPE, np.uint8)
        render(base, index, frame)
        queue.put((index, frame))
    queue.put(None)


def run_conveyor(console: Console, cameras: int, seconds: float) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    specs = [CameraSpec(f"cam-{i}", SHAPE, slots=6) for i in range(cameras)]
    store = FrameStore.create(specs)
    bell = Doorbell.create()  # this process's one wait object: every camera's ring rings it
    register_bell(bell)
    rings = [Ring(capacity=1 << 20, consumer_bell=bell.name) for _ in range(cameras)]
    readers = [RingReader(r.name) for r in rings]
    procs = [
        ctx.Process(target=camera_process, args=(store.name, r.name, i, seconds))
        for i, r in enumerate(rings)
    ]
    for p in procs:
        p.start()
    counts, bad, reads = [0] * cameras, 0, []
    open_rings = set(range(cameras))
    start = time.monotonic()
    try:
        with Live(console=console, refresh_per_second=8, transient=False) as live:
            while open_rings:
                # Sleep until any camera's ring has data (or closes): one call, one fd.
                bell.wait(
                    lambda: any(
                        readers[i].has_data() or readers[i].producer_closed for i in open_rings
                    ),
                    timeout=0.2,
                )
                for i in list(open_rings):
                    while True:
                        t0 = time.perf_counter()  # data is there: time "available -> usable"
                        try:
                            msg = readers[i].try_read()
                        except EndOfChannel:
                            open_rings.discard(i)
                            break
                        if msg is None:
                            break
                        pixels = store.view(msg.value.frame)  # zero copy: a shared-memory view
                        reads.append(time.perf_counter() - t0)
                        bad += not check(pixels, msg.value.index)
                        msg.commit()
                        counts[i] += 1
                live.update(_table(counts, bad, time.monotonic() - start, reads))
    finally:
        for p in procs:
            p.join(15)
            if p.is_alive():
                p.kill()
        for reader in readers:
            reader.close()
        for ring in rings:
            ring.close()
        store.close()
        bell.close()
    elapsed = time.monotonic() - start
    return {
        "fps": sum(counts) / elapsed,
        "bad": bad,
        "read_us": statistics.median(reads) * 1e6 if reads else 0.0,
    }


def _table(counts: list[int], bad: int, elapsed: float, reads: list[float]) -> Table:
    table = Table(title="frames arriving from camera processes (1080p RGB, via shared memory)")
    table.add_column("camera")
    table.add_column("frames", justify="right")
    table.add_column("frames/s", justify="right")
    for i, n in enumerate(counts):
        table.add_row(f"cam-{i}", str(n), f"{n / max(elapsed, 1e-9):.0f}")
    median_read = statistics.median(reads[-500:]) * 1e6 if reads else 0.0
    total = sum(counts) / max(elapsed, 1e-9)
    table.add_row("[bold]all[/]", str(sum(counts)), f"[bold]{total:.0f}[/]")
    table.caption = (
        f"{total * 6.2:.0f} MB/s of pixels; median read {median_read:.0f} us; "
        f"corrupted frames: {bad}"
    )
    return table


def run_queue(frames: int) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    queue: mp.Queue[Any] = ctx.Queue(maxsize=4)
    proc = ctx.Process(target=queue_process, args=(queue, frames))
    proc.start()
    bad, gets, n = 0, [], 0
    start = time.monotonic()
    while True:
        t0 = time.perf_counter()
        item = queue.get(timeout=60)
        if item is None:
            break
        gets.append(time.perf_counter() - t0)
        bad += not check(item[1], item[0])
        n += 1
    elapsed = time.monotonic() - start
    proc.join(15)
    return {"fps": n / elapsed, "bad": bad, "read_us": statistics.median(gets) * 1e6}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="conveyor demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="how long the cameras run")
    parser.add_argument("--cameras", type=int, default=2, help="camera processes (default 2)")
    args = parser.parse_args(argv)
    if args.cameras < 1 or args.seconds <= 0:
        parser.error("--cameras must be at least 1 and --seconds positive")
    console = Console()
    console.print(
        f"[bold]conveyor transport demo[/]: {args.cameras} camera process(es) render "
        f"distinct {SHAPE[1]}x{SHAPE[0]} frames for {args.seconds:.0f} s; this "
        "process checks every frame.\n"
    )
    ours = run_conveyor(console, args.cameras, args.seconds)
    console.print("\nthe same frames through [bold]multiprocessing.Queue[/] (one camera) ...")
    theirs = run_queue(frames=40)
    console.print(
        f"\n  conveyor frame store: {ours['fps']:7.0f} frames/s, read {ours['read_us']:8.0f} us"
        f"\n  multiprocessing.Queue: {theirs['fps']:6.0f} frames/s, read "
        f"{theirs['read_us']:8.0f} us"
        f"\n  -> reads {theirs['read_us'] / max(ours['read_us'], 1e-9):.0f}x faster, "
        f"{ours['fps'] / max(theirs['fps'], 1e-9):.1f}x the frames/s; corrupted frames: "
        f"{ours['bad'] + theirs['bad']}"
    )
    console.print(
        "\nFull comparison (Pipe, Array, Ray, small messages): "
        "[bold]make bench[/] (benchmarks/bench_transport.py)."
    )
    return 1 if ours["bad"] or theirs["bad"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
