"""The people-flow application's vision parts: renderer, detectors, trackers, camera sources."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import supervision as sv

cv2 = pytest.importorskip("cv2")

from peopleflow.config import (  # noqa: E402
    DETECTOR_INPUT,
    DETECTOR_SCORE,
    Camera,  # noqa: E402
)
from peopleflow.coverage import shows  # noqa: E402
from peopleflow.detect import HogDetector, YoloDetector, retarget, yolo_model_path  # noqa: E402
from peopleflow.generate import people_at  # noqa: E402
from peopleflow.geometry import Homography  # noqa: E402
from peopleflow.layouts import cameras_for  # noqa: E402
from peopleflow.relink import RelinkOptions  # noqa: E402
from peopleflow.render import Renderer  # noqa: E402
from peopleflow.simulate import default_plan, simulate  # noqa: E402
from peopleflow.sources import REALTIME_WARMUP, CameraReader, SourceError, interleave  # noqa: E402
from peopleflow.track import (  # noqa: E402
    HIST_BINS,
    HISTOGRAMS,
    LOOK_SIZE,
    CameraTracker,
    FloorTracker,
    Placed,
    appearance,
    appearance_distance,
    floor_spread,
)


@pytest.fixture(scope="module")
def scenes() -> list[tuple[np.ndarray, list]]:
    """Rendered frames of the default store (4 instants x 4 cameras) with their truth."""
    plan = default_plan()
    shoppers = simulate(plan, shoppers=30, seconds=90, fps=2, seed=3)
    renderers = [Renderer(c, plan, seed=i) for i, c in enumerate(cameras_for(plan, 4))]
    out = []
    for t in (30.0, 50.0, 70.0, 85.0):
        for r in renderers:
            out.append(r.frame(people_at(shoppers, t)))
    return out


def _whole(truth: list, min_height: float, size: tuple[int, int] = (640, 360)) -> np.ndarray:
    w, h = size
    return np.array(
        [
            t.box
            for t in truth
            if t.visible > 0.7
            and t.box[0] >= 0
            and t.box[1] >= 0
            and t.box[2] <= w
            and t.box[3] <= h
            and t.box[3] - t.box[1] >= min_height
        ]
    ).reshape(-1, 4)


def _recall(detector: object, scenes: list, min_height: float = 80) -> tuple[float, int]:
    found = detector([img for img, _ in scenes])  # type: ignore[operator]
    hit = total = 0
    for (boxes, _), (_, truth) in zip(found, scenes, strict=True):
        gt = _whole(truth, min_height)
        total += len(gt)
        if len(gt) and len(boxes):
            hit += int((sv.box_iou_batch(gt, boxes).max(axis=1) >= 0.3).sum())
    return hit / max(total, 1), total


def test_rendered_people_have_human_proportions_and_the_calibration_matches_the_projection(
    scenes: list,
) -> None:
    plan = default_plan()
    cam = cameras_for(plan, 1)[0]
    heights = [t.box[3] - t.box[1] for _, truth in scenes for t in truth if t.visible > 0.5]
    assert min(heights) < 90 and max(heights) > 150  # near and far people
    img, truth = scenes[0]
    assert img.dtype == np.uint8 and img.shape == (360, 640, 3)
    widths = [(t.box[2] - t.box[0]) / (t.box[3] - t.box[1]) for t in truth if t.visible > 0.9]
    assert 0.15 < float(np.median(widths)) < 0.4  # shoulders ~0.27 of the height, arms beside
    pairs = cam.calibration(plan)
    h = Homography.fit(pairs[:, :2], pairs[:, 2:])
    floor = np.array([[4.0, 4.0], [8.0, 6.0], [6.0, 2.5]])
    uv, _ = cam.project(np.c_[floor, np.zeros(3)])
    assert np.allclose(h.to_floor(uv), floor, atol=0.02)


def test_yolo_is_retargeted_and_finds_the_rendered_people(scenes: list) -> None:
    try:
        yolo_model_path()
    except Exception as exc:  # the Makefile installs it; say why if it is not there
        pytest.skip(str(exc))
    with pytest.raises(ValueError, match="multiples of 32"):
        retarget(b"", 100, 200)
    detector = YoloDetector(DETECTOR_INPUT, score=DETECTOR_SCORE)  # what a store runs
    recall, people = _recall(detector, scenes)
    assert people >= 25
    assert recall >= 0.85, f"recall {recall:.2f} on {people} people at least 80 px tall"
    # batching changes nothing
    one = detector([scenes[0][0]])[0][0]
    assert np.allclose(one, detector([scenes[1][0], scenes[0][0]])[1][0], atol=0.5)


def test_the_int8_model_finds_the_people_the_float_one_finds(
    scenes: list, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Quantized once, kept in the model cache, retargeted to each input, and as good at
    finding people as the float model on frames it was not calibrated on. (Calibrated here on
    the first instant's four frames, not on the 48 frames ``calibration_frames`` renders: 12 s
    of the test.)"""
    import peopleflow.quantize

    try:
        yolo_model_path()
    except Exception as exc:
        pytest.skip(str(exc))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    calibrated_on, tested_on = scenes[:4], scenes[4:]
    calibrations: list[int] = []

    def frames() -> list[np.ndarray]:
        calibrations.append(1)
        return [img for img, _ in calibrated_on]

    monkeypatch.setattr(peopleflow.quantize, "calibration_frames", frames)
    with pytest.raises(ValueError, match="precision"):
        YoloDetector((224, 384), precision="int4")
    size = (288, 512)  # the smallest input the default store's people are found at
    quantized = YoloDetector(size, score=DETECTOR_SCORE, gpu=False, precision="int8")
    assert quantized.precision == "int8"
    models = tmp_path / "peopleflow" / "models"
    # kept for the next start: the quantized export (for any input) and its 288x512 rewrite
    kept = sorted(p.name for p in models.glob("*-int8-q*.onnx"))
    assert len(kept) == 2 and sum("-288x512-" in n for n in kept) == 1, kept
    recall, people = _recall(quantized, tested_on)
    float_recall, _ = _recall(YoloDetector(size, score=DETECTOR_SCORE, gpu=False), tested_on)
    assert people >= 20
    assert recall >= float_recall - 0.05, (recall, float_recall)
    assert recall >= 0.8, f"recall {recall:.2f} on {people} people at least 80 px tall"
    larger = YoloDetector((352, 640), score=DETECTOR_SCORE, gpu=False, precision="int8")
    assert calibrations == [1]  # another input: the quantized export retargeted, not calibrated
    assert _recall(larger, tested_on)[0] >= recall - 0.05


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_the_torch_engine_gives_onnxruntimes_boxes(scenes: list, device: str) -> None:
    """The GPU path (PyTorch running the same ONNX graph) runs and is tested on the CPU too."""
    torch = pytest.importorskip("torch")
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    try:
        yolo_model_path()
    except Exception as exc:
        pytest.skip(str(exc))
    frames = [img for img, _ in scenes[:6]]
    ort = YoloDetector((224, 384), score=0.25, engine="onnxruntime")
    tch = YoloDetector((224, 384), score=0.25, engine="torch", gpu=device == "cuda")
    assert tch.providers == [f"torch:{device}"]
    batch, _ = ort.letterbox(frames)
    a, b = ort.infer(batch), tch.infer(batch)
    assert a.shape == b.shape
    # float16 on CUDA: boxes to about a pixel, scores to about 1e-2
    tol = 1e-2 if device == "cpu" else 4.0  # pixels (float16 near x=600 steps by 0.5)
    assert np.abs(a[:, :4] - b[:, :4]).max() <= tol
    assert np.abs(a[:, 4:] - b[:, 4:]).max() <= (1e-4 if device == "cpu" else 2e-2)
    found = 0
    for (ba, _), (bb, _) in zip(ort(frames), tch(frames), strict=True):
        found += len(ba)
        if len(ba) and len(bb):
            assert (sv.box_iou_batch(ba, bb).max(axis=1) > 0.9).mean() >= 0.9
    assert found >= 10


def test_onnxruntime_takes_tensorrt_then_cuda_then_the_cpu(tmp_path: Path) -> None:
    """The detector's providers (what ``make gpu`` installs, and tensorrt when there too): the
    best one available first, the CPU always last; nothing but the CPU without a GPU."""
    from peopleflow.detect import YoloDetector, execution_providers

    gpu = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    chosen = execution_providers(gpu, True, tmp_path)
    assert [p if isinstance(p, str) else p[0] for p in chosen] == gpu
    trt = chosen[0]
    assert not isinstance(trt, str) and trt[1]["trt_engine_cache_path"] == str(tmp_path)
    assert execution_providers(gpu, False, tmp_path) == gpu[1:]  # no tensorrt package
    assert execution_providers(["CPUExecutionProvider"], True, tmp_path) == gpu[2:]
    assert execution_providers([], False, tmp_path) == ["CPUExecutionProvider"]
    assert YoloDetector((96, 160), gpu=False).providers == ["CPUExecutionProvider"]


def test_the_torch_engine_refuses_an_operator_it_does_not_know() -> None:
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from peopleflow.torch_engine import TorchGraph, UnsupportedGraph

    node = helper.make_node("Einsum", ["x"], ["y"], equation="ij->ji")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])],
    )
    with pytest.raises(UnsupportedGraph, match="Einsum"):
        TorchGraph(helper.make_model(graph).SerializeToString())


def test_hog_fallback_finds_some_people(scenes: list) -> None:
    recall, people = _recall(HogDetector(), scenes[:8])
    assert people >= 15
    assert recall >= 0.6, f"HOG recall {recall:.2f} on {people} people"


def _walk_boxes(steps: int) -> list[np.ndarray]:
    """One person walking right across a camera, plus one standing still."""
    out = []
    for k in range(steps):
        x = 40 + 12 * k
        out.append(np.array([[x, 100, x + 40, 220], [500, 150, 530, 230]], np.float32))
    return out


def test_camera_tracker_keeps_one_id_along_a_walk() -> None:
    h = Homography(np.diag([0.02, 0.02, 1.0]))  # 50 px per metre, straight down
    tracker = CameraTracker("cam", h, (640, 360), 2.0, (20.0, 12.0))
    looks = np.zeros((2, LOOK_SIZE), np.float32)
    ids = []
    for step, boxes in enumerate(_walk_boxes(30)):
        placed = tracker.update(boxes, np.array([0.9, 0.8], np.float32), looks)
        if step == 0:
            continue  # ByteTrack confirms a new track on its second frame
        assert len(placed.ids) == 2
        ids.append(tuple(placed.ids[np.argsort(placed.floor[:, 0])]))
    assert len(set(ids)) == 1, ids
    assert np.allclose(placed.floor[np.argmax(placed.floor[:, 0])], [515 * 0.02, 230 * 0.02])


def _look(colour: int) -> np.ndarray:
    """Every histogram of the look (each body part, each channel) at level ``colour``."""
    v = np.zeros((HISTOGRAMS, HIST_BINS), np.float32)
    v[:, colour % HIST_BINS] = 1.0
    return v.reshape(LOOK_SIZE)


def test_a_person_walking_from_one_camera_into_another_keeps_one_identity() -> None:
    floor = FloorTracker()
    seen = []
    for k in range(40):  # 20 s at 2 fps, walking 0.6 m a step along x
        t, x = k / 2, 1.0 + 0.3 * k
        placed = []
        if x < 7.5:  # camera A sees the left part of the store
            placed.append(
                Placed("A", np.array([3]), np.array([[x, 5.0]]), np.array([120.0]), _look(5)[None])
            )
        if x > 6.0:  # camera B the right part, with its own track ids and a little offset
            placed.append(
                Placed(
                    "B",
                    np.array([11]),
                    np.array([[x + 0.2, 5.1]]),
                    np.array([90.0]),
                    _look(5)[None],
                )
            )
        out = floor.update(t, placed)
        assert len(out) == 1
        seen.append(out[0][0])
    assert len(set(seen)) == 1


def test_a_person_out_of_sight_for_a_while_is_recognised_but_a_stranger_is_not() -> None:
    floor = FloorTracker()
    first = [
        floor.update(
            k / 2,
            [
                Placed(
                    "A",
                    np.array([1]),
                    np.array([[2.0 + 0.4 * k, 3.0]]),
                    np.array([100.0]),
                    _look(7)[None],
                )
            ],
        )
        for k in range(10)
    ]
    for k in range(10, 16):  # 3 s seen by no camera
        floor.update(k / 2, [])
    back = floor.update(
        8.0, [Placed("B", np.array([4]), np.array([[8.5, 3.5]]), np.array([100.0]), _look(7)[None])]
    )
    stranger = floor.update(
        8.5,
        [
            Placed(
                "B",
                np.array([4, 9]),
                np.array([[8.9, 3.6], [8.0, 3.2]]),
                np.array([100.0, 100.0]),
                np.stack([_look(7), _look(40)]),
            )
        ],
    )
    assert back[0][0] == first[0][0][0]
    assert len({i for i, _, _ in stranger}) == 2 and first[0][0][0] in {i for i, _, _ in stranger}
    assert floor.identities == 2


def test_a_cameras_places_are_unsure_along_its_line_of_sight_and_sure_across_it() -> None:
    # a camera behind the floor's y = 0 edge, looking up the store; its lines of sight on the
    # floor meet below it, at (-1/3, -12.5), where u's numerator and w are both 0
    floor_to_image = np.array([[60.0, 0.0, 20.0], [0.0, -25.0, 380.0], [0.0, 0.08, 1.0]])
    below = np.array([-1 / 3, -12.5])
    h = Homography(np.linalg.inv(floor_to_image))
    places = np.array([[5.0, 3.0], [5.0, 8.0]])
    heights = 150.0 / (1 + 0.08 * places[:, 1])  # a person's box shrinks as 1 / w
    spread = floor_spread(h, h.to_image(places), heights)
    for s, place in zip(spread, places, strict=True):
        values, vectors = np.linalg.eigh(s)
        assert values[1] > 4 * values[0]  # an ellipse, not a circle
        sight = (place - below) / np.linalg.norm(place - below)
        assert abs(float(vectors[:, 1] @ sight)) > 0.99  # long along the line of sight
    assert np.linalg.eigvalsh(spread[1])[1] > np.linalg.eigvalsh(spread[0])[1]  # worse far off


def _cut_off_person(
    stature: float,
) -> tuple[CameraTracker, Camera, np.ndarray, np.ndarray, np.ndarray]:
    """A drawn camera's tracker, its configuration, and a floor point where a person of
    ``stature`` metres has their feet below the frame's bottom edge and their head in it; the
    box the detector would give them (cut off at the bottom edge); and a box from the head of
    a person standing wholly in the frame down to the bottom edge (no one's box)."""
    plan = default_plan()
    cam = cameras_for(plan, 1)[0]
    pairs = cam.calibration(plan)
    h = Homography.fit(pairs[:, :2], pairs[:, 2:])
    width, height = cam.size
    xs, ys = np.meshgrid(np.arange(0.2, plan.width, 0.1), np.arange(0.2, plan.height, 0.1))
    floor = np.c_[xs.ravel(), ys.ravel()]
    feet, depth = cam.project(np.c_[floor, np.zeros(len(floor))])
    heads, _ = cam.project(np.c_[floor, np.full(len(floor), stature)])
    cut = (depth > 0) & (feet[:, 1] > height + 20) & (heads[:, 1] > 30)
    cut &= (np.abs(feet[:, 0] - width / 2) < width / 4) & (heads[:, 1] < height - 80)
    assert cut.any(), "the drawn camera shows no one with their feet cut off"
    k = int(np.flatnonzero(cut)[0])
    box = np.array([[heads[k, 0] - 25, heads[k, 1], heads[k, 0] + 25, height]])
    whole = (depth > 0) & (feet[:, 1] > height / 2) & (feet[:, 1] < height - 60)
    whole &= np.abs(feet[:, 0] - width / 2) < width / 4
    j = int(np.flatnonzero(whole)[0])
    wrong = np.array([[heads[j, 0] - 25, heads[j, 1], heads[j, 0] + 25, height]])
    tracker = CameraTracker(cam.name, h, cam.size, 2.0, (plan.width, plan.height))
    config = Camera(cam.name, "cam.mp4", 2.0, pairs, h)
    return tracker, config, floor[k], box, wrong


@pytest.mark.parametrize(("stature", "within"), [(1.7, 0.15), (1.85, 0.6)])
def test_a_person_whose_feet_the_frame_cuts_off_is_placed_by_their_head(
    stature: float, within: float
) -> None:
    tracker, camera, where, box, wrong = _cut_off_person(stature)
    placed = tracker.update(box, np.array([0.9]), _look(3)[None])
    assert len(placed.ids) == 1, "a person cut off at the bottom edge was not placed"
    assert np.linalg.norm(placed.floor[0] - where) < within, (placed.floor[0], where)
    # less sure than a whole person's foot point, most of all along the line of sight
    assert np.linalg.eigvalsh(placed.spreads()[0])[1] > 0.1**2
    # the floor there counts as shown by the camera (a person standing on it is seen)
    assert shows(camera, (tracker.width, tracker.height), where[None])[0]
    # a box down to the bottom edge whose top is the head of someone standing wholly in the
    # frame: placed by that head, their feet would be inside the frame; so no one is placed
    assert len(tracker.update(wrong, np.array([0.9]), _look(3)[None]).ids) == 0


def _seen(camera: str, xy: list[float], look: int, along: str) -> Placed:
    """One person as ``camera`` places them: sure to 0.15 m across its line of sight, to
    0.8 m along it (``along``: x or y)."""
    spread = np.diag([0.8**2, 0.15**2] if along == "x" else [0.15**2, 0.8**2])
    return Placed(
        camera, np.array([1]), np.array([xy]), np.array([80.0]), _look(look)[None], spread[None]
    )


def test_two_cameras_places_are_one_person_where_their_ellipses_agree() -> None:
    # A and B both look along y. B places the person 1.8 m farther along it (feet hidden by a
    # shelf): one person, placed where A, as sure, puts them across and both agree along.
    one = FloorTracker()._merge([_seen("A", [5.0, 4.0], 5, "y"), _seen("B", [5.1, 5.8], 5, "y")])
    assert len(one) == 1 and sorted(m[0] for m in one[0].members) == ["A", "B"]
    assert abs(one[0].xy[0] - 5.05) < 0.01 and 4.0 < one[0].xy[1] < 5.8
    # two people side by side a metre apart across both lines of sight, each seen by one
    # camera, in alike dark clothes: two people (a round 1.5 m radius made them one)
    two = FloorTracker()._merge([_seen("A", [5.0, 4.0], 5, "y"), _seen("B", [6.0, 4.1], 5, "y")])
    assert len(two) == 2
    # B looking along x instead, so sure along y where A is not: one person, placed along y
    # where B says
    crossed = FloorTracker()._merge(
        [_seen("A", [5.0, 4.0], 5, "y"), _seen("B", [5.0, 5.8], 5, "x")]
    )
    assert len(crossed) == 1 and abs(crossed[0].xy[1] - 5.8) < 0.1  # B is sure along y


def test_appearance_histograms_tell_clothes_apart() -> None:
    frame = np.zeros((200, 200, 3), np.uint8)
    frame[:, :100] = (200, 30, 30)
    frame[:, 100:] = (30, 30, 200)
    looks = appearance(frame, np.array([[10, 10, 90, 190], [110, 10, 190, 190], [20, 0, 80, 150]]))
    assert np.allclose(looks.reshape(3, HISTOGRAMS, HIST_BINS).sum(axis=2), 1)
    assert np.allclose(looks[0], looks[2]) and not np.allclose(looks[0], looks[1])


def test_people_in_dark_clothes_a_few_levels_apart_do_not_look_the_same() -> None:
    # Two people in near-black clothes, 8-10 levels apart, through a noisy sensor: one of them
    # in two frames looks like themself, within what a tracklet accepts; the two do not (the
    # 4-level histogram of all three channels put every dark colour in one bin).
    rng = np.random.default_rng(3)

    def frame(top: tuple[int, int, int], legs: tuple[int, int, int]) -> np.ndarray:
        image = np.zeros((200, 100, 3), np.float32)
        image[:100], image[100:] = top, legs
        return np.clip(image + rng.normal(0, 3, image.shape), 0, 255).astype(np.uint8)

    box = np.array([[0, 0, 100, 200]])
    first = appearance(frame((34, 36, 33), (22, 24, 20)), box)
    again = appearance(frame((34, 36, 33), (22, 24, 20)), box)
    other = appearance(frame((43, 44, 42), (30, 33, 31)), box)
    same, different = appearance_distance(first, np.r_[again, other])[0]
    assert same < RelinkOptions().link_look < different


def _video(path: Path, frames: int, fps: float) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (64, 48))
    for k in range(frames):
        writer.write(np.full((48, 64, 3), k * 8 % 256, np.uint8))
    writer.release()
    return path


def test_a_file_is_sampled_at_the_configured_rate_and_skips_are_counted(tmp_path: Path) -> None:
    reader = CameraReader("cam", str(_video(tmp_path / "a.mp4", 30, 10.0)), fps=2.5)
    got = list(reader)
    assert [i for i, _, _ in got] == list(range(8))  # 30 frames at 10 fps, every 4th
    assert [s for _, s, _ in got][:3] == [0.0, 0.4, 0.8]
    assert reader.stats.frames == 8 and reader.stats.skipped == 22
    assert reader.probe() == (48, 64)


def test_a_file_read_in_real_time_keeps_camera_pace_and_drops_what_is_late(tmp_path: Path) -> None:
    import time

    path = str(_video(tmp_path / "rt.mp4", 20, 10.0))  # 2 s of video
    reader = CameraReader("cam", path, fps=10.0, realtime=True)
    started = time.monotonic()
    got = [i for i, _, _ in reader]
    assert time.monotonic() - started >= 1.7  # at camera pace, not as fast as it decodes
    assert got == list(range(20)) and reader.stats.behind == 0
    longer = str(_video(tmp_path / "rt6.mp4", 60, 10.0))  # 6 s: past the start-up's 3
    slow = CameraReader("cam", longer, fps=10.0, realtime=True)
    kept = []
    for i, _, _ in slow:  # a pipeline that takes 0.25 s a frame: a live camera's frames go
        kept.append(i)
        time.sleep(0.25)
    assert slow.stats.behind > 10 and len(kept) + slow.stats.behind == 60
    assert kept == sorted(kept) and kept[-1] >= 55  # it goes on at now, not from a backlog
    # While the run starts (models loading), being late moves the clock: nothing is dropped.
    assert kept[: int(REALTIME_WARMUP * 10 / 2.5)] == list(range(int(REALTIME_WARMUP * 10 / 2.5)))


def test_missing_files_and_unreachable_streams_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="cannot open video file .*nope.mp4"):
        list(CameraReader("cam", str(tmp_path / "nope.mp4"), 2.0))
    pauses: list[float] = []
    stream = CameraReader(
        "door", "rtsp://127.0.0.1:9/none", 2.0, retries=2, timeout=1.0, sleep=pauses.append
    )
    with pytest.raises(SourceError, match="door: gave up after 2 reconnects"):
        list(stream)
    assert stream.stats.reconnects == 2 and pauses == [1.0, 2.0]


def test_one_broken_camera_does_not_stop_the_others(tmp_path: Path) -> None:
    good = CameraReader("good", str(_video(tmp_path / "g.mp4", 6, 2.0)), 2.0)
    broken = CameraReader("broken", str(tmp_path / "missing.mp4"), 2.0)
    errors: list[str] = []
    names = [r.name for r, *_ in interleave([broken, good], lambda r, e: errors.append(r.name))]
    assert names == ["good"] * 6 and errors == ["broken"]
    assert "cannot open" in broken.stats.failed
