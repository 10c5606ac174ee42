"""One graph over several nodes of a Ray cluster: one local run per node, joined by bridges.

``cv.run(graph, backend="ray")`` on a cluster of more than one node (with CPUs) plans the graph
across them (``cluster_plan``); when the plan uses one node only, that node runs it as on one
machine (``ray_backend``). Otherwise:

1. a ``Bridge`` actor is made on the consumer's node for every edge that crosses nodes;
2. a ``NodeRun`` actor on every node that has tasks runs that node's graph with the local
   backend's machinery: its own shared memory, pipelines as Ray actors on that node, its own
   supervisor (restarts, replay, checkpoints), sending crossing outputs to the bridges and
   reading them back as inbound sources;
3. the driver waits for every node's run and merges what they return: collected outputs,
   statistics (pipelines named ``NODE/p0-cpu``), restarts and dead letters. The first error of
   any node stops the others and is raised as it was raised there.

A node that leaves the cluster mid-run takes its shared memory, its buffers and its in-flight
items with it: the driver stops the other nodes, plans the graph again over the nodes that
remain and runs it again from its sources' start (replayable sources give the same outputs;
sinks with side effects see the items before the loss again; a live camera goes on from now).
A source pinned to the lost node (``node=...``) cannot move: the run then fails, saying so.
The live view (``watch``) and the trace are single-node features for now.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pickle
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from conveyor._errors import ConfigurationError, PipelineCrashed
from conveyor.backends.base import RunResult
from conveyor.backends.bridge import Bridge, Inbound, Outbound
from conveyor.backends.local import run_local
from conveyor.backends.ray_backend import (
    START_TIMEOUT,
    RayLauncher,
    adopt_driver,
    driver_context,
)
from conveyor.cluster_plan import ClusterPlan, Crossing, NodeSpec, plan_cluster
from conveyor.graph import Graph
from conveyor.monitor.stats import PipelineStats, Stats
from conveyor.runtime.faults import Fault
from conveyor.spec import CameraSpec, Restart, RestartPolicy

_NOT_LABELS = ("CPU", "GPU", "memory", "object_store_memory")
STOP_TIMEOUT = 30.0  # seconds a called-off node run has to stop its pipelines and clean up
NODE_DEATH_WAIT = 30.0  # seconds to wait for Ray to declare a node dead once its actors died
_serial = itertools.count()


def cluster_nodes(ray: Any) -> list[NodeSpec]:
    """The cluster's live nodes that have CPUs, with what ``node=`` may call them."""
    me = ray.get_runtime_context().get_node_id()
    nodes = []
    for info in ray.nodes():
        have = info.get("Resources", {})
        if not info.get("Alive") or have.get("CPU", 0) < 1:
            continue
        labels = {info.get("NodeManagerAddress", ""), info.get("NodeManagerHostname", "")}
        labels |= {info.get("NodeName", "")}
        labels |= {
            r
            for r in have
            if r not in _NOT_LABELS and not r.startswith(("node:", "accelerator_type:"))
        }
        for key, value in (info.get("Labels") or {}).items():
            if not key.startswith("ray.io/"):
                labels |= {value, f"{key}={value}"}
        nodes.append(
            NodeSpec(
                info["NodeID"],
                int(have["CPU"]),
                int(have.get("GPU", 0)),
                frozenset(label for label in labels if label),
                driver=info["NodeID"] == me,
            )
        )
    return sorted(nodes, key=lambda n: not n.driver)


@dataclass(frozen=True)
class NodeJob:
    """What one node's run needs (pickled to its ``NodeRun`` actor)."""

    graph: Graph
    plan: Any  # the node's Plan
    collect: list[str]
    forward: dict[str, list[str]]  # producer -> the names of the bridges it feeds
    namespace: str
    cameras: Sequence[CameraSpec]
    restarts: RestartPolicy | None
    stats: bool
    faults: tuple[Fault, ...] = ()


class NodeRun:
    """Runs one node's share of the graph (made a Ray actor, pinned to its node, with room for
    a ``stop`` call while ``run`` goes on)."""

    def __init__(self) -> None:
        self.stopping = threading.Event()

    def stop(self) -> None:
        """Call the run off: it stops its pipelines and releases its shared memory (a killed
        actor could not: Ray ends its children, the shared-memory janitor among them)."""
        self.stopping.set()

    def run(self, payload: bytes, context: tuple[dict[str, str], list[str], str | None]) -> Any:
        try:
            adopt_driver(*context)
            import ray

            job: NodeJob = pickle.loads(payload)
            forward = {
                producer: Outbound(
                    ray, [ray.get_actor(name, namespace=job.namespace) for name in names]
                )
                for producer, names in job.forward.items()
            }
            result = run_local(
                job.graph,
                job.collect,
                plan=job.plan,
                cameras=job.cameras,
                restarts=job.restarts,
                stats=job.stats,
                launcher=RayLauncher(ray),
                forward=forward,
                stop=self.stopping,
                faults=job.faults,
            )
            return ("ok", result)
        except BaseException as exc:  # noqa: BLE001 - the driver raises it as it was
            return ("error", exc)


def run_cluster(
    ray: Any,
    graph: Graph,
    collect: list[str],
    plan: ClusterPlan,
    cameras: Sequence[CameraSpec] = (),
    restarts: RestartPolicy | None = None,
    stats: bool = True,
    faults: Sequence[Fault] = (),
) -> RunResult:
    """Run ``graph`` over the nodes of ``plan`` (see the module's docstring). When a node
    leaves the cluster mid-run, the graph is planned again over the nodes that remain and run
    again from its sources' start (at most ``restarts.limit`` times)."""
    policy = restarts or RestartPolicy()
    replaced: list[Restart] = []
    start = time.monotonic()
    while True:
        try:
            results = _attempt(ray, plan, collect, cameras, restarts, stats, tuple(faults))
            break
        except _NodeLost as lost:
            now = time.monotonic()
            names = ", ".join(plan.node(n).short for n in lost.gone)
            if len(replaced) >= policy.limit:
                raise PipelineCrashed(
                    f"node(s) {names} left the cluster after {len(replaced)} replacements"
                ) from lost.__cause__
            left = [n for n in cluster_nodes(ray) if n.id not in lost.gone]
            try:
                plan = plan_cluster(graph, left, costs=plan.costs, workers=plan.workers)
            except ConfigurationError as exc:
                raise PipelineCrashed(
                    f"node(s) {names} left the cluster and their tasks cannot run on the "
                    f"nodes that remain: {exc}"
                ) from exc
            reason = f"node left the cluster: the run starts again on {len(plan.used)} node(s)"
            for gone in lost.gone:
                replaced.append(Restart(f"node {gone[:8]}", reason, now, ready_at=now))
    result = _merge(plan, results, collect, time.monotonic() - start)
    result.restarts[:0] = replaced
    return result


class _NodeLost(Exception):
    def __init__(self, gone: list[str]) -> None:
        super().__init__(f"nodes left the cluster: {gone}")
        self.gone = gone


def _attempt(
    ray: Any,
    plan: ClusterPlan,
    collect: list[str],
    cameras: Sequence[CameraSpec],
    restarts: RestartPolicy | None,
    stats: bool,
    faults: tuple[Fault, ...],
) -> dict[str, RunResult]:
    """One run of ``plan``: every node's result, or ``_NodeLost`` when a node of it died."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    def on(node: str) -> Any:
        return NodeAffinitySchedulingStrategy(node, soft=False)

    namespace = ray.get_runtime_context().namespace
    run_id = f"{os.getpid()}-{next(_serial)}"
    bridge_class = ray.remote(num_cpus=0, max_restarts=0)(Bridge)
    bridges: dict[Crossing, str] = {}
    actors: list[Any] = []
    runs: dict[str, Any] = {}
    refs: dict[Any, str] = {}
    results: dict[str, RunResult] = {}
    try:
        for i, crossing in enumerate(plan.crossings):
            name = f"conveyor-bridge-{run_id}-{i}"
            actors.append(
                bridge_class.options(
                    name=name, namespace=namespace, scheduling_strategy=on(crossing.dst)
                ).remote()
            )
            bridges[crossing] = name
        ray.get([a.__ray_ready__.remote() for a in actors], timeout=START_TIMEOUT)
        node_class = ray.remote(num_cpus=0, max_restarts=0, max_concurrency=2)(NodeRun)
        context = driver_context()

        def inbound(c: Crossing) -> Any:
            return _InboundFactory(bridges[c], namespace)

        for node in plan.used:
            node_graph = plan.node_graph(node.id, inbound)
            sources = any(plan.graph.tasks[t].kind == "source" for t in plan.tasks_on(node.id))
            job = NodeJob(
                node_graph,
                plan.node_plan(node.id, node_graph),
                [t for t in collect if plan.placement[t] == node.id],
                {
                    p: [bridges[c] for c in plan.crossings if c.producer == p]
                    for p in plan.outbound(node.id)
                },
                namespace,
                cameras if sources else (),
                restarts,
                stats,
                faults,
            )
            runs[node.id] = node_class.options(scheduling_strategy=on(node.id)).remote()
            refs[runs[node.id].run.remote(pickle.dumps(job), context)] = node.id
        waiting = list(refs)
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=1)
            node_id = refs[ready[0]]
            try:
                status, value = ray.get(ready[0])
            except Exception as exc:  # the actor itself died (its node left, or a kill)
                gone = _departed(ray, plan)
                if gone:
                    raise _NodeLost(gone) from exc
                raise _run_died(plan.node(node_id), exc) from exc
            if status == "error":
                if _is_ray_failure(ray, value):  # e.g. a bridge on a node that left
                    gone = _departed(ray, plan)
                    if gone:
                        raise _NodeLost(gone) from value
                raise value
            results[node_id] = value
        return results
    finally:
        # Runs still going when this attempt ends early: call them off.
        _call_off(ray, runs, refs, [r for r, node in refs.items() if node not in results])
        for actor in [*runs.values(), *actors]:
            ray.kill(actor, no_restart=True)


def _call_off(ray: Any, runs: dict[str, Any], refs: dict[Any, str], running: list[Any]) -> None:
    """Ask the node runs still going to stop, and wait (a while) until they have cleaned up."""
    if not running:
        return
    for ref in running:
        with contextlib.suppress(Exception):  # its node may be gone
            runs[refs[ref]].stop.remote()
    with contextlib.suppress(Exception):
        ray.wait(running, num_returns=len(running), timeout=STOP_TIMEOUT)


def _departed(ray: Any, plan: ClusterPlan, wait: float = NODE_DEATH_WAIT) -> list[str]:
    """The nodes of ``plan`` that Ray has declared dead. Ray notices a node's death a little
    after its actors' (health checks), so this asks again for up to ``wait`` seconds: a rare
    path, where a short poll of the cluster's state is the only way to learn it."""
    used = {n.id for n in plan.used}
    deadline = time.monotonic() + wait
    while True:
        alive = {n["NodeID"] for n in ray.nodes() if n.get("Alive")}
        gone = sorted(used - alive)
        if gone or time.monotonic() > deadline:
            return gone
        time.sleep(0.5)


def _is_ray_failure(ray: Any, exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ray.exceptions.RayError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class _InboundFactory:
    """The target of an inbound source: makes its ``Inbound`` in the pipeline (picklable)."""

    def __init__(self, bridge: str, namespace: str) -> None:
        self.bridge, self.namespace = bridge, namespace

    def __call__(self) -> Inbound:
        return Inbound(self.bridge, self.namespace)


def spread(
    ray: Any,
    graph: Graph,
    plan: Any,
    workers: int | None,
    costs: Mapping[str, float] | None = None,
) -> ClusterPlan | None:
    """The cluster plan to run ``graph`` with, or None when it runs on the driver's node alone
    (one node in the cluster, a single-node ``Plan`` given, or every task placed there)."""
    if plan is not None and not isinstance(plan, ClusterPlan):
        return None
    if plan is None:
        nodes = cluster_nodes(ray)
        if len(nodes) < 2:
            return None
        plan = plan_cluster(graph, nodes, costs=costs, workers=workers)
    if plan.graph is not graph:
        raise ConfigurationError("the ClusterPlan given was made for another graph")
    used = plan.used
    return None if len(used) == 1 and used[0].driver else plan


def _run_died(node: NodeSpec, exc: BaseException) -> Exception:
    first = str(exc).strip().splitlines()
    return PipelineCrashed(
        f"the run on node {node.short} ended without a result "
        f"({first[0] if first else type(exc).__name__}), and its node is still alive"
    )


def _merge(
    plan: ClusterPlan, results: Mapping[str, RunResult], collect: list[str], elapsed: float
) -> RunResult:
    outputs = {name: results[plan.placement[name]].outputs[name] for name in collect}
    restarts = [r for res in results.values() for r in res.restarts]
    dead = [d for res in results.values() for d in res.dead_letters]
    stats = None
    if all(res.stats is not None for res in results.values()):
        tasks: dict[str, Any] = {}
        pipelines: list[PipelineStats] = []
        for node_id, res in results.items():
            assert res.stats is not None
            tasks.update({n: t for n, t in res.stats.tasks.items() if n in plan.graph.tasks})
            short = plan.node(node_id).short
            for p in res.stats.pipelines:
                pipelines.append(replace(p, index=len(pipelines), name=f"{short}/{p.name}"))
        stats = Stats(elapsed, tasks, tuple(pipelines), tuple(plan.graph.sources()))
    return RunResult("ray", elapsed, outputs, None, restarts, dead, stats=stats, cluster=plan)


def check_cluster_options(watch: Sequence[Any], trace: Any) -> None:
    if watch or trace is not None:
        raise ConfigurationError(
            "watch and trace are not available yet for a run spread over several nodes; "
            "leave them out, or run on one node (ray_init={'address': 'local'})"
        )
