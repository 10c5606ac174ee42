"""The ``conveyor`` command.

    conveyor plan MODULE:GRAPH [--workers N] [--gpus N] [--measure ITEMS] [--dot FILE]
    conveyor run  MODULE:GRAPH [--backend inline|local|ray] [--address ADDR] [--workers N]
                  [--measure ITEMS]
                  [--quiet] [--metrics-port PORT] [--trace FILE]
    conveyor report TRACE --out DIR
    conveyor demo [--seconds S] [--cameras N]
    conveyor clean

``MODULE:GRAPH`` names a ``conveyor.Graph`` (or a function returning one) in an importable
module or a ``.py`` file, e.g. ``examples/hello.py:graph``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
import time
from pathlib import Path
from typing import Any

from conveyor import __version__
from conveyor._errors import ConfigurationError, ConveyorError, TaskFailed


def load_graph(ref: str) -> Any:
    """Import ``module:attr`` (or ``path/to/file.py:attr``) and return the Graph it names."""
    from conveyor.graph import Graph

    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise ConfigurationError(
            f"expected MODULE:GRAPH (e.g. examples/hello.py:graph), got {ref!r}"
        )
    sys.path.insert(0, os.getcwd())
    if module_name.endswith(".py"):
        path = Path(module_name)
        if not path.is_file():
            raise ConfigurationError(f"no such file: {path}")
        # Import it under its own name (not as a path) so worker processes can import it too.
        sys.path.insert(0, str(path.parent.resolve()))
        module_name = path.stem
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigurationError(f"cannot import {module_name!r}: {exc}") from exc
    try:
        obj = getattr(module, attr)
    except AttributeError:
        raise ConfigurationError(f"module {module_name!r} has no {attr!r}") from None
    if callable(obj) and not isinstance(obj, Graph):
        obj = obj()
    if not isinstance(obj, Graph):
        raise ConfigurationError(f"{ref} is a {type(obj).__name__}, expected a conveyor.Graph")
    return obj


def _plan(args: argparse.Namespace) -> int:
    from conveyor.backends.inline import measure_costs
    from conveyor.plan import detect_gpus, make_plan

    graph = load_graph(args.graph)
    costs = measure_costs(graph, args.measure) if args.measure else None
    gpus = detect_gpus() if args.gpus is None else args.gpus
    plan = make_plan(graph, workers=args.workers, gpus=gpus, costs=costs)
    print(graph.describe())
    print()
    print(plan.describe())
    if args.dot:
        Path(args.dot).write_text(plan.to_dot())
        print(f"\nwrote {args.dot} (render it with: dot -Tpng {args.dot} -o plan.png)")
    if args.png:
        from conveyor.plan_drawing import draw_plan

        print(f"wrote {draw_plan(plan, args.png)}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from conveyor.api import run
    from conveyor.backends.inline import measure_costs
    from conveyor.plan import detect_gpus, make_plan

    graph = load_graph(args.graph)
    plan: Any = None
    if args.address and args.backend != "ray":
        raise ConfigurationError("--address is for --backend ray")
    ray_init = {"address": args.address} if args.address else None
    watch = watchers(args.quiet, args.metrics_port, args.metrics_host)
    if args.backend in ("local", "ray"):
        costs = measure_costs(graph, args.measure) if args.measure else None
        if args.backend == "ray":  # several nodes: the graph is spread over them
            from conveyor.backends.ray_backend import ensure_ray
            from conveyor.backends.ray_cluster import spread

            plan = spread(ensure_ray(ray_init), graph, None, args.workers, costs)
            ray_init = None
            if plan is not None and watch:
                print("(the live view is for one node: the statistics come at the end)")
                watch = []
        if plan is None:
            plan = make_plan(graph, workers=args.workers, gpus=detect_gpus(), costs=costs)
        if not args.quiet:
            print(plan.describe(), flush=True)
    start = time.monotonic()
    result = run(
        graph, backend=args.backend, plan=plan, watch=watch, trace=args.trace, ray_init=ray_init
    )
    print(f"done: {result.backend} backend, {time.monotonic() - start:.2f} s")
    if result.trace is not None:
        print(
            f"wrote the trace {result.trace} (open it in https://ui.perfetto.dev, or draw it:"
            f" conveyor report {result.trace} --out DIR)"
        )
    if result.cluster is not None and result.stats is not None and not args.quiet:
        for p in result.stats.pipelines:
            print(f"  {p.name:<20} busy {100 * p.busy:5.1f}%   {', '.join(p.tasks)}")
    elif plan is not None and result.stats is not None and result.stats.bottleneck is not None:
        print(bottleneck_advice(plan, result.stats))
    return 0


def watchers(quiet: bool, metrics_port: int | None, metrics_host: str) -> list[Any]:
    """The observers a command-line run gets: the dashboard unless ``quiet``, and the
    Prometheus endpoint when a port is given."""
    from conveyor.monitor.dashboard import Dashboard
    from conveyor.monitor.prometheus import MetricsServer

    watch: list[Any] = [] if quiet else [Dashboard()]
    if metrics_port is not None:
        server = MetricsServer(metrics_port, metrics_host)
        print(f"metrics: {server.url}", flush=True)
        watch.append(server)
    return watch


def bottleneck_advice(plan: Any, stats: Any) -> str:
    """What the CLI says when one pipeline held the run up: the measured loads of this plan
    against those of the plan made again from the measurements."""
    from conveyor.plan import measured_costs

    busiest = stats.bottleneck
    now = plan.with_costs(measured_costs(stats, plan.graph)).bottleneck.load
    better = plan.replan(stats)
    text = (
        f"bottleneck: pipeline {busiest.name} was busy {busiest.busy:.0%} of the run "
        f"(tasks: {', '.join(busiest.tasks)})."
    )
    after = better.bottleneck.load
    if after < 0.95 * now:
        text += (
            f"\nplaced again from the measured costs (plan.replan(stats)), the bottleneck would "
            f"take {after * 1e3:.2f} ms per item instead of {now * 1e3:.2f} ms:\n"
            + better.describe()
            + "\n(conveyor run --measure ITEMS plans from measurements from the start)"
        )
    else:
        text += " Re-placing the tasks would not help: the work itself is the limit."
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="conveyor", description="Multi-process pipelines for live video inference."
    )
    parser.add_argument("--version", action="version", version=f"conveyor {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    cpus = os.cpu_count() or 2

    p = sub.add_parser("plan", help="show which task runs in which pipeline, and why")
    p.add_argument("graph", help="MODULE:GRAPH")
    p.add_argument("--workers", type=int, default=cpus, help=f"CPU pipelines (default {cpus})")
    p.add_argument(
        "--gpus", type=int, default=None, help="GPUs to place GPU tasks on (default: detected)"
    )
    p.add_argument(
        "--measure",
        type=int,
        default=0,
        metavar="ITEMS",
        help="measure costs by running the first ITEMS source items inline "
        "(sinks run too) instead of using hints",
    )
    p.add_argument("--dot", help="also write the plan as Graphviz DOT to this file")
    p.add_argument("--png", help="also draw the plan as a PNG picture to this file")

    r = sub.add_parser("run", help="run a graph until its sources end")
    r.add_argument("graph", help="MODULE:GRAPH")
    r.add_argument("--backend", choices=["inline", "local", "ray"], default="local")
    r.add_argument("--address", help="Ray cluster to join (--backend ray; default: start Ray here)")
    r.add_argument("--workers", type=int, default=cpus, help=f"CPU pipelines (default {cpus})")
    r.add_argument(
        "--measure",
        type=int,
        default=0,
        metavar="ITEMS",
        help="measure costs on the first ITEMS items before planning",
    )

    r.add_argument("--quiet", action="store_true", help="no plan, no dashboard")
    r.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve Prometheus metrics on this port while the run goes on",
    )
    r.add_argument(
        "--metrics-host", default="127.0.0.1", help="address to serve metrics on (127.0.0.1)"
    )
    r.add_argument(
        "--trace", metavar="FILE", help="write a Perfetto timeline of every task call (JSON)"
    )

    rep = sub.add_parser("report", help="draw utilization and queue plots from a trace")
    rep.add_argument("trace", help="a trace file written by conveyor run --trace")
    rep.add_argument("--out", required=True, help="folder for the PNG plots")
    rep.add_argument("--window", type=float, default=2.0, help="seconds shown in the timeline (2)")

    sub.add_parser(
        "demo", help="watch frames cross processes through shared memory", add_help=False
    )
    sub.add_parser("clean", help="remove shared-memory segments left by dead processes")
    args, rest = parser.parse_known_args(argv)
    if args.command == "demo":
        from conveyor import demo

        return demo.main(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        if args.command == "plan":
            return _plan(args)
        if args.command == "run":
            return _run(args)
        if args.command == "report":
            return _report(args)
        return _clean()
    except TaskFailed as exc:
        print(f"error: {exc}\n\nthe worker's traceback:\n{exc.remote_traceback}", file=sys.stderr)
        return 1
    except ConveyorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: every pipeline was stopped", file=sys.stderr)
        return 130


def _report(args: argparse.Namespace) -> int:
    from conveyor.monitor.report import draw_report

    for path in draw_report(args.trace, args.out, window=args.window):
        print(f"wrote {path}")
    return 0


def _clean() -> int:
    from conveyor.transport.segment import leaked_segments, sweep_orphans

    removed = sweep_orphans()
    for name in removed:
        print(f"removed {name}")
    live = leaked_segments()
    print(f"removed {len(removed)} segment(s) of dead processes; {len(live)} belong to live ones")
    return 0


if __name__ == "__main__":
    sys.exit(main())
