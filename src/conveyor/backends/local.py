"""The local backend (the default): one process per planned pipeline on this machine.

The parent creates every shared object before it starts a process: one doorbell per pipeline
(and one for itself), one ring per edge between two pipelines (its consumer's doorbell to ring
on data, its producer's to ring on space), and one ring per collected task back to the parent.
Each pipeline process runs a ``PipelineLoop`` over its tasks and reports how it ended on a pipe.

The parent blocks in one call on its doorbell, every process sentinel and every report pipe
(never a sleep loop). A task that raises stops the run: the other pipelines are stopped and the
parent raises ``TaskFailed`` with the task, the item and the worker's traceback as
``__cause__``. A pipeline that dies without a report (a signal, a hard exit) raises
``PipelineCrashed`` with its exit code or signal name; restarting it is the recovery layer's job.
"""

from __future__ import annotations

import copy
import dataclasses
import multiprocessing as mp
import os
import signal
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from conveyor._errors import (
    ConveyorError,
    EndOfChannel,
    PipelineCrashed,
    RemoteTraceback,
    TaskFailed,
)
from conveyor.backends.base import RunResult
from conveyor.graph import Graph
from conveyor.plan import Plan, detect_gpus, make_plan
from conveyor.runtime.frames import create_frame_store, use_frame_store
from conveyor.runtime.links import PARENT, Link, plan_links
from conveyor.runtime.loop import PipelineLoop
from conveyor.runtime.merge import Merger
from conveyor.transport.doorbell import Doorbell
from conveyor.transport.framestore import CameraSpec, FrameStore
from conveyor.transport.ring import Ring, RingReader, register_bell

RING_BYTES = 64 << 20  # per channel between pipelines: room for ~10 1080p frames in flight
COLLECT_BYTES = 16 << 20


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a pipeline process needs, by name (it attaches to the shared objects)."""

    index: int
    graph: Graph
    tasks: list[str]
    bell: str
    links: list[Link]  # the links that start or end in this pipeline
    frame_store: str | None = None  # the run's frame store, by name
    gpu: int | None = None  # the device of a GPU pipeline


def worker_main(config: WorkerConfig, report: Connection) -> None:
    """Entry point of a pipeline process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides how a run stops
    if config.gpu is not None:  # a GPU pipeline sees its own device as device 0
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")
        chosen = visible[config.gpu] if len(visible) > config.gpu and visible[0] else config.gpu
        os.environ["CUDA_VISIBLE_DEVICES"] = str(chosen).strip()
    try:
        bell = Doorbell.attach(config.bell)
        register_bell(bell)
        if config.frame_store is not None:
            use_frame_store(FrameStore.attach(config.frame_store))
        loop = PipelineLoop(
            config.graph,
            config.tasks,
            links=config.links,
            index=config.index,
            bell=bell,
        )
        loop.run()
        report.send(("done", config.index))
    except TaskFailed as exc:
        report.send(("failed", config.index, exc))
    except BaseException as exc:  # noqa: BLE001 - everything must reach the parent
        text = "".join(traceback.format_exception(exc))
        report.send(("crashed", config.index, f"{type(exc).__name__}: {exc}", text))


def run_local(
    graph: Graph,
    collect: list[str],
    plan: Plan | None = None,
    workers: int | None = None,
    cameras: Sequence[CameraSpec] = (),
) -> RunResult:
    graph.check_importable()
    plan = plan or make_plan(graph, workers=workers or os.cpu_count() or 2, gpus=detect_gpus())
    ctx = mp.get_context("spawn")
    owned: list[Any] = []  # everything to close at the end, whatever happens
    procs: list[Any] = []  # multiprocessing's process objects
    try:
        store = create_frame_store(cameras)
        if store is not None:
            owned.append(store)
        parent_bell = Doorbell.create()
        owned.append(parent_bell)
        register_bell(parent_bell)
        bells = [Doorbell.create() for _ in plan.pipelines]
        owned += bells
        links = []
        for link in plan_links(plan, collect):
            if not link.local:
                src_bell = bells[link.src].name
                dst_bell = parent_bell.name if link.dst == PARENT else bells[link.dst].name
                size = COLLECT_BYTES if link.dst == PARENT else RING_BYTES
                ring = Ring(size, consumer_bell=dst_bell, producer_bell=src_bell)
                owned.append(ring)
                link = link.with_ring(ring.name)
            links.append(link)
        readers: dict[str, RingReader | Merger] = {}
        for link in links:
            if link.dst != PARENT:
                continue
            reader = RingReader(link.ring_name)
            if link.merged:
                merger = readers.setdefault(link.producer, Merger([]))
                assert isinstance(merger, Merger)
                merger.add_reader(reader)
            else:
                readers[link.producer] = reader
        reports = []
        for p in plan.pipelines:
            config = WorkerConfig(
                p.index,
                graph,
                list(p.tasks),
                bells[p.index].name,
                [k for k in links if p.index in (k.src, k.dst)],
                store.name if store is not None else None,
                p.device if p.resource == "gpu" else None,
            )
            parent_end, child_end = ctx.Pipe(duplex=False)
            proc = ctx.Process(
                target=worker_main, args=(config, child_end), name=f"conveyor-{p.name}", daemon=True
            )
            proc.start()
            child_end.close()
            procs.append(proc)
            reports.append(parent_end)
        start = time.monotonic()
        outputs = _supervise(procs, reports, readers, parent_bell)
        return RunResult("local", time.monotonic() - start, outputs, plan)
    finally:
        for worker in procs:
            if worker.is_alive():
                worker.kill()
            worker.join(10)
        use_frame_store(None)
        for obj in reversed(owned):
            obj.close()


def _supervise(
    procs: list[mp.process.BaseProcess],
    reports: list[Connection],
    readers: dict[str, RingReader | Merger],
    bell: Doorbell,
) -> dict[str, list[Any]]:
    """Collect outputs until every pipeline reports done; raise on the first failure."""
    outputs: dict[str, list[Any]] = {name: [] for name in readers}
    open_readers = dict(readers)
    pending = set(range(len(procs)))
    while pending or open_readers:
        _drain(open_readers, outputs)
        for i in list(pending):
            if reports[i].poll():
                try:
                    report = reports[i].recv()
                except EOFError:  # it died before it could report
                    procs[i].join(5)
                    raise _crashed(procs[i]) from None
                _handle_report(report, procs)
                pending.discard(i)
            elif not procs[i].is_alive():
                procs[i].join(5)
                if not reports[i].poll():
                    raise _crashed(procs[i])
        if not pending and not open_readers:
            break
        live_fds = [reports[i].fileno() for i in pending] + [procs[i].sentinel for i in pending]
        bell.wait(
            lambda: any(_has_news(r) for r in open_readers.values()),
            timeout=1.0,
            extra_fds=live_fds,
        )
    return outputs


def _drain(open_readers: dict[str, RingReader | Merger], outputs: dict[str, list[Any]]) -> None:
    for name, reader in list(open_readers.items()):
        while True:
            try:
                got = reader.try_read()
            except EndOfChannel:
                del open_readers[name]
                break
            if got is None:
                break
            # A record (origin, seq, value); from merged replicas, with its message.
            record, msg = got if isinstance(got, tuple) else (got.value, got)
            if record[2] is not None:  # None: a replica's skip marker
                outputs[name].append(_detach(record[2]))
            msg.commit()


def _has_news(reader: RingReader | Merger) -> bool:
    if isinstance(reader, Merger):
        return reader.has_data()
    return reader.has_data() or reader.producer_closed


def _detach(value: Any) -> Any:
    """Copy a collected value out of the ring (its arrays are views valid until commit)."""
    return copy.deepcopy(value) if _has_arrays(value) else value


def _has_arrays(value: Any) -> bool:
    if isinstance(value, np.ndarray):
        return True
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return any(_has_arrays(getattr(value, f.name)) for f in dataclasses.fields(value))
    if isinstance(value, dict):
        return any(_has_arrays(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_arrays(v) for v in value)
    return False


def _crashed(proc: mp.process.BaseProcess) -> PipelineCrashed:
    return PipelineCrashed(
        f"pipeline process {proc.name} (pid {proc.pid}) died {_exit_reason(proc.exitcode)} "
        "without reporting an error",
        exitcode=proc.exitcode,
    )


def _handle_report(report: tuple, procs: list[mp.process.BaseProcess]) -> None:
    kind = report[0]
    if kind == "done":
        return
    if kind == "failed":
        exc: TaskFailed = report[2]
        raise exc from RemoteTraceback(exc.remote_traceback)
    name = procs[report[1]].name
    raise ConveyorError(
        f"pipeline {name} crashed in conveyor itself: {report[2]}"
    ) from RemoteTraceback(report[3])


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "(still running)"
    if code < 0:
        try:
            return f"from signal {signal.Signals(-code).name}"
        except ValueError:
            return f"from signal {-code}"
    return f"with exit code {code}"
