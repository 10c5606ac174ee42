"""Run a store through the pipeline and write what the retailer reads.

``run_store(config, out)`` runs the conveyor graph of ``peopleflow.pipeline`` over the store's
cameras and writes, under ``out``::

    heatmap.png      dwell time on the floor plan
    flowmap.png      zone-to-zone flows
    report.json      visitors, zone dwell (total and by hour), visits, transitions, run speed
    zones.csv        zone, dwell seconds, visits, share of its floor in some camera's view
    transitions.csv  from, to, count
    tracks.csv       identity, seconds, x, y (floor metres): no image of anyone is kept

``score(report, truth)`` compares a report with the synthetic store's ground truth.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import conveyor as cv
from peopleflow import sizing
from peopleflow.analytics import FloorTrack, Report, accuracy, analyse
from peopleflow.config import Camera, ConfigError, StoreConfig, Zone, load_config
from peopleflow.coverage import Coverage
from peopleflow.evidence import MIN_TRACK_SECONDS, Verdict
from peopleflow.outputs import write_csv, write_report
from peopleflow.people import (
    FILL_GAPS_SECONDS,
    STANDING_GAP_SECONDS,
    Observations,
    People,
    frame_step,
    kept_tracks,
    people_of,
)
from peopleflow.sources import CameraReader, SourceError
from peopleflow.track import reid_window

log = logging.getLogger("peopleflow")


@dataclass
class RunSummary:
    backend: str
    cameras: int
    frames: int
    video_seconds: float  # per camera
    elapsed: float  # wall seconds of the run
    report: Report
    tracks: list[FloorTrack]
    failed_cameras: dict[str, str] = field(default_factory=dict)
    identities: Verdict | None = None  # what the noise filter kept and dropped
    restarts: int = 0  # pipeline processes that died and were started again
    instants: list[Any] = field(default_factory=list, repr=False)  # the pipeline's outputs
    coverage: Coverage | None = field(default=None, repr=False)
    dropped: int = 0  # frames live (or realtime) cameras let go because the pipeline was late

    @property
    def dropped_share(self) -> float:
        """The share of the cameras' frames let go (of those sent and those let go)."""
        return self.dropped / (self.frames + self.dropped) if self.frames + self.dropped else 0.0

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def realtime_factor(self) -> float:
        """Seconds of video processed per wall second, over all cameras."""
        return self.video_seconds * self.cameras / self.elapsed if self.elapsed > 0 else 0.0

    def speed(self) -> dict[str, float]:
        return {
            "frames": self.frames,
            "wall_seconds": round(self.elapsed, 2),
            "frames_per_second": round(self.frames_per_second, 2),
            "realtime_factor": round(self.realtime_factor, 3),
        }


@dataclass(frozen=True)
class Prepared:
    """A store's run, ready to start: its cameras, where they look, what watches it."""

    cfg: StoreConfig
    specs: list[cv.CameraSpec]  # the cameras that opened, with their frame shapes
    failed: dict[str, str]  # the cameras that did not, and why
    coverage: Coverage
    watch: list[Callable[[cv.Stats], Any]]
    graph: cv.Graph  # the pipeline, its tasks bound to this run's settings
    settings: Any = None  # those settings (``pipeline.RunSettings``)


def prepare(
    config: str | Path,
    seconds: float | None = None,
    detector: str = "auto",
    progress: bool = True,
    watch: Sequence[Callable[[cv.Stats], Any]] = (),
    start_seconds: float = 0.0,
    clock_origin: float | None = None,
    retries: int | None = 5,
    realtime: bool = False,
) -> Prepared:
    """Open the store's cameras and hand the pipeline its settings (``run_store`` and the live
    service both start this way). ``start_seconds``: file cameras begin there (a resumed
    service); ``clock_origin``: live cameras time their frames from this epoch time;
    ``retries``: reconnections a live camera tries in a row before it is given up (None:
    never given up); ``realtime``: file cameras are read at camera pace, the frames the
    pipeline is late for dropped, as live cameras' would be."""
    from peopleflow import pipeline

    cfg = load_config(config)
    specs, failed, total = probe(cfg, seconds)
    if not specs:
        raise SourceError("no camera could be opened: " + "; ".join(failed.values()))
    if cfg.detector.precision == "int8":
        quantized_first(detector, progress)
    watch = list(watch)
    coverage = coverage_of(cfg, specs)
    lines = False  # the pipeline's own progress lines: not while a live dashboard redraws
    if progress:
        dashboard = cv.Dashboard(cameras=len(specs), title="peopleflow", log_every=15.0)
        watch.append(dashboard)
        lines = not dashboard.console.is_terminal
    settings = pipeline.RunSettings(
        cfg,
        detector=detector,
        seconds=seconds,
        progress=lines,
        total_seconds=total or 0.0,
        skip=tuple(sorted(failed)),
        reid_window=reid_window(coverage.share_seen()),
        start_seconds=start_seconds,
        clock_origin=clock_origin,
        retries=retries,
        realtime=realtime,
        detector_inputs=tuple(sorted(detector_inputs(cfg, specs).items())),
    )
    return Prepared(cfg, specs, failed, coverage, watch, pipeline.graph_for(settings), settings)


def run_store(
    config: str | Path,
    out: str | Path | None = None,
    backend: cv.Backend = "local",
    workers: int | None = None,
    seconds: float | None = None,
    detector: str = "auto",
    progress: bool = True,
    watch: Sequence[Callable[[cv.Stats], Any]] = (),
    trace: str | Path | None = None,
    realtime: bool = False,
) -> RunSummary:
    """Run the store's cameras through the pipeline; write the outputs under ``out`` if given.

    ``progress``: conveyor's dashboard (redrawn in a terminal, else a line every 15 s with the
    pipeline's own lines). ``watch`` and ``trace`` go to ``conveyor.run``. ``realtime``: read
    files at camera pace, dropping what the pipeline is late for (``prepare``).
    """
    run = prepare(config, seconds, detector, progress, watch, realtime=realtime)
    cfg, specs, failed, coverage = run.cfg, run.specs, run.failed, run.coverage
    if progress:
        print(
            f"peopleflow: {len(specs)} cameras, {backend} backend"
            + (f", first {seconds:g} s" if seconds else ""),
            flush=True,
        )
    started = time.perf_counter()
    result = cv.run(
        run.graph,
        backend=backend,
        workers=workers,
        cameras=specs,
        collect=["Associate"],
        watch=run.watch,
        trace=trace,
    )
    if result.trace is not None and progress:
        print(f"trace: {result.trace} (conveyor report {result.trace} --out DIR draws it)")
    elapsed = time.perf_counter() - started
    instants = result.outputs["Associate"]
    people, report = store_report(instants, cfg, coverage)
    frames = sum(int(i.cameras) for i in instants)
    video = max((float(i.ts) for i in instants), default=0.0) + 1.0 / cfg.cameras[0].fps
    summary = RunSummary(
        backend,
        len(specs),
        frames,
        video,
        elapsed,
        report,
        people.tracks,
        failed,
        people.verdict,
        len(result.restarts),
        instants,
        coverage,
        result.stats.dropped if result.stats is not None else 0,
    )
    if out is not None:
        write_outputs(summary, cfg, Path(out))
    return summary


IN_VIEW_WARNING = 0.9  # a zone with less of its floor in some camera's view is warned about


def coverage_of(cfg: StoreConfig, specs: Sequence[cv.CameraSpec]) -> Coverage:
    """Where the store's cameras that opened (``specs``: their frame shapes) see the floor;
    zones mostly out of view are logged (their dwell, visits and flows count only what is
    seen: no report can say what no camera shows)."""
    coverage = Coverage.of(cfg.plan, cfg.cameras, frame_sizes(specs))
    warn_zones_out_of_view(coverage.zone_shares(cfg.plan))
    return coverage


def warn_zones_out_of_view(shares: dict[str, float]) -> None:
    for zone, share in shares.items():
        if share < IN_VIEW_WARNING:
            log.warning(
                "zone %s: only %.0f%% of its floor is in some camera's view; its dwell, visits "
                "and flows count only that part (move or add a camera to see it)",
                zone,
                100 * share,
            )


def quantized_first(detector: str, progress: bool) -> None:
    """The detector in 8-bit integers is made once per machine: made here, before the
    pipelines start, so that they neither stall unexplained nor each make it at the same time,
    and said where ``progress`` (``detect.quantized_for``)."""
    from peopleflow import detect

    say = (lambda line: print(f"peopleflow: {line}", flush=True)) if progress else None
    detect.quantized_for(detector, say)


def detector_inputs(cfg: StoreConfig, specs: Sequence[cv.CameraSpec]) -> dict[str, tuple[int, int]]:
    """Each opened camera's detector input (height, width), from how small people appear in
    it (``peopleflow.sizing``); logged, since it sets the run's cost."""
    inputs = sizing.detector_inputs(
        cfg.cameras, frame_sizes(specs), cfg.plan, cfg.detector.person_pixels
    )
    for name, (h, w) in sorted(inputs.items()):
        log.info("camera %s: detector input %dx%d", name, h, w)
    return inputs


def frame_sizes(specs: Sequence[cv.CameraSpec]) -> dict[str, tuple[int, int]]:
    """Each camera's frame size (width, height)."""
    return {s.name: (int(s.shape[1]), int(s.shape[0])) for s in specs}


def store_report(
    instants: list[Any], cfg: StoreConfig, coverage: Coverage | None = None
) -> tuple[People, Report]:
    """The report of a run's per-instant outputs, with the store's identities and visits.
    ``coverage``: where the cameras see the floor (default: one camera everywhere)."""
    people = floor_tracks(
        instants,
        coverage or Coverage.everywhere(cfg.plan),
        doors=cfg.plan.doors,
        relinked=cfg.identities == "relinked",
    )
    report = analyse(people.tracks, cfg.plan, min_visit=cfg.min_visit)
    report.identities = people.verdict.to_json()
    if coverage is not None:
        report.zones_in_view = coverage.zone_shares(cfg.plan)
    if people.verdict.dropped > people.verdict.made / 2:
        log.warning(
            "the report drops more than half of the identities the pipeline made: %s. "
            "Check the calibration (is everyone on the floor plan?) and the [detector] score.",
            people.verdict.describe(),
        )
    return people, report


def floor_tracks(
    instants: list[Any],
    coverage: Coverage,
    min_seconds: float = MIN_TRACK_SECONDS,
    fill_gaps: float = FILL_GAPS_SECONDS,
    doors: tuple[Zone, ...] = (),
    relinked: bool = True,
    fill_standing: float = STANDING_GAP_SECONDS,
) -> People:
    """Per-identity floor tracks from the pipeline's per-instant outputs, noise dropped.

    With ``relinked`` (and looks in the instants), identities are decided again over the whole
    run (``peopleflow.relink``; ``doors``: the zones people come and go by); otherwise they
    are the live tracker's. Identities shorter than ``min_seconds``, or seen too seldom for
    where the cameras look (``coverage``; ``peopleflow.evidence``), are dropped; hidden spells
    up to ``fill_gaps`` seconds are filled in, and up to ``fill_standing`` seconds where the
    person stood still (``peopleflow.people``)."""
    obs = Observations.of(instants)
    people = people_of(obs, relinked, doors)
    return kept_tracks(
        people, frame_step(obs.t), coverage, min_seconds, fill_gaps, fill_standing=fill_standing
    )


def write_outputs(summary: RunSummary, cfg: StoreConfig, out: Path) -> dict[str, Path]:
    extra = {
        "speed": summary.speed(),
        "backend": summary.backend,
        "failed_cameras": summary.failed_cameras,
    }
    paths = write_report(summary.report, cfg.plan, cfg.name, out, extra)
    paths["tracks"] = write_csv(
        out / "tracks.csv",
        ["identity", "seconds", "x_m", "y_m"],
        (
            [tr.id, round(float(t), 3), round(float(x), 3), round(float(y), 3)]
            for tr in summary.tracks
            for t, (x, y) in zip(tr.t, tr.xy, strict=True)
        ),
    )
    return paths


def score(
    report: Report, truth: list[FloorTrack], cfg: StoreConfig, seconds: float | None = None
) -> dict[str, float]:
    """Accuracy of ``report`` against the true tracks (cut to the first ``seconds``)."""
    if seconds is not None:
        truth = [FloorTrack(t.id, t.t[t.t < seconds], t.xy[t.t < seconds]) for t in truth]
        truth = [t for t in truth if len(t.t)]
    return accuracy(report, analyse(truth, cfg.plan, min_visit=cfg.min_visit))


def check_calibration_fits(cam: Camera, width: int, height: int) -> None:
    """A calibration made for another resolution (640x360 pixels on a 1280x720 stream) maps
    every pixel to the wrong place: its pixels must lie in the camera's frame."""
    u, v = cam.calibration[:, 0], cam.calibration[:, 1]
    outside = (u < -0.5) | (u > width + 0.5) | (v < -0.5) | (v > height + 0.5)
    if outside.any():
        k = int(outside.argmax())
        raise ConfigError(
            f"camera {cam.name}: calibration pixel ({u[k]:g}, {v[k]:g}) lies outside its "
            f"{width}x{height} frame: was the calibration made at another resolution?"
        )


def probe(
    cfg: StoreConfig, limit: float | None
) -> tuple[list[cv.CameraSpec], dict[str, str], float | None]:
    """Each camera's frame shape (the failures, by name), and the seconds of video to read:
    the longest file, cut to ``limit`` (just ``limit`` when a camera is a live stream)."""
    specs: list[cv.CameraSpec] = []
    failed: dict[str, str] = {}
    lengths: list[float | None] = []
    for cam in cfg.cameras:
        reader = CameraReader(cam.name, cam.source, cam.fps)
        try:
            h, w = reader.probe()
        except SourceError as exc:
            if cam.is_stream and cam.size is not None:
                log.warning("camera %s: %s (retried while the others go on)", cam.name, exc)
                specs.append(cv.CameraSpec(cam.name, (cam.size[1], cam.size[0], 3), slots=8))
                lengths.append(None)
                continue
            log.error("camera %s: %s (the other cameras go on)", cam.name, exc)
            failed[cam.name] = str(exc)
            continue
        check_calibration_fits(cam, w, h)
        if cam.size is not None and cam.size != (w, h):
            raise ConfigError(
                f"camera {cam.name}: its frames are {w}x{h}, its configuration says size = "
                f"[{cam.size[0]}, {cam.size[1]}]"
            )
        specs.append(cv.CameraSpec(cam.name, (h, w, 3), slots=8))
        lengths.append(reader.length)
    if None in lengths:
        return specs, failed, limit
    longest = max((x for x in lengths if x is not None), default=0.0)
    return specs, failed, min(longest, limit) if limit else longest
