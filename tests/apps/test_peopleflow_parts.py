"""The people-flow application's pure parts: geometry, configuration, simulation, analytics."""

import textwrap
from pathlib import Path

import numpy as np
import pytest

from peopleflow import ConfigError, FloorTrack, Homography, accuracy, analyse, load_config
from peopleflow.config import DetectorSettings
from peopleflow.geometry import HomographyError
from peopleflow.pipeline import DetectorChoice, RunSettings
from peopleflow.simulate import default_plan, simulate

# a plausible camera: floor metres -> pixels of an elevated view looking down the store
FLOOR_TO_IMAGE = np.array([[120.0, -35.0, 300.0], [4.0, -60.0, 900.0], [0.002, 0.045, 1.0]])


def _pixels(floor: np.ndarray) -> np.ndarray:
    return Homography(FLOOR_TO_IMAGE).to_floor(floor)  # the matrix maps floor -> image


def test_a_homography_fitted_to_point_pairs_round_trips() -> None:
    floor = np.array([[1, 1], [9, 1], [9, 8], [1, 8], [5, 4], [2.5, 5.2]], dtype=float)
    image = _pixels(floor)
    h = Homography.fit(image, floor)
    assert h.error(image, floor) < 1e-6
    rng = np.random.default_rng(0)
    pts = rng.uniform([0, 0], [10, 9], (100, 2))
    assert np.allclose(h.to_floor(_pixels(pts)), pts, atol=1e-6)
    assert np.allclose(h.to_floor(h.to_image(pts)), pts, atol=1e-9)


def test_the_homographys_jacobian_is_how_the_floor_point_moves_per_pixel() -> None:
    h = Homography(np.linalg.inv(FLOOR_TO_IMAGE))
    pixels = _pixels(np.array([[1.0, 1.0], [5.0, 4.0], [9.0, 8.0]]))
    step = 1e-3
    by_u = (h.to_floor(pixels + [step, 0]) - h.to_floor(pixels - [step, 0])) / (2 * step)
    by_v = (h.to_floor(pixels + [0, step]) - h.to_floor(pixels - [0, step])) / (2 * step)
    j = h.jacobian(pixels)
    assert j.shape == (3, 2, 2)
    assert np.allclose(j[:, :, 0], by_u, atol=1e-7) and np.allclose(j[:, :, 1], by_v, atol=1e-7)
    # farther from the camera (higher in the image, smaller v) a pixel covers more floor
    assert np.linalg.det(j[2]) != np.linalg.det(j[0])


@pytest.mark.parametrize(
    ("image", "floor", "message"),
    [
        ([[0, 0], [1, 0], [0, 1]], [[0, 0], [1, 0], [0, 1]], "at least 4"),
        ([[0, 0], [1, 1], [2, 2], [0, 5]], [[0, 0], [1, 0], [1, 1], [0, 1]], "on one line"),
        ([[0, 0], [10, 0], [10, 10], [0, 10]], [[0, 0], [0, 1], [1, 0], [1, 1]], "mirror"),
        ([[0, 0], [1, 0]], [[0, 0], [1, 0], [2, 2]], "pairs"),
    ],
)
def test_bad_calibrations_are_refused_with_the_reason(image, floor, message) -> None:
    with pytest.raises(HomographyError, match=message):
        Homography.fit(image, floor)


def _write(
    tmp: Path,
    calibration: str = "",
    extra: str = "",
    source: str = "cam1.mp4",
    store_extra: str = "",
) -> Path:
    (tmp / "cam1.mp4").write_bytes(b"not really a video")
    calibration = (
        calibration
        or "[[100, 900, 0, 0], [1800, 900, 10, 0], [1500, 200, 10, 10], [300, 200, 0, 10]]"
    )
    text = textwrap.dedent(
        f"""
        [store]
        name = "test store"
        floor = {{ width = 20.0, height = 12.0 }}

        [[zones]]
        name = "entrance"
        polygon = [[0, 0], [3, 0], [3, 4], [0, 4]]

        [[cameras]]
        name = "cam1"
        source = "{source}"
        fps = 10
        calibration = {calibration}
        """
    )
    text = text.replace("\n[[zones]]", store_extra + "\n[[zones]]", 1)  # into [store]
    path = tmp / "store.toml"
    path.write_text(text + extra)
    return path


def test_a_valid_configuration_loads(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path))
    assert config.name == "test store" and config.plan.width == 20.0
    assert [z.name for z in config.plan.zones] == ["entrance"]
    cam = config.cameras[0]
    assert cam.source == str(tmp_path / "cam1.mp4") and cam.fps == 10.0 and not cam.is_stream
    assert np.allclose(cam.homography.to_floor(np.array([[100, 900]])), [[0, 0]], atol=1e-6)
    assert list(config.plan.zone_of(np.array([[1, 1], [10, 10]]))) == [0, -1]
    assert config.plan.doors == ()  # no zone marked door = true
    assert config.identities == "live"  # the default for a single camera: nothing to relink by
    relinked = _write(tmp_path, store_extra='identities = "relinked"\n')
    assert load_config(relinked).identities == "relinked"
    # no [detector] input: each camera gets its own (peopleflow.sizing)
    assert config.detector == DetectorSettings(None, 0.2, 75.0) and config.min_visit == 5.0
    assert load_config(_write(tmp_path, store_extra="min_visit = 8\n")).min_visit == 8.0
    tuned = load_config(_write(tmp_path, extra="[detector]\ninput = [384, 640]\nscore = 0.3\n"))
    assert tuned.detector == DetectorSettings((384, 640), 0.3)
    cheaper = load_config(_write(tmp_path, extra="[detector]\nperson_pixels = 50\n"))
    assert cheaper.detector.person_pixels == 50.0 and cheaper.detector.input is None
    assert cheaper.detector.precision == "float32"  # the default
    faster = load_config(_write(tmp_path, extra='[detector]\nprecision = "int8"\n'))
    assert faster.detector.precision == "int8"
    # ... and it reaches the detector each pipeline process builds
    assert dict(DetectorChoice.of(RunSettings(faster)).options)["precision"] == "int8"


def test_a_stream_source_is_not_looked_up_on_disk(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, source="rtsp://10.0.0.5/stream1"))
    assert config.cameras[0].is_stream


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"calibration": "[[0, 0, 0, 0], [1, 1, 1, 1], [2, 2, 2, 2], [0, 5, 0, 5]]"},
            r"cameras\[0\]\.calibration: no four of the 4 pairs",
        ),
        (
            {"calibration": "[[1, 2, 3]]"},
            r"cameras\[0\]\.calibration: expected a list of \[u, v, x, y\]",
        ),
        ({"source": "missing.mp4"}, r"cameras\[0\]\.source: no video file"),
        (
            {"extra": '[[zones]]\nname = "far"\npolygon = [[0, 0], [30, 0], [30, 1]]\n'},
            "outside the floor plan",
        ),
        (
            {"extra": '[[zones]]\nname = "entrance"\npolygon = [[0, 0], [3, 0], [3, 1]]\n'},
            "appear twice",
        ),
        (
            {"store_extra": 'identities = "best"\n'},
            r"store\.identities: expected one of relinked, live",
        ),
        (
            {"extra": '[[zones]]\nname = "door"\npolygon = [[0, 0], [3, 0], [3, 1]]\ndoor = 1\n'},
            r"zones\[1\]\.door: expected true or false",
        ),
        ({"store_extra": "min_visit = -1\n"}, r"store\.min_visit: expected a positive"),
        ({"extra": "[detector]\ninput = [300, 512]\n"}, r"detector\.input: expected \[height"),
        ({"extra": "[detector]\ninput = 288\n"}, r"detector\.input: expected \[height"),
        ({"extra": "[detector]\nscore = 1.5\n"}, r"detector\.score: expected a number"),
        ({"extra": "[detector]\nperson_pixels = 5\n"}, r"detector\.person_pixels: expected"),
        ({"extra": '[detector]\nprecision = "fp16"\n'}, r"detector\.precision: expected"),
        ({"extra": "[detector]\nthreshold = 0.3\n"}, r"detector: unknown keys \['threshold'\]"),
    ],
)
def test_bad_configurations_name_the_field(tmp_path: Path, change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(_write(tmp_path, **change))


def test_a_missing_or_broken_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    (tmp_path / "bad.toml").write_text("[store\nname=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path / "bad.toml")


def test_analytics_of_a_known_walk() -> None:
    plan = default_plan()
    t = np.arange(0, 30, 0.1)
    # 10 s in aisle 1, walk 10 s to aisle 2 (through the gap between them), 10 s in aisle 2
    x = np.interp(t, [0, 10, 20, 30], [6.0, 6.0, 9.5, 9.5])
    y = np.full_like(t, 6.0)
    report = analyse([FloorTrack(7, t, np.c_[x, y])], plan)
    assert report.visitors == 1
    assert report.heatmap.sum() == pytest.approx(30.0, abs=0.11)
    assert report.zone_dwell["aisle 1"] == pytest.approx(10 + 10 * 1 / 3.5, abs=0.3)
    assert report.transitions == {("aisle 1", "aisle 2"): 1}
    assert report.visits == {"aisle 1": 1, "aisle 2": 1}


@pytest.mark.parametrize(("speed", "visit"), [(1.2, False), (0.85, True)])
def test_a_crossing_is_timed_from_edge_to_edge_not_in_whole_frames(
    speed: float, visit: bool
) -> None:
    # straight across aisle 2 (x 8.5 to 10.5): 1.67 s at 1.2 m/s, 2.35 s at 0.85 m/s; sampled
    # at 2 frames per second in every phase, whole frames would say 1.5 or 2.0 s, 2.0 or 2.5 s
    plan = default_plan()
    for phase in np.arange(0, 0.5, 0.05):
        t = np.arange(phase, 40, 0.5)
        x = np.clip(6.0 + speed * (t - 10), 6.0, 13.0)  # aisle 1, across aisle 2, aisle 3
        report = analyse([FloorTrack(1, t, np.c_[x, np.full_like(t, 6.0)])], plan, min_visit=2)
        expected = ["aisle 1", "aisle 2", "aisle 3"] if visit else ["aisle 1", "aisle 3"]
        assert report.visits == dict.fromkeys(expected, 1), phase
        assert sum(report.transitions.values()) == len(expected) - 1


def test_the_move_into_a_door_visited_mid_way_is_not_counted_but_the_move_on_is() -> None:
    # 20 s in aisle 3, then (an identity joined onto a newcomer) 2 s in the entrance
    # (0..3.5 x 0..3 m), then 20 s in aisle 2, and out by the entrance again
    plan = default_plan()
    t = np.arange(0, 50, 0.5)
    x = np.select([t < 20, t < 22, t < 46], [12.0, 2.0, 9.5], 2.0)
    y = np.select([t < 20, t < 22, t < 46], [6.0, 1.5, 6.0], 1.5)
    report = analyse([FloorTrack(1, t, np.c_[x, y])], plan)
    assert report.visits == {"aisle 3": 1, "entrance": 2, "aisle 2": 1}
    # aisle 3 -> entrance is the join's, not a move; entrance -> aisle 2 -> entrance are moves
    assert report.transitions == {("entrance", "aisle 2"): 1, ("aisle 2", "entrance"): 1}


def test_passing_by_is_not_a_visit_but_walking_through_a_door_is() -> None:
    # In by the door (the entrance, 0..3.5 x 0..3 m) at 1.2 m/s: 0.8 s inside it. Then across
    # aisle 1 (5..7 m) without stopping, into aisle 2 to browse for 30 s.
    plan = default_plan()
    t = np.arange(0, 60, 0.5)
    x = np.clip(2.5 + 1.2 * t, 2.5, 9.5)
    y = np.where(t < 1, 2.0 + 1.2 * t, 3.5)
    report = analyse([FloorTrack(1, t, np.c_[x, y])], plan)  # the default: 5 s makes a visit
    assert report.visits == {"entrance": 1, "aisle 2": 1}
    assert report.transitions == {("entrance", "aisle 2"): 1}
    assert report.to_json()["visit_min_s"] == 5.0  # the report says what made a visit
    assert analyse([FloorTrack(1, t, np.c_[x, y])], plan, min_visit=1.0).visits == {
        "entrance": 1,
        "aisle 1": 1,
        "aisle 2": 1,
    }


def test_the_heat_map_kernel_keeps_the_time_and_the_place() -> None:
    plan = default_plan()
    t = np.arange(0, 20, 0.5)
    still = [FloorTrack(1, t, np.tile([6.1, 6.1], (len(t), 1)))]  # one person standing
    raw = analyse(still, plan, smooth=0).heatmap
    smooth = analyse(still, plan, smooth=0.5).heatmap
    assert raw.sum() == pytest.approx(smooth.sum())  # the same 20 s, spread
    assert np.count_nonzero(raw) == 1 and np.count_nonzero(smooth > 0.01) > 9
    assert np.unravel_index(smooth.argmax(), smooth.shape) == (12, 12)  # still the 0.5 m cell


def test_a_hidden_persons_gap_is_filled_but_a_long_absence_is_not() -> None:
    from types import SimpleNamespace

    from peopleflow.app import floor_tracks
    from peopleflow.coverage import Coverage

    def at(ts: float, x: float) -> SimpleNamespace:
        return SimpleNamespace(ts=ts, ids=np.array([3]), xy=np.array([[x, 5.0]]))

    seen = [at(s, 2.0 + 0.4 * s) for s in np.arange(0, 5, 0.5)]  # 0 .. 4.5 s
    later = [at(s, 2.0 + 0.4 * s) for s in np.arange(10, 15, 0.5)]  # hidden 4.5 .. 10 s
    everywhere = Coverage.everywhere(default_plan())
    (track,) = floor_tracks(seen + later, everywhere, fill_gaps=10).tracks
    assert np.allclose(np.diff(track.t), 0.5)  # every frame of the gap, walking on
    assert np.allclose(track.xy[:, 0], 2.0 + 0.4 * track.t)
    (track,) = floor_tracks(seen + later, everywhere, fill_gaps=3).tracks
    assert np.diff(track.t).max() == pytest.approx(5.5)  # too long to assume (walked 2.2 m)


def test_a_person_hidden_for_long_where_they_stood_is_filled_in_one_who_moved_is_not() -> None:
    from types import SimpleNamespace

    from peopleflow.app import floor_tracks
    from peopleflow.coverage import Coverage

    def at(ts: float, x: float) -> SimpleNamespace:
        return SimpleNamespace(ts=ts, ids=np.array([3]), xy=np.array([[x, 5.0]]))

    everywhere = Coverage.everywhere(default_plan())
    before = [at(s, 4.0) for s in np.arange(0, 10, 0.5)]  # standing at a table, then hidden

    def longest_gap(after: list[SimpleNamespace], standing: float = 60.0) -> float:
        # (seen at most instants of its span, or the noise filter would drop it)
        instants = before + after
        (track,) = floor_tracks(instants, everywhere, fill_standing=standing).tracks
        return float(np.diff(track.t).max())

    again = [at(s, 4.6) for s in np.arange(50, 120, 0.5)]  # 40 s later, 0.6 m off
    assert longest_gap(again) == pytest.approx(0.5)  # stood there: every instant filled
    assert longest_gap(again, standing=20.0) == pytest.approx(40.5)  # the rule's limit
    much_later = [at(s, 4.2) for s in np.arange(90, 200, 0.5)]  # hidden 80 s
    assert longest_gap(much_later) == pytest.approx(80.5)


def test_one_who_stood_still_then_turned_up_elsewhere_stood_until_they_had_to_walk() -> None:
    from types import SimpleNamespace

    from peopleflow.app import floor_tracks
    from peopleflow.coverage import Coverage
    from peopleflow.people import WALKING_PACE

    def at(ts: float, x: float) -> SimpleNamespace:
        return SimpleNamespace(ts=ts, ids=np.array([3]), xy=np.array([[x, 5.0]]))

    everywhere = Coverage.everywhere(default_plan())

    def track_of(instants: list[SimpleNamespace]) -> FloorTrack:
        (track,) = floor_tracks(instants, everywhere).tracks
        return track

    stood = [at(s, 4.0) for s in np.arange(0, 10, 0.5)]  # standing at a table, then hidden
    off = [at(s, 7.0 + 0.5 * (s - 50)) for s in np.arange(50, 60, 0.5)]  # 3 m on, walking
    track = track_of(stood + off)  # hidden 9.5 .. 50 s
    assert np.allclose(np.diff(track.t), 0.5)  # every instant filled
    walk = 3.0 / WALKING_PACE  # seconds the 3 m take
    hidden = (track.t > 9.5) & (track.t < 50)
    standing = hidden & (track.t <= 50 - walk)
    assert standing.sum() >= 70 and np.allclose(track.xy[standing, 0], 4.0)  # stood there
    walking = hidden & ~standing
    assert np.all(np.diff(track.xy[walking, 0]) > 0)  # then walked, at the pace
    assert np.allclose(np.diff(track.xy[walking, 0]), 0.5 * WALKING_PACE)

    # found standing still after the gap, walking before it: walked there first, then stood
    came = [at(s, 1.0 + 0.5 * s) for s in np.arange(0, 10, 0.5)]  # walking, up to 5.75 m
    waits = [at(s, 9.0) for s in np.arange(40, 60, 0.5)]  # then standing 3.25 m on
    track = track_of(came + waits)
    assert np.allclose(np.diff(track.t), 0.5)
    arrived = (track.t > 9.5) & (track.t < 40) & np.isclose(track.xy[:, 0], 9.0)
    assert arrived.sum() >= 50  # most of the spell stood where they were found

    # walking at both ends, 30 s hidden and far apart: nothing is assumed
    went = [at(s, 10.0 + 0.5 * (s - 40)) for s in np.arange(40, 60, 0.5)]
    track = track_of(came + went)
    assert np.diff(track.t).max() == pytest.approx(30.5)


def test_an_identity_seen_too_seldom_is_dropped_as_noise() -> None:
    from types import SimpleNamespace

    from peopleflow.app import floor_tracks
    from peopleflow.coverage import Coverage

    def at(ts: float, people: dict[int, float]) -> SimpleNamespace:
        xy = [[x, 5.0] for x in people.values()]
        return SimpleNamespace(ts=ts, ids=np.array(list(people)), xy=np.array(xy).reshape(-1, 2))

    # Identity 1 is seen at every instant; identity 2 (false detections strung together) at
    # one instant in five, over the same 20 s.
    times = np.arange(0, 20, 0.5)
    instants = [at(s, {1: 2.0, **({2: 9.0} if k % 5 == 0 else {})}) for k, s in enumerate(times)]
    people = floor_tracks(instants, Coverage.everywhere(default_plan(), 2), fill_gaps=0)
    (track,) = people.tracks
    assert people.verdict.seen_too_seldom == 1
    assert np.allclose(track.xy[:, 0], 2.0) and len(track.t) == len(times)


def test_accuracy_is_perfect_on_the_truth_and_drops_with_errors() -> None:
    shoppers = simulate(shoppers=20, seconds=60, seed=3)
    truth = analyse([s.track for s in shoppers], default_plan())
    assert accuracy(truth, truth) == {
        "heatmap_correlation": 1.0,
        "zone_dwell_error": 0.0,
        "visitors_error": 0.0,
        "transition_error": 0.0,
    }
    # lose half the people and shift the rest by 2 m: every measure must notice
    rng = np.random.default_rng(0)
    worse = [FloorTrack(s.id, s.track.t, s.track.xy + rng.normal(0, 2.0, 2)) for s in shoppers[::2]]
    got = accuracy(analyse(worse, default_plan()), truth)
    assert got["heatmap_correlation"] < 0.9 and got["visitors_error"] == 0.5
    assert got["zone_dwell_error"] > 0.2 and got["transition_error"] > 0.2


def test_simulated_shoppers_stay_on_the_floor_and_are_reproducible() -> None:
    plan = default_plan()
    a, b = simulate(shoppers=30, seconds=120, seed=1), simulate(shoppers=30, seconds=120, seed=1)
    assert all(np.array_equal(x.track.xy, y.track.xy) for x, y in zip(a, b, strict=True))
    for s in a:
        xy = s.track.xy
        assert (
            (xy >= 0).all() and (xy[:, 0] <= plan.width).all() and (xy[:, 1] <= plan.height).all()
        )
        assert np.allclose(np.diff(s.track.t), 0.1)
        steps = np.linalg.norm(np.diff(xy, axis=0), axis=1)
        assert steps.max() < 0.25  # at most ~1.4 m/s (+ browsing sway) at 10 fps
    assert sum(len(s.track.t) > 0 for s in a) >= 28


def test_heat_and_flow_maps_are_drawn(tmp_path: Path) -> None:
    from peopleflow.maps import draw_flowmap, draw_heatmap

    shoppers = simulate(shoppers=15, seconds=60, seed=2)
    report = analyse([s.track for s in shoppers], default_plan())
    for draw, name in ((draw_heatmap, "heat.png"), (draw_flowmap, "flow.png")):
        path = draw(report, default_plan(), tmp_path / name)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_the_real_clips_hand_calibration_gives_a_valid_store(tmp_path: Path) -> None:
    from peopleflow import vtest

    clip = tmp_path / "vtest.avi"
    clip.write_bytes(b"not read here")
    cfg = load_config(vtest.write_config(tmp_path / "store", clip, fps=5))
    assert [z.name for z in cfg.plan.zones] == list(vtest.ZONES_IN_IMAGE)
    (camera,) = cfg.cameras
    assert camera.fps == 5 and camera.source == str(clip.resolve())
    # Where people stand in the first frame: on the walkway, on the lawn, on the far road.
    feet = np.array([[265.0, 305.0], [200.0, 500.0], [600.0, 160.0]])
    zones = cfg.plan.zone_of(camera.homography.to_floor(feet))
    assert [cfg.plan.zone_names[z] for z in zones] == ["walkway", "lawn", "road and car park"]
    # Nearer the camera a pixel covers less ground: 100 px across is ~1.4 m at the bottom row
    # and ~3.2 m at row 130 (people measure ~2 cm/px near row 300).
    near = camera.homography.to_floor(np.array([[334.0, 576.0], [434.0, 576.0]]))
    far = camera.homography.to_floor(np.array([[334.0, 130.0], [434.0, 130.0]]))
    assert 1.2 < np.linalg.norm(near[1] - near[0]) < 1.6
    assert 2.9 < np.linalg.norm(far[1] - far[0]) < 3.5


def test_a_missing_clip_that_cannot_be_downloaded_is_a_clear_error(
    tmp_path: Path, monkeypatch
) -> None:
    import subprocess

    from peopleflow import vtest
    from peopleflow.sources import SourceError

    def offline(*args, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.CompletedProcess(args, 1, "", "ERROR: no index reachable")

    monkeypatch.setattr(vtest.subprocess, "run", offline)
    with pytest.raises(SourceError, match="put the clip at"):
        vtest.find_clip(tmp_path / "cache")


def test_a_live_source_drops_the_oldest_waiting_frame_when_the_pipeline_lags() -> None:
    """Frames of live cameras wait for the pipeline two per camera at most: when it is slow,
    the oldest waiting frame goes for the newest, counted for its camera."""
    import threading

    from peopleflow.sources import CameraReader, interleave

    go = threading.Event()

    class Live(CameraReader):
        def __iter__(self):  # type: ignore[no-untyped-def]
            for k in range(50):
                yield k, k / 10, np.zeros((2, 2, 3), np.uint8)
            go.set()

    cams = [Live("a", "rtsp://a", 10), Live("b", "rtsp://b", 10)]
    frames = interleave(cams)
    first = next(frames)  # then the pipeline is busy while the cameras go on
    go.wait(10)
    rest = list(frames)
    taken = {c: [i for r, i, _, _ in [first, *rest] if r.name == c] for c in ("a", "b")}
    for cam in cams:
        kept = taken[cam.name]
        assert kept == sorted(kept) and kept[-1] == 49  # the newest frames are kept
        assert cam.stats.behind == 50 - len(kept) > 0  # every dropped frame counted
    assert len(rest) + 1 <= 2 * 2 + 2  # four waiting, plus what was in hand


def test_a_calibration_on_floor_tiles_is_accepted_and_checked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Floor-tile corners always have three points on a line: fine, while four are not; a
    mistyped pair is named with its error; pixels outside the frame are refused at start-up."""
    import logging

    from peopleflow.app import check_calibration_fits
    from peopleflow.config import ConfigError, parse_config
    from peopleflow.geometry import Homography, HomographyError

    truth = Homography(np.array([[0.01, 0.002, -1.0], [0.0005, 0.015, -2.0], [0.0, 0.0004, 1.0]]))
    floor = np.array([[x, y] for x in (1.0, 2.0, 3.0) for y in (1.0, 2.0, 3.0)])  # a tile grid
    pixels = truth.to_image(floor)
    fitted = Homography.fit(pixels, floor)
    assert np.allclose(fitted.errors(pixels, floor), 0, atol=1e-6)
    with pytest.raises(HomographyError, match="no four of the 4 pairs"):
        Homography.fit(pixels[[0, 1, 2, 3]], floor[[0, 1, 2, 3]])  # three of four on a line
    pairs = [[*p, *f] for p, f in zip(pixels.tolist(), floor.tolist(), strict=True)]
    pairs[4][3] += 0.8  # one floor point mistyped
    raw = {
        "store": {"floor": {"width": 10, "height": 10}},
        "zones": [{"name": "z", "polygon": [[0, 0], [5, 0], [5, 5]]}],
        "cameras": [
            {"name": "c", "source": "rtsp://127.0.0.1:1/c", "fps": 2, "calibration": pairs}
        ],
    }
    with caplog.at_level(logging.WARNING, logger="peopleflow"):
        cfg = parse_config(raw, Path("."))
    assert any("calibration[4]" in r.getMessage() for r in caplog.records)
    width, height = int(pixels[:, 0].max()) + 10, int(pixels[:, 1].max()) + 10
    check_calibration_fits(cfg.cameras[0], width, height)
    with pytest.raises(ConfigError, match="outside its .* frame: was the calibration made"):
        check_calibration_fits(cfg.cameras[0], width // 2, height // 2)


def test_a_store_file_changed_in_its_cameras_only_is_applied_camera_by_camera(
    tmp_path: Path,
) -> None:
    """What a SIGHUP applies while the service runs (``peopleflow.camera_changes``): cameras
    gone, come, or changed (out and in again); any other change starts the run again."""
    from peopleflow.camera_changes import camera_changes

    relinked = 'identities = "relinked"\n'
    cam2 = '\n[[cameras]]\nname = "cam2"\nsource = "rtsp://cam2/s"\nfps = 10\ncalibration = {c}\n'
    square = "[[100, 900, 0, 0], [1800, 900, 10, 0], [1500, 200, 10, 10], [300, 200, 0, 10]]"
    moved = "[[100, 900, 0, 0], [1800, 900, 12, 0], [1500, 200, 12, 10], [300, 200, 0, 10]]"
    one = load_config(_write(tmp_path, store_extra=relinked), check_sources=False)
    two = load_config(
        _write(tmp_path, extra=cam2.format(c=square), store_extra=relinked), check_sources=False
    )
    assert camera_changes(one, one) is not None and not camera_changes(one, one)
    added = camera_changes(one, two)
    assert added is not None and added.removed == () and [c.name for c in added.added] == ["cam2"]
    gone = camera_changes(two, one)
    assert gone is not None and gone.removed == ("cam2",) and gone.added == ()
    recalibrated = load_config(
        _write(tmp_path, extra=cam2.format(c=moved), store_extra=relinked), check_sources=False
    )
    both = camera_changes(two, recalibrated)
    assert both is not None and both.removed == ("cam2",) and both.added[0].name == "cam2"
    assert both.describe() == "-cam2 +cam2"
    zone = '\n[[zones]]\nname = "more"\npolygon = [[5, 5], [6, 5], [6, 6], [5, 6]]\n'
    more = load_config(_write(tmp_path, extra=zone, store_extra=relinked), check_sources=False)
    assert camera_changes(one, more) is None  # the plan changed: not cameras alone


def test_zones_out_of_view_are_measured_and_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from peopleflow.app import warn_zones_out_of_view
    from peopleflow.config import FloorPlan, Zone
    from peopleflow.coverage import CELL, Coverage

    def square(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
        return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)

    plan = FloorPlan(
        10.0,
        4.0,
        (
            Zone("seen", square(0.0, 0.0, 4.0, 4.0)),
            Zone("half", square(3.0, 0.0, 7.0, 4.0)),  # its left half is in view
            Zone("dark", square(8.0, 0.0, 10.0, 4.0)),
            Zone("tiny", square(1.0, 1.0, 1.1, 1.1)),  # no cell centre inside: its corners
        ),
    )
    counts = np.zeros((int(4.0 / CELL), int(10.0 / CELL)), np.int32)
    counts[:, : int(5.0 / CELL)] = 2  # cameras show x < 5 m
    shares = Coverage(CELL, counts).zone_shares(plan)
    assert shares == pytest.approx({"seen": 1.0, "half": 0.5, "dark": 0.0, "tiny": 1.0})
    with caplog.at_level(logging.WARNING, logger="peopleflow"):
        warn_zones_out_of_view(shares)
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "zone half: only 50%" in warned and "zone dark: only 0%" in warned
    assert "zone seen" not in warned and "zone tiny" not in warned
