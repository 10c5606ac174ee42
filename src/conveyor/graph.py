"""The task graph, wired by message types.

``Graph([camera, detect, Track, heatmap])`` connects the output of every task to each task that
takes its type: an output of type ``T`` goes to *every* task with a ``T`` parameter (fan-out);
a task with several parameters takes one message from each (a join, done by the runtime).

Build-time errors say what is wrong and how to fix it:

* an input no task produces ("add a task that returns Detections, or a source that yields it");
* an input two tasks produce (name the one you mean: ``@task(wire={"det": "detect_a"})``);
* a cycle (with the path);
* two tasks with one name.

**Sources per camera.** Several bindings of one source (``[cv.bind(Camera, url).named(name)
for ...]``) may all feed the tasks that take their type: their items merge, each source's in
its own order. Each is a task of its own, so the planner spreads them over pipelines by their
measured cost, and a source that fails or restarts touches no other.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from conveyor._errors import ConfigurationError
from conveyor.task import TaskSpec, spec_of, unbound_arguments


@dataclass(frozen=True)
class Edge:
    """``producer``'s output goes to ``consumer``'s parameter ``param`` (of type ``type``)."""

    producer: str
    consumer: str
    param: str
    type: type

    def __str__(self) -> str:
        return f"{self.producer} -> {self.consumer}.{self.param} ({self.type.__name__})"


class Graph:
    """Tasks and the edges between them; validated on construction."""

    def __init__(self, tasks: Iterable[Any]) -> None:
        specs = [spec_of(t) for t in tasks]
        if not specs:
            raise ConfigurationError("a graph needs at least one task")
        self.tasks: dict[str, TaskSpec] = {}
        for spec in specs:
            if spec.name in self.tasks:
                raise ConfigurationError(
                    f"two tasks are named {spec.name!r}; give one another name with "
                    "@conveyor.task(name=...)"
                )
            self.tasks[spec.name] = spec
            missing = unbound_arguments(spec)
            if missing:
                raise ConfigurationError(
                    f"{spec.kind} {spec.name!r} needs arguments {missing} to be built; give "
                    f"them with {spec.name}.bind(...) in the graph"
                )
        if not any(s.kind == "source" for s in specs):
            raise ConfigurationError("the graph has no source: add a @conveyor.source")
        self.edges: list[Edge] = [e for spec in specs for e in self._wire(spec)]
        self.order: list[str] = self._topological_order()

    def _wire(self, spec: TaskSpec) -> Iterator[Edge]:
        for param, tp in spec.inputs:
            wanted = spec.wire.get(param)
            if wanted is not None:
                producer = self.tasks.get(wanted)
                if producer is None:
                    raise ConfigurationError(
                        f"task {spec.name!r}: wire={{{param!r}: {wanted!r}}} names no task in "
                        f"the graph; tasks are {sorted(self.tasks)}"
                    )
                if producer.output is None or not issubclass(producer.output, tp):
                    raise ConfigurationError(
                        f"task {spec.name!r}: {param!r} takes {tp.__name__}, but {wanted!r} "
                        f"produces {_name(producer.output)}"
                    )
                yield Edge(wanted, spec.name, param, tp)
                continue
            producers = [
                p
                for p in self.tasks.values()
                if p.output is not None and issubclass(p.output, tp) and p.name != spec.name
            ]
            if not producers:
                raise ConfigurationError(
                    f"no task produces {tp.__name__}, which task {spec.name!r} takes as "
                    f"{param!r}; add a task that returns {tp.__name__} or a source that yields "
                    "it (and include it in the graph)"
                )
            if len(producers) > 1 and _one_source(producers):
                for p in producers:  # bindings of one source, one per camera: they merge
                    yield Edge(p.name, spec.name, param, tp)
                continue
            if len(producers) > 1:
                names = sorted(p.name for p in producers)
                raise ConfigurationError(
                    f"task {spec.name!r} takes {tp.__name__} as {param!r}, and {names} all "
                    f"produce it; say which with @conveyor.task(wire={{{param!r}: {names[0]!r}}})"
                )
            yield Edge(producers[0].name, spec.name, param, tp)

    def _topological_order(self) -> list[str]:
        downstream: dict[str, list[str]] = {n: [] for n in self.tasks}
        for e in self.edges:
            downstream[e.producer].append(e.consumer)
        order: list[str] = []
        state: dict[str, int] = {}  # 1: on the current path, 2: done

        def visit(node: str, path: list[str]) -> None:
            if state.get(node) == 2:
                return
            if state.get(node) == 1:
                cycle = path[path.index(node) :] + [node]
                raise ConfigurationError(
                    f"the graph has a cycle: {' -> '.join(cycle)}; conveyor graphs are acyclic "
                    "(keep state inside a stateful task instead of feeding outputs back)"
                )
            state[node] = 1
            for nxt in downstream[node]:
                visit(nxt, [*path, node])
            state[node] = 2
            order.append(node)

        for name in self.tasks:
            visit(name, [])
        return order[::-1]

    def check_importable(self) -> None:
        """Raise if a worker process could not import a task or a message type.

        Worker processes find tasks and message types by module and name (spawn re-imports
        them), so both must be defined at a module's top level, not inside a function.
        """
        for spec in self.tasks.values():
            what = [("task", spec.name, spec.target)]
            what += [("message type", f"{spec.name}.{p}", tp) for p, tp in spec.inputs]
            if spec.output is not None:
                what.append(("message type", f"output of {spec.name}", spec.output))
            for kind, where, obj in what:
                qualname = getattr(obj, "__qualname__", "")
                module = getattr(obj, "__module__", None)
                if "<locals>" in qualname or "<lambda>" in qualname or module is None:
                    raise ConfigurationError(
                        f"{kind} {qualname or obj!r} ({where}) is defined inside a function, "
                        "so worker processes cannot import it; define it at the top level of "
                        "a module (or run with backend='inline')"
                    )

    # -- queries -----------------------------------------------------------------------------

    def inputs_of(self, name: str) -> list[Edge]:
        return [e for e in self.edges if e.consumer == name]

    def streams_into(self, name: str) -> list[str]:
        """The sources whose items merge into ``name`` (several bindings of one source), in
        graph order; empty when its inputs are not such a merge."""
        edges = self.inputs_of(name)
        if len({e.param for e in edges}) != 1 or len(edges) < 2:
            return []
        return [e.producer for e in edges]

    def merged_with(self, source: str) -> list[str]:
        """The other sources whose items merge with ``source``'s into a consumer (the other
        cameras, where a source is bound once per camera), in graph order."""
        others: set[str] = set()
        for edge in self.outputs_of(source):
            members = self.streams_into(edge.consumer)
            if source in members:
                others.update(members)
        others.discard(source)
        return [n for n in self.order if n in others]

    def streams_above(self, name: str) -> list[str]:
        """The sources upstream of ``name`` that are bound once per stream (several bindings
        of one source merging: the cameras), in graph order."""
        above: set[str] = set()
        todo = [name]
        while todo:
            for edge in self.inputs_of(todo.pop()):
                if edge.producer not in above:
                    above.add(edge.producer)
                    todo.append(edge.producer)
        return [n for n in self.sources() if n in above and self.merged_with(n)]

    def outputs_of(self, name: str) -> list[Edge]:
        return [e for e in self.edges if e.producer == name]

    def sources(self) -> list[str]:
        return [n for n in self.order if self.tasks[n].kind == "source"]

    def describe(self) -> str:
        lines = [f"graph of {len(self.tasks)} tasks:"]
        lines += [f"  {self.tasks[n].describe()}" for n in self.order]
        lines += ["edges:"] + [f"  {e}" for e in self.edges]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Graph {' -> '.join(self.order)}>"


def _one_source(producers: list[TaskSpec]) -> bool:
    """Several bindings of one source (the same class or function)."""
    first = producers[0]
    return all(p.kind == "source" and p.target is first.target for p in producers)


def _name(tp: type | None) -> str:
    return "nothing (it is a sink)" if tp is None else tp.__name__
