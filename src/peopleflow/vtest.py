"""A real clip: OpenCV's pedestrian sample ``vtest.avi``, with a hand-calibrated floor plan.

The clip (one elevated camera over a campus walkway, 768x576, 10 fps, 795 frames) ships inside
the source distribution of ``opencv-python-headless``, not in its wheel. ``find_clip`` takes it
from the cache folder, or extracts it from that source archive, which it gets with ``pip
download`` from the package index pip is configured with (done once; nothing else is fetched).

The calibration is by hand, from the scene itself. People here are about 1.7 m tall. They
measure ~85 px at image row 305 and ~70 px at row 230, so the image is ~2 cm/px at row 300.
Extrapolated, that is ~1.4 cm/px at the bottom row and ~3.2 cm/px at row 130. Those widths
give the four corner pairs below: a trapezoid 10.8 m wide near the camera and 24.6 m far from
it, 17.7 m deep, with the ground foreshortened by ~1.8 (a camera tilted ~35 degrees down).
Expect metres, not centimetres: enough for where people walk and linger, not for
surveying. The zones are drawn in the image (the walkway, the lawn, the road and car park
beyond) and mapped to the floor through the same homography.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from peopleflow.sources import SourceError

SDIST = "opencv-python-headless==4.14.0.94"
MEMBER = "opencv/samples/data/vtest.avi"
FLOOR = (25.0, 19.0)  # metres: the plan's width and depth
DETECTOR_INPUT = (384, 512)  # (H, W): people of 70-85 px keep ~50 px
# The stores' default score (0.2) was chosen on the synthetic stores; here it also takes the
# bag on the lawn for a person (twice), a static 80 s identity that doubles the lawn's dwell.
DETECTOR_SCORE = 0.35
# Image pixel (u, v) -> floor metres (x, y): the corners of the ground seen from row 130 down.
CALIBRATION = [
    (0.0, 576.0, 6.9, 0.7),
    (768.0, 576.0, 17.7, 0.7),
    (0.0, 130.0, 0.0, 18.4),
    (768.0, 130.0, 24.6, 18.4),
]
ZONES_IN_IMAGE = {  # polygons in the first frame's pixels
    "walkway": [(0, 195), (420, 205), (768, 300), (768, 470), (560, 420), (330, 330), (0, 245)],
    "lawn": [(0, 245), (330, 330), (560, 420), (768, 470), (768, 576), (0, 576)],
    "road and car park": [(0, 130), (768, 130), (768, 300), (420, 205), (0, 195)],
}


def find_clip(cache: Path) -> Path:
    """``cache/vtest.avi``, extracted from the opencv-python-headless source archive once."""
    clip = cache / "vtest.avi"
    if clip.is_file():
        return clip
    cache.mkdir(parents=True, exist_ok=True)
    print(f"getting vtest.avi from the {SDIST} source archive (once) ...", flush=True)
    with tempfile.TemporaryDirectory(prefix="peopleflow-sdist-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
        cmd += ["--no-binary", "opencv-python-headless", SDIST, "-d", tmp]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        archives = list(Path(tmp).glob("*.tar.gz"))
        if done.returncode != 0 or not archives:
            raise SourceError(
                f"could not download the {SDIST} source archive to get vtest.avi "
                f"({done.stderr.strip().splitlines()[-1:] or 'no archive'}); put the clip at "
                f"{clip} by hand"
            )
        with tarfile.open(archives[0]) as tar:
            member = next((m for m in tar.getmembers() if m.name.endswith(MEMBER)), None)
            if member is None:
                raise SourceError(f"{archives[0].name} has no {MEMBER}")
            source = tar.extractfile(member)
            assert source is not None
            partial = clip.with_suffix(".part")
            partial.write_bytes(source.read())
            partial.rename(clip)
    return clip


def floor_zones() -> dict[str, np.ndarray]:
    """The zones on the floor plan: the image polygons through the calibration."""
    from peopleflow.geometry import Homography

    calib = np.array(CALIBRATION)
    h = Homography.fit(calib[:, :2], calib[:, 2:])
    width, height = FLOOR
    out = {}
    for name, poly in ZONES_IN_IMAGE.items():
        xy = h.to_floor(np.array(poly, np.float64))
        out[name] = np.clip(xy, [0, 0], [width, height])
    return out


def write_config(folder: Path, clip: Path, fps: float) -> Path:
    """The store configuration of the clip, with its hand calibration and zones."""
    width, height = FLOOR
    lines = [
        "# OpenCV's vtest.avi with a hand-calibrated floor plan (see peopleflow/vtest.py).",
        "[store]",
        'name = "vtest.avi (OpenCV sample)"',
        f"floor = {{ width = {width}, height = {height} }}",
        "# The walkers' colour histograms are too alike (dark clothes, 70-85 px tall) for the",
        "# report to link identities again over the run: relinked, successive walkers merge.",
        'identities = "live"',
        "",
        "[detector]",
        f"input = [{DETECTOR_INPUT[0]}, {DETECTOR_INPUT[1]}]",
        f"score = {DETECTOR_SCORE}",
        "",
    ]
    for name, poly in floor_zones().items():
        points = ", ".join(f"[{x:.2f}, {y:.2f}]" for x, y in poly)
        lines += ["[[zones]]", f'name = "{name}"', f"polygon = [{points}]", ""]
    rows = ",\n".join(f"  [{u}, {v}, {x}, {y}]" for u, v, x, y in CALIBRATION)
    lines += [
        "[[cameras]]",
        'name = "vtest"',
        f'source = "{clip.resolve()}"',
        f"fps = {fps:g}",
        f"calibration = [\n{rows}\n]",
        "",
    ]
    path = folder / "store.toml"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path
