"""Transport benchmark: move distinct 1080p frames and small messages between two processes.

    python benchmarks/bench_transport.py --frames 300 --json out/bench_transport.json

Compared in one run (same machine, same frames): conveyor's ring carrying a nested message
(frame + 50 boxes + scores + camera id + timestamp), conveyor's frame store carrying a frame
reference, multiprocessing.Queue, multiprocessing.Pipe, multiprocessing.Array with a ready-flag
handshake, and Ray's object store (ray.put / ray.get) when ray is installed.

The consumer checks every frame: an 8-byte stamp with the frame number, one full row that moves
with the frame number, and a strided sample of the whole frame against the expected base image.

Reported per method: write time per frame, read time per frame ("available" to "usable numpy
array", measured on frames already sent), end-to-end frames/s, CPU time per frame of the whole
process tree; for a ~200-byte dataclass message, median one-way latency (ping-pong / 2) and
messages/s through one channel.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import write_json  # noqa: E402
from conveyor.transport.framestore import CameraSpec, FrameStore  # noqa: E402
from conveyor.transport.ring import DEFAULT_SPIN, Ring, RingReader, RingWriter  # noqa: E402

SHAPE = (1080, 1920, 3)
POOL = 8  # distinct base images (more than a bounded queue holds); frames also carry their number
BURST = 6  # frames sent before the reader times its reads


# -- frames and their check ------------------------------------------------------------------


def base_images() -> list[np.ndarray]:
    return [np.random.default_rng(k).integers(0, 256, SHAPE, dtype=np.uint8) for k in range(POOL)]


class FrameMaker:
    """Distinct frames without allocating: a base image, its number stamped, one row marked."""

    def __init__(self) -> None:
        self.pristine = base_images()
        self.work = [b.copy() for b in self.pristine]

    def __call__(self, i: int) -> np.ndarray:
        frame, pristine = self.work[i % POOL], self.pristine[i % POOL]
        if i >= POOL:  # undo the row marked by the previous frame made from this base
            old = _row(i - POOL)
            frame[old] = pristine[old]
        frame.reshape(-1)[:8] = np.frombuffer(i.to_bytes(8, "little"), np.uint8)
        frame[_row(i)] = (i * 7) % 251
        return frame


def _row(i: int) -> int:
    return 1 + i % (SHAPE[0] - 1)


def check_frame(bases: list[np.ndarray], frame: np.ndarray, i: int) -> None:
    stamp = int.from_bytes(frame.reshape(-1)[:8].tobytes(), "little")
    row = _row(i)
    base = bases[i % POOL]
    ok = (
        stamp == i
        and frame.shape == SHAPE
        and bool((frame[row] == (i * 7) % 251).all())
        and np.array_equal(frame[1::37, 5::61][:, :], _expected_sample(base, i))
    )
    if not ok:
        raise AssertionError(f"frame {i} arrived corrupted")


def _expected_sample(base: np.ndarray, i: int) -> np.ndarray:
    sample = base[1::37, 5::61].copy()
    row = _row(i)
    if (row - 1) % 37 == 0:
        sample[(row - 1) // 37] = (i * 7) % 251
    return sample


@dataclass
class FrameMsg:
    camera: str
    ts: float
    index: int
    boxes: np.ndarray
    scores: np.ndarray
    frame: object  # an ndarray, or a FrameRef for the frame store


@dataclass
class SmallMsg:
    camera: str
    ts: float
    index: int
    track_id: int
    x: float
    y: float
    w: float
    h: float
    score: float
    label: str
    zone: str


def small(i: int) -> SmallMsg:
    return SmallMsg(
        "cam-07", time.time(), i, 4242, 812.5, 390.25, 64.0, 180.0, 0.93, "person", "aisle-3"
    )


# -- channels: (sender in the parent, receiver in the child) --------------------------------


class RingChannel:
    name = "conveyor ring"
    capacity = BURST
    send_blocks = False

    def __init__(self) -> None:
        self.ring = Ring(capacity=(BURST + 2) * 6_300_000 // 64 * 64, max_items=4096)

    def spec(self) -> object:
        return ("ring", self.ring.name)

    def sender(self):  # noqa: ANN201
        w = RingWriter(self.ring.name)
        return w.write

    def close(self) -> None:
        self.ring.close()


class FrameStoreChannel(RingChannel):
    name = "conveyor frame store"

    def __init__(self) -> None:
        self.ring = Ring(capacity=1 << 20, max_items=4096)
        self.store = FrameStore.create([CameraSpec("cam", SHAPE, "uint8", slots=BURST + 2)])

    def spec(self) -> object:
        return ("framestore", self.ring.name)

    def sender(self):  # noqa: ANN201
        w = RingWriter(self.ring.name)
        store = self.store

        def send(msg: FrameMsg) -> None:
            ref = store.write(0, msg.frame, ts=msg.ts, index=msg.index)
            msg.frame = ref
            w.write(msg)
            store.release(ref)  # the message in the ring holds the frame now

        return send

    def close(self) -> None:
        self.ring.close()
        self.store.close()


class QueueChannel:
    name = "multiprocessing.Queue"
    capacity = BURST
    send_blocks = False

    def __init__(self) -> None:
        self.q: mp.Queue = mp.get_context("spawn").Queue(maxsize=BURST)

    def spec(self) -> object:
        return ("queue", self.q)

    def sender(self):  # noqa: ANN201
        return self.q.put

    def close(self) -> None:
        self.q.close()
        self.q.join_thread()


class PipeChannel:
    name = "multiprocessing.Pipe"
    capacity = 1
    send_blocks = True  # a 6 MB send blocks until the reader drains the pipe

    def __init__(self) -> None:
        self.r, self.w = mp.get_context("spawn").Pipe(duplex=False)

    def spec(self) -> object:
        return ("pipe", self.r)

    def sender(self):  # noqa: ANN201
        return self.w.send

    def close(self) -> None:
        self.w.close()


class ArrayChannel:
    name = "multiprocessing.Array"
    capacity = 1
    send_blocks = False

    def __init__(self) -> None:
        ctx = mp.get_context("spawn")
        self.arr = ctx.Array("B", int(np.prod(SHAPE)), lock=False)
        self.empty, self.full = ctx.Semaphore(1), ctx.Semaphore(0)

    def spec(self) -> object:
        return ("array", (self.arr, self.empty, self.full))

    def sender(self):  # noqa: ANN201
        view = np.frombuffer(self.arr, np.uint8).reshape(SHAPE)

        def send(msg: FrameMsg) -> None:
            self.empty.acquire()
            np.copyto(view, msg.frame)
            self.full.release()

        return send

    def close(self) -> None:
        pass


def open_receiver(spec: tuple):  # noqa: ANN201
    """In the child: a function returning (frame array, done callback) for the next frame."""
    kind, obj = spec
    if kind in ("ring", "framestore"):
        reader = RingReader(obj)

        def recv():  # noqa: ANN202
            m = reader.read(timeout=30)
            msg = m.value
            if kind == "ring":
                return msg.frame, m.commit
            t0 = time.perf_counter()
            frame = FrameStore.attach(msg.frame.store).view(msg.frame)
            RESOLVE_TIMES.append(time.perf_counter() - t0)
            return frame, m.commit

        return recv
    if kind == "queue":
        return lambda: (obj.get(timeout=30).frame, _noop)
    if kind == "pipe":
        return lambda: (obj.recv().frame, _noop)
    if kind == "array":
        arr, empty, full = obj
        view = np.frombuffer(arr, np.uint8).reshape(SHAPE)

        def recv_array():  # noqa: ANN202
            full.acquire()
            return view, empty.release

        return recv_array
    raise ValueError(kind)


def _noop() -> None:
    pass


RESOLVE_TIMES: list[float] = []  # frame store only: FrameRef -> numpy view, in the consumer


# -- the consumer process -------------------------------------------------------------------


def consumer_main(spec: tuple, ctl) -> None:  # noqa: ANN001
    bases = base_images()
    recv = open_receiver(spec)
    ctl.send("ready")
    while True:
        cmd = ctl.recv()
        if cmd[0] == "burst":  # frames already sent: time each read
            first, count = cmd[1], cmd[2]
            times = []
            RESOLVE_TIMES.clear()
            for i in range(first, first + count):
                t0 = time.perf_counter()
                frame, done = recv()
                times.append(time.perf_counter() - t0)
                check_frame(bases, frame, i)
                done()
            ctl.send((times, list(RESOLVE_TIMES)))
        elif cmd[0] == "stream":
            first, count = cmd[1], cmd[2]
            cpu0 = time.process_time()
            for i in range(first, first + count):
                frame, done = recv()
                check_frame(bases, frame, i)
                done()
            ctl.send((time.perf_counter(), time.process_time() - cpu0))
        elif cmd[0] == "stop":
            return


def tree_cpu(proc: psutil.Process) -> float:
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def bench_frames(channel, frames: int) -> dict:  # noqa: ANN001
    ctx = mp.get_context("spawn")
    parent_ctl, child_ctl = ctx.Pipe()
    proc = ctx.Process(target=consumer_main, args=(channel.spec(), child_ctl), daemon=True)
    proc.start()
    try:
        if not parent_ctl.poll(60):
            raise RuntimeError(f"{channel.name}: consumer did not start")
        parent_ctl.recv()
        make_frame = FrameMaker()
        send = channel.sender()
        boxes, scores = (
            np.random.rand(50, 4).astype(np.float32),
            np.random.rand(50).astype(np.float32),
        )
        # Phase 1: write and read times, in bursts the channel can hold without blocking.
        writes, reads, resolves = [], [], []
        burst = max(1, min(BURST, channel.capacity))
        index = 0
        while len(reads) < min(frames, 60):
            # Frames are sent first, so the reader times only "available -> usable array";
            # a pipe cannot hold a frame, so there the reader must already be reading.
            if channel.send_blocks:
                parent_ctl.send(("burst", index, burst))
            for _ in range(burst):
                msg = FrameMsg("cam", time.time(), index, boxes, scores, make_frame(index))
                t0 = time.perf_counter()
                send(msg)
                writes.append(time.perf_counter() - t0)
                index += 1
            if not channel.send_blocks:
                parent_ctl.send(("burst", index - burst, burst))
            got, resolved = parent_ctl.recv()
            reads.extend(got)
            resolves.extend(resolved)
        # Phase 2: end-to-end stream.
        me = psutil.Process()
        cpu0 = tree_cpu(me)
        parent_ctl.send(("stream", index, frames))
        t_start = time.perf_counter()
        for i in range(index, index + frames):
            send(FrameMsg("cam", time.time(), i, boxes, scores, make_frame(i)))
        t_end, _child_cpu = parent_ctl.recv()
        cpu = tree_cpu(me) - cpu0
        parent_ctl.send(("stop",))
        proc.join(30)
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join()
        channel.close()
    out = {
        "write_ms": statistics.median(writes) * 1e3,
        "read_ms": statistics.median(reads) * 1e3,
        "fps": frames / (t_end - t_start),
        "cpu_ms_per_frame": cpu / frames * 1e3,
    }
    if resolves:
        out["resolve_ms"] = statistics.median(resolves) * 1e3
    return out


def memcpy_ms() -> float:
    """One numpy copy of a frame into an already-used buffer (the floor for a write)."""
    make_frame = FrameMaker()
    dst = np.empty(SHAPE, np.uint8)
    np.copyto(dst, make_frame(0))
    times = []
    for i in range(60):
        src = make_frame(i)
        t0 = time.perf_counter()
        np.copyto(dst, src)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


# -- small messages ---------------------------------------------------------------------------


def echo_main(
    kind: str,
    a: object,
    b: object,
    n_ping: int,
    n_flood: int,
    ctl,  # noqa: ANN001
    spin: float = DEFAULT_SPIN,
) -> None:
    if kind.startswith("ring"):
        rin, rout = RingReader(a), RingWriter(b)
        for _ in range(n_ping):
            m = rin.read(timeout=30, spin=spin)
            rout.write(m.value)
            m.commit()
        if kind == "ring-batched":
            got = 0
            while got < n_flood:
                batch = rin.read_many(256, timeout=30)
                rin.commit_all(batch)
                got += len(batch)
        else:
            for _ in range(n_flood):
                rin.read(timeout=30).commit()
    else:
        qin, qout = a, b
        for _ in range(n_ping):
            qout.put(qin.get(timeout=30))
        for _ in range(n_flood):
            qin.get(timeout=30)
    ctl.send(time.perf_counter())


def bench_small(
    kind: str, n_ping: int = 2000, n_flood: int = 50_000, spin: float = DEFAULT_SPIN
) -> dict:
    ctx = mp.get_context("spawn")
    parent_ctl, child_ctl = ctx.Pipe()
    rings: list[Ring] = []
    if kind.startswith("ring"):
        rings = [Ring(capacity=1 << 22, max_items=1 << 16), Ring(capacity=1 << 22)]
        a, b = rings[0].name, rings[1].name
        out_w, back_r = RingWriter(a), RingReader(b)

        def send(m: object) -> None:
            out_w.write(m)

        def recv() -> object:
            msg = back_r.read(timeout=30, spin=spin)
            msg.commit()
            return msg.value
    else:
        qa, qb = ctx.Queue(), ctx.Queue()
        a, b = qa, qb
        send = qa.put

        def recv() -> object:
            return qb.get(timeout=30)

    proc = ctx.Process(
        target=echo_main, args=(kind, a, b, n_ping, n_flood, child_ctl, spin), daemon=True
    )
    proc.start()
    try:
        rtts = []
        for i in range(n_ping):
            t0 = time.perf_counter()
            send(small(i))
            recv()
            rtts.append(time.perf_counter() - t0)
        msgs = [small(i) for i in range(n_flood)]
        t0 = time.perf_counter()
        if kind == "ring-batched":
            for k in range(0, n_flood, 256):
                out_w.write_many(msgs[k : k + 256])
        else:
            for m in msgs:
                send(m)
        t_end = parent_ctl.recv()
        proc.join(30)
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join()
        for r in rings:
            r.close()
    rtts = rtts[n_ping // 10 :]  # skip warm-up
    return {"latency_us": statistics.median(rtts) / 2 * 1e6, "per_s": n_flood / (t_end - t0)}


# -- Ray ----------------------------------------------------------------------------------------


def bench_ray(frames: int) -> dict | None:
    try:
        import ray
    except ImportError:
        return None
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=1 << 30)
    try:

        @ray.remote
        class Consumer:
            def __init__(self) -> None:
                self.bases = base_images()

            def read_refs(self, refs: list, first: int) -> list[float]:
                times = []
                for k, ref in enumerate(refs):
                    t0 = time.perf_counter()
                    frame = ray.get(ref)
                    times.append(time.perf_counter() - t0)
                    check_frame(self.bases, frame, first + k)
                return times

            def consume(self, frame: np.ndarray, i: int) -> None:
                check_frame(self.bases, frame, i)

        actor = Consumer.remote()
        make_frame = FrameMaker()
        ray.get(actor.read_refs.remote([], 0))
        writes, reads, index = [], [], 0
        while len(reads) < min(frames, 60):
            refs = []
            for _ in range(BURST):
                frame = make_frame(index)
                t0 = time.perf_counter()
                refs.append(ray.put(frame))
                writes.append(time.perf_counter() - t0)
                index += 1
            reads.extend(ray.get(actor.read_refs.remote(refs, index - BURST)))
            del refs
        me = psutil.Process()
        cpu0 = tree_cpu(me)
        t0 = time.perf_counter()
        inflight: list = []
        for i in range(index, index + frames):
            inflight.append(actor.consume.remote(make_frame(i), i))
            if len(inflight) >= BURST:
                done, inflight = ray.wait(inflight, num_returns=1)
                ray.get(done)
        ray.get(inflight)
        elapsed = time.perf_counter() - t0
        cpu = tree_cpu(me) - cpu0
    finally:
        ray.shutdown()
    return {
        "write_ms": statistics.median(writes) * 1e3,
        "read_ms": statistics.median(reads) * 1e3,
        "fps": frames / elapsed,
        "cpu_ms_per_frame": cpu / frames * 1e3,
    }


# -- report -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=300, help="frames in the streaming phase")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--no-ray", action="store_true", help="skip Ray even if installed")
    args = parser.parse_args()

    print(
        f"transport benchmark: {args.frames} distinct {SHAPE} uint8 frames, {os.cpu_count()} cores",
        flush=True,
    )
    copy_ms = memcpy_ms()
    results: dict[str, dict] = {}
    channels = [RingChannel, FrameStoreChannel, QueueChannel, PipeChannel, ArrayChannel]
    for make in channels:
        ch = make()
        print(f"  {ch.name} ...", flush=True)
        results[ch.name] = bench_frames(ch, args.frames)
    print("  small messages ...", flush=True)
    small_ring, small_queue = bench_small("ring"), bench_small("queue")
    small_batched = bench_small("ring-batched")
    # Ray last: its daemons keep a core busy for a while after shutdown.
    if not args.no_ray:
        print("  ray put/get ...", flush=True)
        ray_result = bench_ray(args.frames)
        if ray_result is not None:
            results["ray object store"] = ray_result

    ring, store, queue = (
        results[k] for k in ("conveyor ring", "conveyor frame store", "multiprocessing.Queue")
    )
    best = max(ring["fps"], store["fps"])
    summary = {
        "frames": args.frames,
        "memcpy_ms": copy_ms,
        "methods": results,
        "small_msg": {
            "conveyor ring": small_ring,
            "conveyor ring, batched": small_batched,
            "multiprocessing.Queue": small_queue,
        },
        "read_speedup_vs_queue": queue["read_ms"] / ring["read_ms"],
        # A message holding a 1080p frame, boxes and scores, read in the second process; and the
        # same message carrying a frame reference instead, resolved to the frame's pixels.
        "read_us_nested": ring["read_ms"] * 1e3,
        "read_us_frame_ref": store["read_ms"] * 1e3,
        "read_speedup_vs_queue_framestore": queue["read_ms"] / store["read_ms"],
        # The frame itself, once its reference is in hand: FrameRef -> numpy view.
        "frame_resolve_us": store["resolve_ms"] * 1e3,
        "frame_resolve_speedup_vs_queue": queue["read_ms"] / store["resolve_ms"],
        "throughput_speedup_vs_queue": best / queue["fps"],
        "throughput_vs_ray": (
            best / results["ray object store"]["fps"] if "ray object store" in results else None
        ),
        "write_ms_over_memcpy_ms": min(ring["write_ms"], store["write_ms"]) / copy_ms,
        "small_msg_latency_us": small_ring["latency_us"],
        # Rates through one channel: write_many/read_many (how a pipeline drains an input), and
        # one message per call, both against Queue's one message per call.
        "small_msg_per_s": small_batched["per_s"],
        "small_msg_rate_vs_queue": small_batched["per_s"] / small_queue["per_s"],
        "small_msg_per_s_unbatched": small_ring["per_s"],
        "small_msg_rate_vs_queue_unbatched": small_ring["per_s"] / small_queue["per_s"],
    }
    _print_table(summary)
    write_json(args.json, summary)


def _print_table(s: dict) -> None:
    print(f"\n{'method':<24}{'write ms':>10}{'read ms':>10}{'frames/s':>10}{'CPU ms/frame':>14}")
    for name, r in s["methods"].items():
        print(
            f"{name:<24}{r['write_ms']:>10.3f}{r['read_ms']:>10.4f}{r['fps']:>10.1f}"
            f"{r['cpu_ms_per_frame']:>14.2f}"
        )
    print(f"(one numpy copy of the frame: {s['memcpy_ms']:.3f} ms)")
    print(f"\n{'small message':<24}{'latency us':>12}{'msgs/s':>12}")
    for name, r in s["small_msg"].items():
        print(f"{name:<24}{r['latency_us']:>12.1f}{r['per_s']:>12.0f}")
    print()
    for key in (
        "read_us_nested",
        "read_us_frame_ref",
        "read_speedup_vs_queue",
        "read_speedup_vs_queue_framestore",
        "throughput_speedup_vs_queue",
        "throughput_vs_ray",
        "write_ms_over_memcpy_ms",
        "small_msg_latency_us",
        "small_msg_per_s",
        "small_msg_rate_vs_queue",
        "small_msg_per_s_unbatched",
        "small_msg_rate_vs_queue_unbatched",
    ):
        v = s[key]
        print(f"{key:<36}{'n/a' if v is None else f'{v:,.2f}'}")


if __name__ == "__main__":
    main()
