"""Generate the synthetic store: videos from N cameras, their calibration, and ground truth.

``generate(out)`` writes::

    out/store.toml         the store configuration (zones, cameras, calibration) to run on
    out/videos/camK.mp4    one video per camera
    out/truth.npz          every shopper's floor track, and every camera frame's person boxes
    out/manifest.json      the parameters; a second call with the same ones reuses the files

Cameras render in parallel, one process each (up to the machine's cores).
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from peopleflow.analytics import FloorTrack
from peopleflow.config import FloorPlan
from peopleflow.layouts import Layout, cameras_for, default_layout, drawn_layout
from peopleflow.render import PinholeCamera, Renderer
from peopleflow.simulate import Crowd, Shopper, simulate

STRIDE = 1.3  # metres per walking cycle (two steps)
VERSION = 6  # bump when the renderer's output changes: cached stores are made again


@dataclass(frozen=True)
class StoreParams:
    """What to generate. The defaults past ``seed`` make the default store (the one the
    thresholds were tuned on); the others vary it (``bench_accuracy`` draws them)."""

    cameras: int = 8
    shoppers: int = 40
    minutes: float = 2.0
    fps: float = 2.0
    seed: int = 0
    layout: int = 0  # 0: the default store; any other: the seed of a drawn layout
    doors: int = 1  # a drawn layout's: 1 or 2
    resolution: str = "640x360"  # the cameras' frame size, WIDTHxHEIGHT
    mount_height: float = 3.4  # metres
    pitch: float = 30.0  # degrees below the horizon
    hfov: float = 72.0  # degrees
    lookalikes: float = 0.0  # the share of shoppers in alike dark clothes
    standing: int = 0  # more people who stand 1-3 minutes

    @property
    def size(self) -> tuple[int, int]:
        """The cameras' frame size (width, height)."""
        try:
            w, h = (int(x) for x in self.resolution.lower().split("x"))
        except ValueError:
            raise ValueError(f"resolution {self.resolution!r}: expected WIDTHxHEIGHT") from None
        return w, h

    def layout_of(self) -> Layout:
        if self.layout == 0:
            if self.doors != 1:
                raise ValueError("the default store (layout 0) has one door")
            return default_layout()
        return drawn_layout(self.layout, self.doors)


def generate(
    out: str | Path,
    params: StoreParams | None = None,
    progress: Callable[[str], None] | None = print,
) -> Path:
    """Write the synthetic store under ``out`` (or reuse it) and return its ``store.toml``."""
    params = params or StoreParams()
    out = Path(out)
    manifest = out / "manifest.json"
    wanted = {"version": VERSION, **asdict(params)}
    if (
        manifest.is_file()
        # A manifest written before a parameter existed had that parameter's default.
        and {**asdict(StoreParams()), **json.loads(manifest.read_text())} == wanted
        and (out / "store.toml").is_file()
    ):
        if progress:
            progress(
                f"synthetic store: reusing {out} ({params.cameras} cameras, "
                f"{params.shoppers} shoppers, {params.minutes:g} min)"
            )
        return out / "store.toml"
    (out / "videos").mkdir(parents=True, exist_ok=True)
    manifest.unlink(missing_ok=True)
    layout = params.layout_of()
    plan = layout.plan
    shoppers = simulate(
        plan,
        params.shoppers,
        params.minutes * 60,
        params.fps,
        params.seed,
        layout.doors,
        Crowd(params.lookalikes, params.standing),
    )
    cameras = cameras_for(
        plan, params.cameras, params.size, params.mount_height, params.pitch, params.hfov
    )
    frames = int(round(params.minutes * 60 * params.fps))
    started = time.perf_counter()
    if progress:
        progress(
            f"synthetic store: rendering {params.cameras} cameras x {frames} frames "
            f"({params.shoppers} shoppers) into {out} ..."
        )
    workers = max(1, min(len(cameras), os.cpu_count() or 1))
    boxes = {}
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        jobs = {
            cam.name: pool.submit(
                _render_camera,
                cam,
                plan,
                shoppers,
                frames,
                params.fps,
                out / "videos" / f"{cam.name}.mp4",
                params.seed + k,
            )
            for k, cam in enumerate(cameras)
        }
        for name, job in jobs.items():
            boxes[name] = job.result()
            if progress:
                progress(f"  {name}: {frames} frames ({time.perf_counter() - started:.0f} s)")
    _write_truth(out / "truth.npz", shoppers, boxes)
    (out / "store.toml").write_text(store_toml(plan, cameras, params.fps))
    manifest.write_text(json.dumps(wanted))
    return out / "store.toml"


def people_at(
    shoppers: list[Shopper], t: float
) -> list[tuple[Shopper, np.ndarray, np.ndarray, float]]:
    """Each shopper in the store at ``t``: (shopper, floor xy, heading unit vector or 0, phase)."""
    out = []
    for s in shoppers:
        ts = s.track.t
        if len(ts) == 0 or t < ts[0] - 1e-6 or t > ts[-1] + 1e-6:
            continue
        k = int(np.clip(np.searchsorted(ts, t - 1e-6), 0, len(ts) - 1))
        nxt = min(k + 1, len(ts) - 1)
        step = s.track.xy[nxt] - s.track.xy[k]
        speed = float(np.linalg.norm(step))
        heading = step / speed if speed > 0.05 else np.zeros(2)
        walked = float(np.sum(np.linalg.norm(np.diff(s.track.xy[: k + 1], axis=0), axis=1)))
        out.append((s, s.track.xy[k], heading, 2 * math.pi * walked / STRIDE))
    return out


def _render_camera(
    cam: PinholeCamera,
    plan: FloorPlan,
    shoppers: list[Shopper],
    frames: int,
    fps: float,
    path: Path,
    seed: int,
) -> np.ndarray:
    import cv2

    cv2.setNumThreads(1)
    renderer = Renderer(cam, plan, seed)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, cam.size)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path} (mp4v): is FFmpeg in this OpenCV build?")
    rows: list[list[float]] = []
    try:
        for k in range(frames):
            image, truths = renderer.frame(people_at(shoppers, k / fps))
            writer.write(image)
            rows.extend([k, t.person, *t.box, t.visible] for t in truths)
    finally:
        writer.release()
    return np.asarray(rows, np.float32).reshape(-1, 7)


def _write_truth(path: Path, shoppers: list[Shopper], boxes: dict[str, np.ndarray]) -> None:
    tracks = (
        np.concatenate(
            [np.c_[np.full(len(s.track.t), s.id), s.track.t, s.track.xy] for s in shoppers]
        )
        if shoppers
        else np.zeros((0, 4))
    )
    arrays: dict[str, np.ndarray] = {"tracks": tracks}
    arrays.update({f"boxes_{k}": v for k, v in boxes.items()})
    np.savez_compressed(path, **arrays)  # type: ignore[arg-type]


def load_truth(path: str | Path) -> tuple[list[FloorTrack], dict[str, np.ndarray]]:
    """Ground truth: the shoppers' floor tracks, and per camera the boxes
    ``(frame, person, x0, y0, x1, y1, visible fraction)``."""
    data = np.load(path)
    rows = data["tracks"]
    tracks = [
        FloorTrack(int(i), rows[rows[:, 0] == i, 1], rows[rows[:, 0] == i, 2:4])
        for i in np.unique(rows[:, 0])
    ]
    boxes = {k.removeprefix("boxes_"): data[k] for k in data.files if k.startswith("boxes_")}
    return tracks, boxes


def store_toml(plan: FloorPlan, cameras: list[PinholeCamera], fps: float) -> str:
    """The store configuration file for the rendered cameras."""
    lines = [
        "# The synthetic store, written by `peopleflow generate`.",
        "[store]",
        'name = "synthetic store"',
        f"floor = {{ width = {plan.width}, height = {plan.height} }}",
        "",
    ]
    for zone in plan.zones:
        pts = ", ".join(f"[{x:g}, {y:g}]" for x, y in zone.polygon)
        lines += ["[[zones]]", f'name = "{zone.name}"', f"polygon = [{pts}]"]
        lines += ["door = true", ""] if zone.door else [""]
    for cam in cameras:
        pairs = ",\n  ".join(
            f"[{u:.2f}, {v:.2f}, {x:.3f}, {y:.3f}]" for u, v, x, y in cam.calibration(plan)
        )
        lines += [
            "[[cameras]]",
            f'name = "{cam.name}"',
            f'source = "videos/{cam.name}.mp4"',
            f"fps = {fps:g}",
            f"calibration = [\n  {pairs}\n]",
            "",
        ]
    return "\n".join(lines)
