"""Cameras added to and removed from a local run while it goes on: the driver's side of
``RunHandle.add_source`` and ``remove_source`` (``backends.local.handle``).

An **added** source runs in a pipeline process of its own, with a ring of its own into the
pipeline that consumes its type (the replica with the fewest cameras, where the consumer is
partitioned by stream) and, when it brings cameras, a frame store of its own (a ``FrameRef``
names its store, so any process reads its frames). The consumer's pipeline is told to attach
the ring (``runtime.control.Attach``); no other pipeline, and no other camera's work, changes.
A **removed** source is told to end (``EndSource``) in whichever pipeline runs it: what it
already yielded is finished downstream, then its consumers see its end as at a file's end.
Gathering tasks below are told how many cameras to wait for (``Expect``); the one that left
is let go after at most one ``max_wait`` (``runtime.gather``).

Every change is written into the affected pipelines' configs before it is sent, so that a
pipeline restarted after a crash starts with it (see ``runtime.control``). A source's name is
never used twice in a run: items are told apart by origins derived from their source's name,
and a second source of that name would repeat the first one's origins.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Sequence

from conveyor._errors import ConfigurationError
from conveyor.backends.local.resources import (
    ADDED_PIPELINES,
    CONTROL_BYTES,
    RING_BYTES,
    RunResources,
    closing,
)
from conveyor.backends.local.worker import WorkerConfig
from conveyor.graph import Graph
from conveyor.plan import Plan
from conveyor.runtime.control import Attach, Change, EndSource, Expect
from conveyor.runtime.frames import create_frame_store
from conveyor.runtime.links import Link, stream_replicas
from conveyor.runtime.progress import SourceProgress
from conveyor.spec import CameraSpec
from conveyor.task import TaskSpec, spec_of
from conveyor.transport.doorbell import Doorbell
from conveyor.transport.ring import Ring, RingWriter


class RunChanges:
    """The run's sources as they change; builds what each change needs and tells the
    pipelines. Used by the supervisor's thread only (it owns ``configs``)."""

    def __init__(
        self,
        stack: contextlib.ExitStack,
        plan: Plan,
        shared: RunResources,
        configs: list[WorkerConfig],
        launch: Callable[[WorkerConfig], None],
    ) -> None:
        self.stack, self.plan, self.shared, self.configs = stack, plan, shared, configs
        self.launch = launch  # starts an added source's pipeline (the supervisor's)
        graph = plan.graph
        self.specs: dict[str, TaskSpec] = dict(graph.tasks)
        self.home = {s: plan.replicas_of(s)[0] for s in graph.sources()}  # source -> pipeline
        self.ended: set[str] = set()
        self.used: set[str] = set(graph.tasks)  # names taken in this run, ended ones too
        # Consumers partitioned by stream: which replica takes each source.
        self.replica_of: dict[str, dict[str, int]] = {
            name: stream_replicas(plan, name)
            for name in graph.tasks
            if len(plan.replicas_of(name)) > 1 and graph.streams_into(name)
        }
        self.writers: dict[int, RingWriter] = {}

    # -- what the handle asks --------------------------------------------------------------

    def sources(self) -> list[str]:
        """The sources still in the run (neither removed nor added and removed)."""
        return [s for s in self.home if s not in self.ended]

    def add(self, source: object, cameras: Sequence[CameraSpec]) -> str:
        """Start ``source`` (a bound source) in a pipeline of its own and tell its consumers'
        pipelines; its name."""
        spec = spec_of(source)
        if spec.kind != "source":
            raise ConfigurationError(f"add_source takes a source, got {spec.kind} {spec.name!r}")
        if spec.name in self.used:
            raise ConfigurationError(
                f"a source named {spec.name!r} is or was in this run; give the new one a name "
                f"of its own (.named(...)): items are told apart by their source's name"
            )
        index = len(self.configs)
        if index >= len(self.plan.pipelines) + ADDED_PIPELINES:
            raise ConfigurationError(
                f"at most {ADDED_PIPELINES} sources can be added to one run; start a new run"
            )
        live = [self.specs[n] for n in self.specs if n not in self.ended]
        try:
            graph = Graph([*live, spec])
        except ConfigurationError as exc:
            raise ConfigurationError(f"add_source {spec.name!r}: {exc}") from exc
        edges = graph.outputs_of(spec.name)
        if not edges:
            raise ConfigurationError(
                f"add_source {spec.name!r}: no task of the run takes what it yields"
            )
        Graph([spec]).check_importable()
        store = create_frame_store(cameras, current=False)
        if store is not None:
            closing(self.stack, store)
        bell = closing(self.stack, Doorbell.create())
        progress = closing(self.stack, SourceProgress.create([spec.name]))
        links = []
        for edge in edges:
            dst = self._consumer_pipeline(edge.consumer, spec.name)
            ring = closing(
                self.stack,
                Ring(RING_BYTES, consumer_bell=self.shared.bells[dst], producer_bell=bell.name),
            )
            links.append(Link(spec.name, edge.consumer, edge.param, index, dst, ring=ring.name))
        control = closing(
            self.stack,
            Ring(CONTROL_BYTES, 64, consumer_bell=bell.name, producer_bell=self.shared.bell.name),
        )
        names = dataclasses.replace(
            self.shared.shared,
            progress=progress.name,
            frame_store=store.name if store is not None else self.shared.shared.frame_store,
            counters=None,  # the statistics table has a column per task of the planned graph
            trace=None,
        )
        first = self.configs[0]
        config = WorkerConfig(
            index,
            Graph([spec]),
            [spec.name],
            bell.name,
            links,
            names,
            dataclasses.replace(first.settings, quarantine=frozenset(), suspects=frozenset()),
            pipelines=first.pipelines,
            control=control.name,
        )
        self.specs[spec.name] = spec
        self.used.add(spec.name)
        self.home[spec.name] = index
        for link in links:
            self._change(link.dst, Attach(link))
        self._expect(graph)
        self.launch(config)
        return spec.name

    def remove(self, name: str) -> None:
        """End source ``name`` where it runs; gathers below learn the new count."""
        if name not in self.home or name in self.ended:
            known = ", ".join(self.sources()) or "none"
            raise ConfigurationError(
                f"remove_source: {name!r} is not a source of the run now (sources: {known})"
            )
        self.ended.add(name)
        self._change(self.home[name], EndSource(name))
        self._expect(Graph(list(self.specs.values())))

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()
        self.writers.clear()

    # -- parts -----------------------------------------------------------------------------

    def _consumer_pipeline(self, consumer: str, source: str) -> int:
        """The pipeline whose replica of ``consumer`` takes ``source``'s items."""
        homes = self.plan.replicas_of(consumer)
        if len(homes) == 1:
            return homes[0]
        chosen = self.replica_of.get(consumer)
        if chosen is None:
            raise ConfigurationError(
                f"add_source {source!r}: {consumer!r} has {len(homes)} replicas that merge their "
                "outputs back into one order, which a source added while the run goes on cannot "
                "join; bind the source once per camera (several sources) from the start, so "
                "that the planner partitions it by camera"
            )
        load = [0.0] * len(homes)  # the weight of the cameras each replica takes now
        for s, r in chosen.items():
            if s not in self.ended:
                load[r] += self.specs[s].weight
        j = min(range(len(homes)), key=lambda r: (load[r], r))
        chosen[source] = j
        return homes[j]

    def _expect(self, graph: Graph) -> None:
        """Tell every gathering task how many cameras feed it now."""
        for name, spec in graph.tasks.items():
            if spec.gather is None:
                continue
            count = len([s for s in graph.streams_above(name) if s not in self.ended])
            for pipeline in self.plan.replicas_of(name):
                self._change(pipeline, Expect(name, count))

    def _change(self, pipeline: int, change: Change) -> None:
        """Write ``change`` into the pipeline's config (a replacement starts with it), then
        send it (the running one applies it)."""
        config = self.configs[pipeline]
        settings = config.settings
        if isinstance(change, Attach):
            config = dataclasses.replace(config, links=[*config.links, change.link])
        elif isinstance(change, EndSource):
            ended = settings.ended | {change.source}
            config = dataclasses.replace(
                config, settings=dataclasses.replace(settings, ended=ended)
            )
        else:
            streams = (
                *(s for s in settings.streams if s[0] != change.task),
                (change.task, change.streams),
            )
            config = dataclasses.replace(
                config, settings=dataclasses.replace(settings, streams=streams)
            )
        self.configs[pipeline] = config
        writer = self.writers.get(pipeline)
        if writer is None:
            assert config.control is not None
            writer = self.writers[pipeline] = RingWriter(config.control, wait_for_consumer=True)
        writer.write(change, timeout=10.0)
