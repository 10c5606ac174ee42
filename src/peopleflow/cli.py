"""``peopleflow``: generate a synthetic store, run a store's cameras, or do both as a demo.

peopleflow generate [--out DIR] [--cameras 8] [--shoppers 40] [--minutes 2]
peopleflow run --config store.toml --out DIR [--backend inline|local] [--seconds S]
               [--quiet] [--metrics-port PORT] [--trace FILE]
peopleflow demo [--cameras 8] [--minutes 2] --out DIR
peopleflow real [--out DIR] [--fps 5]      # OpenCV's vtest.avi, hand-calibrated
peopleflow serve --config store.toml [--db URL] [--start ISO] [--window S]
                 [--web HOST:PORT | --no-web] [--token T]
peopleflow report --db URL --out DIR [--store NAME] [--from ISO] [--to ISO]
peopleflow web --db URL [--store NAME] [--web HOST:PORT] [--token T]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.testing import from_environment
from peopleflow.config import ConfigError
from peopleflow.detect import DetectorError
from peopleflow.sources import SourceError

if TYPE_CHECKING:  # the app imports conveyor and OpenCV: loaded only by the commands that run
    from starlette.applications import Starlette

    from conveyor import Backend, MetricsServer
    from peopleflow.analytics import Report
    from peopleflow.app import RunSummary
    from peopleflow.config import StoreConfig
    from peopleflow.database import ResultsDB
    from peopleflow.web import WebOptions

CACHE = Path(".cache") / "peopleflow"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="peopleflow", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="render the synthetic store (cached)")
    _store_args(gen)
    gen.add_argument("--out", type=Path, help="where (default: a cache folder per parameters)")

    run = sub.add_parser("run", help="run a store's cameras through the pipeline")
    run.add_argument("--config", type=Path, required=True, help="the store's TOML file")
    run.add_argument("--out", type=Path, required=True, help="folder for maps and report")
    _run_args(run)

    demo = sub.add_parser("demo", help="generate the synthetic store, run it, score it")
    _store_args(demo)
    demo.add_argument("--out", type=Path, default=Path("out/demo"))
    demo.add_argument("--data", type=Path, help="where the generated store is cached")
    demo.add_argument(
        "--inline-seconds",
        type=float,
        default=15.0,
        help="video seconds run on the inline backend too, for the speed-up (0: skip)",
    )
    demo.add_argument(
        "--no-serve", action="store_true", help="end after the run: do not serve its page"
    )
    _web_args(demo)
    _run_args(demo)

    real = sub.add_parser("real", help="a real clip: OpenCV's vtest.avi, hand-calibrated")
    real.add_argument("--out", type=Path, default=Path("out/vtest"))
    real.add_argument("--fps", type=float, default=5.0, help="frames per second sampled (5)")
    _run_args(real)

    serve = sub.add_parser("serve", help="run a store live: results in a database as they come")
    serve.add_argument("--config", type=Path, required=True, help="the store's TOML file")
    _serve_args(serve)
    _run_args(serve, seconds=False)

    report = sub.add_parser("report", help="maps and tables for any period, from the database")
    report.add_argument("--db", required=True, help="sqlite:///PATH or postgresql://...")
    report.add_argument("--out", type=Path, required=True, help="folder for maps and tables")
    report.add_argument("--store", help="the store's name (when the database holds several)")
    report.add_argument("--from", dest="start", help="local date or time, ISO (2026-12-02T09:00)")
    report.add_argument("--to", dest="end", help="local date or time, ISO (excluded)")

    web = sub.add_parser("web", help="the store's page over a results database (no cameras)")
    web.add_argument("--db", required=True, help="sqlite:///PATH or postgresql://...")
    web.add_argument("--store", help="the store's name (when the database holds several)")
    web.add_argument("--config", type=Path, help="the store's TOML file (for --calibrate)")
    _web_args(web)

    args = parser.parse_args(argv)
    with from_environment():  # faults a test injected around this program (conveyor.testing)
        return _dispatch(args)


def _dispatch(args: argparse.Namespace) -> int:
    # Here, not at the top: a pipeline process the service spawns imports this module again
    # (as multiprocessing's main) and would pay SQLAlchemy's import (about 0.4 s) for nothing.
    from peopleflow.database import DatabaseError

    try:
        if args.command == "serve":
            return serve_command(args)
        if args.command == "web":
            return web_command(args)
        if args.command == "report":
            report_command(args)
        elif args.command == "generate":
            out = generate(args, args.out)
            print(f"store configuration: {out}")
        elif args.command == "run":
            run_command(args)
        elif args.command == "real":
            real_command(args)
        else:
            demo_command(args)
    except (ConfigError, SourceError, DetectorError, DatabaseError, ValueError) as exc:
        # ValueError: what the command line was given (a date, a page's address) is wrong
        print(f"peopleflow: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("peopleflow: interrupted", file=sys.stderr)
        return 130
    return 0


def _store_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cameras", type=int, default=8)
    p.add_argument("--shoppers", type=int, default=40)
    p.add_argument("--minutes", type=float, default=2.0)
    p.add_argument("--fps", type=float, default=2.0, help="frames per second rendered")
    p.add_argument("--seed", type=int, default=0)
    variety = p.add_argument_group("variety (the defaults make the default store)")
    variety.add_argument(
        "--layout", type=int, default=0, help="0: the default store; N: a store drawn from seed N"
    )
    variety.add_argument(
        "--doors", type=int, default=1, choices=[1, 2], help="a drawn layout's doors"
    )
    variety.add_argument("--resolution", default="640x360", help="the cameras' WIDTHxHEIGHT")
    variety.add_argument("--mount-height", type=float, default=3.4, help="metres")
    variety.add_argument("--pitch", type=float, default=30.0, help="degrees below the horizon")
    variety.add_argument("--hfov", type=float, default=72.0, help="degrees")
    variety.add_argument(
        "--lookalikes", type=float, default=0.0, help="share in alike dark clothes"
    )
    variety.add_argument("--standing", type=int, default=0, help="more people standing 1-3 min")


def _run_args(p: argparse.ArgumentParser, seconds: bool = True) -> None:
    p.add_argument("--backend", choices=["inline", "local"], default="local")
    p.add_argument("--workers", type=int, help="pipeline processes (default: the CPU count)")
    if seconds:  # the batch commands (a live service reads its cameras at their pace)
        p.add_argument("--seconds", type=float, help="only the first S seconds of video")
        p.add_argument(
            "--realtime",
            action="store_true",
            help="read video files at camera pace and drop the frames the pipeline is late for, "
            "as live cameras would: does this machine keep up with these cameras?",
        )
    p.add_argument("--detector", choices=["auto", "yolo", "hog"], default="auto")
    p.add_argument("--quiet", action="store_true", help="no dashboard, no progress lines")
    p.add_argument(
        "--metrics-port", type=int, metavar="PORT", help="serve Prometheus metrics (127.0.0.1)"
    )
    p.add_argument("--trace", type=Path, metavar="FILE", help="write a Perfetto timeline (JSON)")


def _watch(args: argparse.Namespace) -> list[MetricsServer]:
    """The Prometheus endpoint, when asked for (the dashboard comes with ``progress``)."""
    if args.metrics_port is None:
        return []
    import conveyor as cv

    server = cv.MetricsServer(args.metrics_port)
    print(f"metrics: {server.url}", flush=True)
    return [server]


def _serve_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", help="sqlite:///PATH or postgresql://... (default: STORE.sqlite)")
    p.add_argument(
        "--start",
        help="file cameras: local time of their first frame, ISO (default: now, first start)",
    )
    p.add_argument("--window", type=int, default=60, help="seconds per results window (60)")
    _web_args(p)
    p.add_argument("--no-web", action="store_true", help="no web page")


def _web_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--web",
        default="127.0.0.1:8080",
        metavar="HOST:PORT",
        help="where the store's page listens (127.0.0.1:8080; another host needs a token)",
    )
    p.add_argument("--token", help="the page's token (default: $PEOPLEFLOW_TOKEN)")
    p.add_argument(
        "--calibrate",
        action="store_true",
        help="serve /calibrate: calibrate cameras by clicking (saving needs the token)",
    )


def _web_options(args: argparse.Namespace) -> WebOptions:
    from peopleflow.web import WebOptions

    host, _, port = str(args.web).rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--web: expected HOST:PORT such as 127.0.0.1:8080, got {args.web!r}")
    token = args.token or os.environ.get("PEOPLEFLOW_TOKEN") or None
    return WebOptions(host.strip("[]"), int(port), token)


def web_command(args: argparse.Namespace) -> int:
    from peopleflow.database import ResultsDB
    from peopleflow.period import only_store
    from peopleflow.web import create_app
    from peopleflow.webapi import StoreData

    options = _web_options(args)
    if args.calibrate and args.config is None:
        raise ConfigError("--calibrate needs --config: the store file the calibration goes in")
    db = ResultsDB.open(args.db)
    data = StoreData(db, args.store or only_store(db))
    calibration = args.config if args.calibrate else None
    _page_until_ctrl_c(create_app(data, options.token, calibration), options, db, "")
    return 0


def _page_until_ctrl_c(app: Starlette, options: WebOptions, db: ResultsDB, query: str) -> None:
    """Serve the page (on any free port if the one asked is taken) until Ctrl-C."""
    from peopleflow.web import WebError, WebServer

    page = WebServer(app, options)
    try:
        try:
            address = page.start()
        except WebError:  # the port is taken (another demo?): any free one will do
            page = WebServer(app, dataclasses.replace(options, port=0))
            address = page.start()
        print(f"\nthe store's page: {address}{query}  (Ctrl-C stops it)", flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        page.stop()
        db.close()


def serve_command(args: argparse.Namespace) -> int:
    from peopleflow.period import parse_time
    from peopleflow.serve import ServeOptions, serve

    if args.window < 1 or 3600 % args.window:
        raise ConfigError(f"--window: expected seconds that divide an hour, got {args.window}")
    options = ServeOptions(
        db=args.db,
        backend=args.backend,
        workers=args.workers,
        detector=args.detector,
        progress=not args.quiet,
        start=parse_time(args.start) if args.start else None,
        window=args.window,
        watch=_watch(args),
        web=None if args.no_web else _web_options(args),
        calibrate=args.calibrate,
    )
    summary = serve(args.config, options)
    how = "stopped" if summary.stopped else "cameras ended"
    print(
        f"peopleflow serve: {how} after {summary.elapsed:.0f} s: {summary.batches} batches, "
        f"{summary.people} people written to {summary.db}\n"
        f"report: peopleflow report --db {summary.db} --out DIR [--from ISO] [--to ISO]"
    )
    return 0


def report_command(args: argparse.Namespace) -> None:
    from peopleflow.database import ResultsDB
    from peopleflow.period import parse_time, read_period, write_period

    start = parse_time(args.start) if args.start else None
    end = parse_time(args.end) if args.end else None
    db = ResultsDB.open(args.db)
    try:
        period = read_period(db, args.store, start, end)
        write_period(db, period, args.out)
    finally:
        db.close()
    rep = period.report
    print(f"{period.store}: visitors {rep.visitors}")
    busiest = sorted(rep.zone_dwell.items(), key=lambda kv: -kv[1])
    print("dwell by zone: " + ", ".join(f"{z} {s:.0f} s" for z, s in busiest))
    print(f"maps, report.json and tables by hour in {args.out}/")


def generate(args: argparse.Namespace, out: Path | None) -> Path:
    from peopleflow.generate import StoreParams
    from peopleflow.generate import generate as make_store

    params = StoreParams(
        args.cameras,
        args.shoppers,
        args.minutes,
        args.fps,
        args.seed,
        args.layout,
        args.doors,
        args.resolution,
        args.mount_height,
        args.pitch,
        args.hfov,
        args.lookalikes,
        args.standing,
    )
    if params.cameras < 1 or params.shoppers < 1 or params.minutes <= 0 or params.fps <= 0:
        raise ConfigError("generate: cameras, shoppers, minutes and fps must be positive")
    try:
        params.size, params.layout_of()
    except ValueError as exc:
        raise ConfigError(f"generate: {exc}") from None
    default = StoreParams(params.cameras, params.shoppers, params.minutes, params.fps, params.seed)
    # A varied store's folder names its parameters' digest (the folder name stays short).
    digest = hashlib.sha1(json.dumps(dataclasses.asdict(params)).encode()).hexdigest()[:8]
    varied = "" if params == default else f"-v{digest}"
    out = out or CACHE / (
        f"store-c{params.cameras}-s{params.shoppers}-m{params.minutes:g}"
        f"-f{params.fps:g}-r{params.seed}{varied}"
    )
    return make_store(out, params)


def _run_store(args: argparse.Namespace, config: Path, backend: Backend) -> RunSummary:
    """``run_store`` with the options every running command takes (``_run_args``)."""
    from peopleflow.app import run_store

    return run_store(
        config,
        args.out,
        backend=backend,
        workers=args.workers,
        seconds=args.seconds,
        detector=args.detector,
        progress=not args.quiet,
        watch=_watch(args),
        trace=args.trace,
        realtime=args.realtime,
    )


def run_command(args: argparse.Namespace) -> None:
    _print_summary(_run_store(args, args.config, args.backend), args.out)


def real_command(args: argparse.Namespace) -> None:
    from peopleflow.vtest import find_clip, write_config

    clip = find_clip(CACHE / "vtest")
    config = write_config(args.out, clip, args.fps)
    print(f"store configuration: {config} (hand calibration: see peopleflow/vtest.py)")
    _print_summary(_run_store(args, config, args.backend), args.out)


def demo_command(args: argparse.Namespace) -> None:
    from peopleflow.app import run_store, score
    from peopleflow.config import load_config
    from peopleflow.generate import load_truth

    config = generate(args, args.data)
    cfg = load_config(config)
    print("\nstep 1/2: the whole store on the local backend")
    local = _run_store(args, config, "local")
    _print_summary(local, args.out)
    truth, _ = load_truth(config.parent / "truth.npz")
    result: dict[str, object] = dict(score(local.report, truth, cfg, args.seconds))
    result.update(
        {
            "realtime_factor": round(local.realtime_factor, 3),
            "frames_per_second": round(local.frames_per_second, 2),
            "visitors_estimated": local.report.visitors,
            "visitors_true": len(truth),
            "cameras": local.cameras,
            "video_seconds": round(local.video_seconds, 1),
        }
    )
    if args.inline_seconds > 0:
        print(
            f"\nstep 2/2: the first {args.inline_seconds:g} s on the inline backend "
            "(one process), for the speed-up"
        )
        t = time.perf_counter()
        inline = run_store(
            config,
            None,
            backend="inline",
            seconds=args.inline_seconds,
            detector=args.detector,
            progress=False,
        )
        print(
            f"  inline: {inline.frames_per_second:.2f} frames/s ({time.perf_counter() - t:.0f} s)"
        )
        result["inline_frames_per_second"] = round(inline.frames_per_second, 2)
        result["speedup_vs_inline"] = round(local.frames_per_second / inline.frames_per_second, 2)
    targets = {
        "heatmap_correlation": (">=", 0.9),
        "zone_dwell_error": ("<=", 0.15),
        "visitors_error": ("<=", 0.15),
        "transition_error": ("<=", 0.20),
        "speedup_vs_inline": (">=", 1.7),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "accuracy.json").write_text(json.dumps(result, indent=2))
    print("\naccuracy against the ground truth, and speed:")
    for key, value in result.items():
        mark = ""
        if key in targets and isinstance(value, float):
            op, goal = targets[key]
            ok = value >= goal if op == ">=" else value <= goal
            mark = f"   target {op} {goal}: {'met' if ok else 'NOT met'}"
        print(f"  {key:26s} {value}{mark}")
    database = _demo_database(args, local, cfg)
    result["database"] = dict(score(_period_report(database, cfg.name), truth, cfg, args.seconds))
    (args.out / "accuracy.json").write_text(json.dumps(result, indent=2))
    print(
        "the same run's report from the database (people final 2 min after last seen, per "
        f"minute windows): {result['database']}"
    )
    print(f"\nwritten: {args.out / 'accuracy.json'}")
    if not args.no_serve:
        _demo_page(args, database, cfg)


def _period_report(url: str, store: str) -> Report:
    from peopleflow.database import ResultsDB
    from peopleflow.period import read_period

    db = ResultsDB.open(url)
    try:
        return read_period(db, store).report
    finally:
        db.close()


def _demo_database(args: argparse.Namespace, local: RunSummary, cfg: StoreConfig) -> str:
    """The demo's run in a results database, as ``serve`` writes it (the page reads it)."""
    import datetime

    from peopleflow.serve import record_run

    path = (args.out / "peopleflow.sqlite").resolve()
    for old in path.parent.glob(path.name + "*"):
        old.unlink()
    today = datetime.datetime.now().replace(hour=9, minute=0, second=0, microsecond=0)
    assert local.coverage is not None
    url = f"sqlite:///{path}"
    record_run(local.instants, cfg, local.coverage, url, today.timestamp())
    print(f"results database (as peopleflow serve writes it): {url}")
    return url


def _demo_page(args: argparse.Namespace, url: str, cfg: StoreConfig) -> None:
    """The store's page over the demo's database, until Ctrl-C."""
    from peopleflow.database import ResultsDB
    from peopleflow.web import create_app
    from peopleflow.webapi import StoreData

    db = ResultsDB.open(url)
    options = _web_options(args)
    app = create_app(StoreData(db, cfg.name), options.token)
    _page_until_ctrl_c(app, options, db, "?period=today")


def _print_summary(summary: RunSummary, out: Path | None) -> None:
    rep = summary.report
    print(
        f"\n{summary.frames} frames from {summary.cameras} cameras in {summary.elapsed:.1f} s: "
        f"{summary.frames_per_second:.1f} frames/s, {summary.realtime_factor:.2f}x real time "
        f"({summary.backend} backend)"
    )
    if summary.dropped:
        print(
            f"  {summary.dropped} frames ({summary.dropped_share:.1%}) dropped: the pipeline was "
            "late for them (too many cameras for this machine?)"
        )
    for name, why in summary.failed_cameras.items():
        print(f"  camera {name} was left out: {why}")
    print(f"visitors: {rep.visitors}")
    if summary.identities is not None:
        print(f"identities: {summary.identities.describe()}")
    busiest = sorted(rep.zone_dwell.items(), key=lambda kv: -kv[1])
    print("dwell by zone: " + ", ".join(f"{z} {s:.0f} s" for z, s in busiest))
    flows = sorted(rep.transitions.items(), key=lambda kv: -kv[1])[:5]
    print("top flows: " + ", ".join(f"{a} -> {b} ({n})" for (a, b), n in flows))
    if out is not None:
        print(f"heat map, flow map, report.json and CSV tables in {out}/")


if __name__ == "__main__":
    sys.exit(main())
