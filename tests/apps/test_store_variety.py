"""The generator's variety (drawn layouts, doors, look-alikes, people standing still, camera
mounts and resolutions) and the detector input chosen per camera from it."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from peopleflow.config import Camera
from peopleflow.generate import StoreParams
from peopleflow.geometry import Homography
from peopleflow.layouts import aimed_pitch, cameras_for, default_layout, drawn_layout
from peopleflow.simulate import Crowd, default_plan, simulate
from peopleflow.sizing import SMALLEST_SHOWN, detector_inputs, input_for, person_heights


@pytest.mark.parametrize(("seed", "doors"), [(7, 1), (8, 2), (1003, 1), (1010, 2)])
def test_a_drawn_layout_has_its_doors_and_zones_that_do_not_overlap(seed: int, doors: int) -> None:
    layout = drawn_layout(seed, doors)
    plan = layout.plan
    assert 14 <= plan.width <= 30 and 10 <= plan.height <= 20
    assert len(plan.doors) == doors == len(layout.doors)
    names = plan.zone_names
    assert (
        "checkout" in names and "promotion" in names and any(n.startswith("aisle") for n in names)
    )
    for zone in plan.zones:
        lo, hi = zone.polygon.min(axis=0), zone.polygon.max(axis=0)
        assert lo.min() >= 0 and hi[0] <= plan.width and hi[1] <= plan.height, zone.name
    for a, b in itertools.combinations(plan.zones, 2):
        alo, ahi = a.polygon.min(axis=0), a.polygon.max(axis=0)
        blo, bhi = b.polygon.min(axis=0), b.polygon.max(axis=0)
        overlap = np.clip(np.minimum(ahi, bhi) - np.maximum(alo, blo), 0, None)
        assert overlap.prod() == 0, f"{a.name} and {b.name} overlap"
    for zone, point in zip(plan.doors, layout.doors, strict=True):
        assert zone.contains(point)[0], f"the door point {point} is not in {zone.name}"


def test_two_doors_are_both_used_and_a_crowd_varies_only_what_it_says() -> None:
    layout = drawn_layout(8, 2)
    plain = simulate(layout.plan, 60, 120.0, 2.0, 3, layout.doors)
    varied = simulate(
        layout.plan, 60, 120.0, 2.0, 3, layout.doors, Crowd(lookalikes=0.5, standing=3)
    )
    # Every door is a way in for someone.
    starts = np.array([s.track.xy[0] for s in plain if len(s.track.t)])
    for door in layout.doors:
        assert (np.linalg.norm(starts - door, axis=1) < 0.5).sum() >= 5
    # The crowd's traits come from a random stream of their own: the walks are the same.
    assert len(varied) == 63
    for a, b in zip(plain, varied, strict=False):
        assert np.array_equal(a.track.xy, b.track.xy)
    # At least a third in alike dark clothes ...
    dark = [s for s in varied if max(s.colours[0]) < 60 and max(s.colours[1]) < 60]
    assert len(dark) >= len(varied) / 3
    # ... and the three extra people stand still for a minute or more.
    for s in varied[60:]:
        steps = np.linalg.norm(np.diff(s.track.xy, axis=0), axis=1)
        still = np.convolve(steps < 0.2, np.ones(120), "valid")  # 60 s at 2 fps
        assert still.max() >= 115, f"shopper {s.id} never stood a minute"


def test_the_default_store_is_the_one_it_was() -> None:
    """Tuning figures were measured on it: the generator's variety must not change it."""
    params = StoreParams()
    layout = params.layout_of()
    assert layout.plan.to_json() == default_layout().plan.to_json() == default_plan().to_json()
    assert params.size == (640, 360)
    shoppers = simulate(layout.plan, 40, 120.0, 2.0, 0, layout.doors, Crowd())
    before = simulate(default_plan(), 40, 120.0, 2.0, 0)
    assert [(s.height, s.colours) for s in shoppers] == [(s.height, s.colours) for s in before]
    assert all(
        np.array_equal(a.track.xy, b.track.xy) for a, b in zip(shoppers, before, strict=True)
    )
    with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
        _ = StoreParams(resolution="720p").size
    with pytest.raises(ValueError, match="one door"):
        StoreParams(doors=2).layout_of()


def _camera(pinhole, plan) -> Camera:  # type: ignore[no-untyped-def]
    pairs = pinhole.calibration(plan)
    return Camera(pinhole.name, "-", 2.0, pairs, Homography.fit(pairs[:, :2], pairs[:, 2:]))


@pytest.mark.parametrize(
    ("size", "height", "distance"),
    [((640, 360), 3.4, 6.0), ((1920, 1080), 5.5, 9.0), ((1280, 720), 2.6, 7.0)],
)
def test_how_tall_people_stand_is_read_from_the_calibration(
    size: tuple[int, int], height: float, distance: float
) -> None:
    """The sizing estimate against the renderer's own projection of a 1.7 m person."""
    layout = drawn_layout(21, 1)
    plan = layout.plan
    for pinhole in cameras_for(plan, 3, size, height, aimed_pitch(height, distance), 75.0):
        est = person_heights(_camera(pinhole, plan), size, plan)
        xs, ys = np.meshgrid(
            np.arange(0.125, plan.width, 0.25), np.arange(0.125, plan.height, 0.25)
        )
        floor = np.c_[xs.ravel(), ys.ravel()]
        feet, depth = pinhole.project(np.c_[floor, np.zeros(len(floor))])
        heads, _ = pinhole.project(np.c_[floor, np.full(len(floor), 1.7)])
        w, h = size
        across = (depth > 0.5) & (feet[:, 0] >= 0) & (feet[:, 0] < w)
        # the floor shown: the feet in the frame, or below it with the head in it
        head_in = (heads[:, 0] >= 0) & (heads[:, 0] < w) & (heads[:, 1] > 3) & (heads[:, 1] < h)
        seen = across & (feet[:, 1] >= 0) & ((feet[:, 1] < h) | head_in)
        true = feet[seen, 1] - heads[seen, 1]
        # (where the head is in the frame comes from the camera the calibration implies, not
        # the renderer's own: a few points along the frame's edges may differ)
        assert abs(len(est) - int(seen.sum())) <= 0.02 * seen.sum(), (len(est), seen.sum())
        # The far edge, which sets the input, within 10% (exact where the fit is good).
        assert abs(est.min() - true.min()) < 0.1 * true.min(), (
            pinhole.name,
            est.min(),
            true.min(),
        )
        assert np.median(est) >= 0.9 * np.median(true)


def test_each_camera_gets_the_input_its_smallest_people_need() -> None:
    # The default store's far people (65 px) are made 75 px tall: the frame is enlarged.
    assert input_for((640, 360), 65.0) == (416, 768)
    # People under 50 px are not asked for; the frame is enlarged at most to the cap.
    assert input_for((640, 360), 20.0) == input_for((640, 360), SMALLEST_SHOWN) == (544, 960)
    assert input_for((1920, 1080), 250.0) == (352, 576)
    # A store that wants speed asks for 50 px: nothing is enlarged.
    assert input_for((640, 360), 65.0, 50.0) == (288, 512)
    assert input_for((640, 360), 20.0, 50.0) == (384, 640)
    small, large = input_for((1920, 1080), 100.0), input_for((1920, 1080), 200.0)
    assert small[0] > large[0] and small[1] > large[1]
    assert all(v % 32 == 0 for v in small + large)
    plan = default_plan()
    cams = cameras_for(plan, 3)
    inputs = detector_inputs(tuple(_camera(c, plan) for c in cams), {"cam1": (640, 360)}, plan)
    assert inputs == {"cam1": (448, 768)}  # only the cameras whose frame size is known


def test_the_detector_runs_each_frame_at_its_own_input() -> None:
    from peopleflow.detect import DetectorError, YoloDetector

    try:
        det = YoloDetector((288, 512))
    except DetectorError as exc:  # the Makefile installs the model; say why if it is not there
        pytest.skip(str(exc))
    rng = np.random.default_rng(0)
    frames = [
        rng.integers(0, 255, (360, 640, 3), np.uint8),
        rng.integers(0, 255, (720, 1280, 3), np.uint8),
    ]
    mixed = det(frames, [(288, 512), (416, 736)])
    alone = det([frames[1]], [(416, 736)])
    assert len(mixed) == 2
    assert np.allclose(mixed[1][0], alone[0][0], atol=0.5)
    assert det.letterbox(frames[1:], (416, 736))[0].shape == (1, 416, 736, 3)


def test_generate_takes_the_variety_from_the_command_line_and_explains_bad_values(
    tmp_path,
    capsys,  # type: ignore[no-untyped-def]
) -> None:
    from peopleflow.cli import main

    assert main(["generate", "--doors", "2", "--out", str(tmp_path / "a")]) == 2
    assert "the default store (layout 0) has one door" in capsys.readouterr().err
    assert main(["generate", "--resolution", "1080p", "--out", str(tmp_path / "b")]) == 2
    assert "expected WIDTHxHEIGHT" in capsys.readouterr().err
    args = ["--layout", "5", "--doors", "2", "--resolution", "320x180", "--cameras", "2"]
    assert (
        main(
            [
                "generate",
                *args,
                "--shoppers",
                "4",
                "--minutes",
                "0.05",
                "--out",
                str(tmp_path / "c"),
            ]
        )
        == 0
    )
    text = (tmp_path / "c" / "store.toml").read_text()
    assert text.count("door = true") == 2 and "[[cameras]]" in text
    from peopleflow.config import load_config

    cfg = load_config(tmp_path / "c" / "store.toml")
    assert (cfg.plan.width, cfg.plan.height) == (
        drawn_layout(5, 2).plan.width,
        drawn_layout(5, 2).plan.height,
    )
    assert max(cfg.cameras[0].calibration[:, 0]) <= 320
