"""The detector's model in 8-bit integers, for CPUs: 1.7-2.5x the speed, the same recall.

``int8(model, inputs)`` quantizes the exported YOLOv8 ONNX model with onnxruntime's static
quantization: weights per channel and activations in 8 bits, their ranges calibrated on
``inputs``, frames the project renders itself (``calibration_frames``: a drawn store of 60
shoppers, a third in alike dark clothes, seen by four 1280x720 cameras; no data is fetched),
made the model's input by the caller. It is done once (``detect.quantized``, at the export's
640x640 input) and the result retargeted to each input like the float model: ranges
calibrated at 640x640 gave the same recall as ranges calibrated at each input.
The head's last layers stay in floating point: they turn the logits into box corners and
scores in one tensor, whose ranges (hundreds of pixels, scores of 0-1) one 8-bit scale cannot
hold (quantized, its scores moved by up to 0.7). Measured on drawn tuning frames and stores
(docs/peopleflow.md, "8-bit integers on a CPU"): the same recall and false boxes as float32,
boxes within 0.3% of a person's height (median), 1.7-1.8x faster on one thread of an AVX2 CPU
and 2.4-2.5x with AVX-512 VNNI; on the ten evaluation stores the same heat map, dwell and
visitors, the transitions 0.224 -> 0.242, which shaken replays of 720p and 1080p tuning stores
put within the noise (shaken summed figure 0.504 float32, 0.489 int8). float32 stays the
default (a first run would spend a minute quantizing). A GPU keeps floating point (TensorRT's
float16).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

CALIBRATION_SEED = 570  # a tuning seed (``bench_accuracy.TUNE_SEED`` and up), never evaluated
CALIBRATION_CAMERAS = 4
CALIBRATION_INSTANTS = 12  # per camera: 48 frames


def calibration_frames() -> list[np.ndarray]:
    """Frames of a drawn store, BGR, rendered now (12 s on one core of this VM: once per
    input size, before its model is cached)."""
    from peopleflow.generate import people_at
    from peopleflow.layouts import aimed_pitch, cameras_for, drawn_layout
    from peopleflow.render import Renderer
    from peopleflow.simulate import Crowd, simulate

    layout = drawn_layout(CALIBRATION_SEED, 1)
    shoppers = simulate(layout.plan, 60, 120.0, 2.0, CALIBRATION_SEED, layout.doors, Crowd(0.34, 2))
    cameras = cameras_for(layout.plan, CALIBRATION_CAMERAS, (1280, 720), 3.4, aimed_pitch(3.4, 8.0))
    frames = []
    for k, cam in enumerate(cameras):
        renderer = Renderer(cam, layout.plan, CALIBRATION_SEED + k)
        for j in range(CALIBRATION_INSTANTS):
            frames.append(renderer.frame(people_at(shoppers, 10.0 + 9.0 * j))[0])
    return frames


def float_head(model: object) -> list[str]:
    """The nodes of the detection head that turn logits into boxes and scores (and the
    convolutions that make those logits): left in floating point."""
    names = []
    for node in model.graph.node:  # type: ignore[attr-defined]
        if not node.name.startswith("/model.22/"):
            continue
        activation = "/act/" in node.name
        logits = node.op_type == "Conv" and node.name.endswith("2/Conv")
        if (node.op_type != "Conv" and not activation) or "dfl" in node.name or logits:
            names.append(node.name)
    return names


def int8(model: bytes, inputs: np.ndarray) -> bytes:
    """``model`` (a YOLOv8 ONNX model) quantized to 8 bits, calibrated on ``inputs``: frames
    as the model takes them (``detect.model_input``, at its input size)."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    proto = onnx.load_from_string(model)
    name = proto.graph.input[0].name

    class Frames(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.next = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self.next >= len(inputs):
                return None
            self.next += 1
            return {name: inputs[self.next - 1 : self.next]}

    with tempfile.TemporaryDirectory() as tmp:
        plain, prepared, out = (Path(tmp) / n for n in ("plain.onnx", "prep.onnx", "q.onnx"))
        plain.write_bytes(model)
        quant_pre_process(str(plain), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(out),
            Frames(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            nodes_to_exclude=float_head(proto),
        )
        return out.read_bytes()
