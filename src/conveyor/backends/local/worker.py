"""A pipeline process: it attaches to the run's shared objects by name, builds its loop's
context and instruments, runs the loop, and reports how it ended on a pipe. It dies with the
process that started it (the driver), however that one dies."""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import os
import signal
import sys
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection

from conveyor._errors import TaskFailed
from conveyor.backends.scaffold import instruments_for
from conveyor.graph import Graph
from conveyor.monitor.counters import Counters
from conveyor.runtime.context import LoopContext, LoopSettings
from conveyor.runtime.frames import use_frame_store
from conveyor.runtime.heartbeat import Heartbeats
from conveyor.runtime.links import Link
from conveyor.runtime.loop import PipelineLoop
from conveyor.runtime.numbering import SplitNumbers
from conveyor.runtime.progress import SourceProgress
from conveyor.transport.doorbell import Doorbell
from conveyor.transport.framestore import FrameStore
from conveyor.transport.ring import register_bell


@dataclass(frozen=True)
class SharedNames:
    """The run's shared objects, by name (a pipeline attaches to them)."""

    progress: str  # where sources resume after a restart
    heartbeats: str  # the monitor's slots (one per pipeline)
    split_numbers: str  # where tasks feeding replicas record their numbering
    checkpoints: str  # where stateful tasks save their state (a path prefix)
    frame_store: str | None = None
    counters: str | None = None  # the run's statistics table (monitor.counters)
    trace: str | None = None  # where pipelines write their trace parts (monitor.trace)
    heartbeat_slots: int = 0  # slots in the heartbeats (0: one per planned pipeline)


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a pipeline process needs, by name and by value."""

    index: int
    graph: Graph
    tasks: list[str]
    bell: str  # this pipeline's doorbell
    links: list[Link]  # the links that start or end in this pipeline
    shared: SharedNames
    settings: LoopSettings
    pipelines: int = 1
    splitters: tuple[str, ...] = ()  # the tasks that feed replicas
    gpu: int | None = None  # the device of a GPU pipeline
    parent_pid: int | None = None  # a child process: it dies with this process (the driver)
    control: str | None = None  # the driver's ring of changes into it (``runtime.control``)


def process_main(
    parent: int, modules: tuple[str, ...], orders: Connection, report: Connection
) -> None:
    """Entry point of a pipeline process: import ``modules`` (a warm spare: the graph's code,
    so that a restarted pipeline starts without Python's import time), then wait for the
    config of the pipeline to run. A spare that is never given one exits when its pipe is
    closed (or with the driver: its parent death signal is set before it waits)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides how a run stops
    die_with_parent(parent)
    name_process("conveyor-spare")
    for module in modules:
        # Only a head start: a module that fails here fails again, reported, when the
        # config that needs it is read.
        with contextlib.suppress(Exception):
            importlib.import_module(module)
    try:
        config = orders.recv()
    except (EOFError, OSError):  # a spare nobody needed
        return
    orders.close()
    name_process(f"conveyor-p{config.index}")
    worker_main(config, report)


def worker_main(config: WorkerConfig, report: Connection) -> None:
    """Entry point of a pipeline process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides how a run stops
    if config.parent_pid is not None:
        die_with_parent(config.parent_pid)
    if config.gpu is not None:  # a GPU pipeline sees its own device as device 0
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")
        chosen = visible[config.gpu] if len(visible) > config.gpu and visible[0] else config.gpu
        os.environ["CUDA_VISIBLE_DEVICES"] = str(chosen).strip()
    try:
        loop = PipelineLoop(_context(config, report))
        report.send(("ready", config.index))
        loop.run()
        report.send(("done", config.index))
    except TaskFailed as exc:
        report.send(("failed", config.index, exc))
    except BaseException as exc:  # noqa: BLE001 - everything must reach the parent
        text = "".join(traceback.format_exception(exc))
        report.send(("crashed", config.index, f"{type(exc).__name__}: {exc}", text))


def _context(config: WorkerConfig, report: Connection) -> LoopContext:
    """Attach to the run's shared objects; the loop's context."""
    shared, graph = config.shared, config.graph
    bell = Doorbell.attach(config.bell)
    register_bell(bell)
    if shared.frame_store is not None:
        use_frame_store(FrameStore.attach(shared.frame_store))
    counters = None
    if shared.counters is not None:
        counters = Counters.attach(shared.counters, config.pipelines, len(graph.order))
    slots = shared.heartbeat_slots or config.pipelines
    beat = Heartbeats.attach(shared.heartbeats, slots).slot(config.index)
    return LoopContext(
        graph,
        config.tasks,
        index=config.index,
        links=config.links,
        settings=config.settings,
        bell=bell,
        progress=SourceProgress.attach(shared.progress, graph.sources()),
        checkpoints=shared.checkpoints,
        split_numbers=SplitNumbers.attach(shared.split_numbers, list(config.splitters)),
        instruments=instruments_for(
            graph, config.index, config.settings, counters, shared.trace, beat
        ),
        on_dead_letter=lambda letter: report.send(("dead", config.index, letter)),
        control=config.control,
        on_late_source=lambda name: report.send(("late", config.index, name)),
    )


PR_SET_PDEATHSIG = 1  # prctl(2): the signal this process gets when its parent thread dies
PR_SET_NAME = 15  # prctl(2): the name ps, top and psutil's name() show (15 bytes at most)


def name_process(name: str) -> None:
    """Show ``name`` in ``ps``/``top`` (Linux): a pipeline is ``conveyor-p<index>``, a warm
    spare ``conveyor-spare``, where both would otherwise be "python"."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)


def die_with_parent(parent: int) -> None:
    """Have the kernel SIGKILL this process when its parent dies, however the parent dies
    (SIGKILL included: no clean-up of the parent's runs, so nothing else could do it). The
    parent's janitor unlinks the shared memory. Linux only; elsewhere the supervisor's
    stop is the only way out."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it died before the call above: nobody will signal us
        os._exit(1)
