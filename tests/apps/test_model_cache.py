"""The cache of YOLO models rewritten for an input size: reused, and not grown by reinstalls."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import peopleflow.detect as detect


def test_a_reinstalled_model_replaces_its_cached_rewrites_of_the_same_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    made: list[tuple[int, int]] = []

    def rewrite(model: bytes, height: int, width: int) -> bytes:  # onnx is not what is tested
        made.append((height, width))
        return model + f"{height}x{width}".encode()

    monkeypatch.setattr(detect, "retarget", rewrite)
    model = tmp_path / "best_fp16.onnx"
    model.write_bytes(b"weights")
    assert detect.retargeted(model, 32, 64) == b"weights32x64"
    assert detect.retargeted(model, 32, 64) == b"weights32x64"  # from the cache
    assert detect.retargeted(model, 64, 96) == b"weights64x96"
    assert made == [(32, 64), (64, 96)]
    cache = detect.model_cache()
    assert len(list(cache.glob("*.onnx"))) == 2
    # installed again: the same file with a new modification time
    later = model.stat().st_mtime_ns + 10**9
    os.utime(model, ns=(later, later))
    assert detect.retargeted(model, 32, 64) == b"weights32x64"
    assert made[-1] == (32, 64)  # made again, for the new file
    names = sorted(p.name for p in cache.glob("*.onnx"))
    assert len(names) == 2, names  # the old 32x64 went; the other input's model stays
    assert any(str(later) in n and "32x64" in n for n in names)
    assert any("64x96" in n for n in names)


def test_the_int8_model_is_made_once_said_and_then_read_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``quantized_first`` (what a run does before its pipelines start with ``precision =
    "int8"``) says it quantizes the first time only; each input is the one quantized export
    retargeted, not quantized again."""
    import numpy as np
    import onnxruntime

    import peopleflow.quantize as quantize
    from peopleflow.app import quantized_first

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    model = tmp_path / "best_fp16.onnx"
    model.write_bytes(b"weights")
    monkeypatch.setattr(detect, "yolo_model_path", lambda: model)
    made: list[tuple[int, ...]] = []

    def int8(data: bytes, inputs: np.ndarray) -> bytes:  # onnxruntime is not what is tested
        made.append(inputs.shape)
        return data + b"-int8"

    monkeypatch.setattr(quantize, "int8", int8)
    monkeypatch.setattr(quantize, "calibration_frames", lambda: [np.zeros((72, 128, 3), np.uint8)])
    monkeypatch.setattr(detect, "retarget", lambda m, h, w: m + f"@{h}x{w}".encode())
    quantized_first("yolo", progress=True)
    assert "quantizing the detector to 8-bit integers, once" in capsys.readouterr().out
    assert made == [(1, 3, *detect.EXPORTED_INPUT)]  # calibrated at the export's input
    quantized_first("yolo", progress=True)
    assert capsys.readouterr().out == ""  # from the cache, silently
    assert detect.retargeted(model, 32, 64, "int8") == b"weights-int8@32x64"
    assert detect.retargeted(model, 64, 96, "int8") == b"weights-int8@64x96"
    assert detect.retargeted(model, 32, 64) == b"weights@32x64"  # float32 beside it
    assert len(made) == 1

    def missing() -> Path:
        raise detect.DetectorError("no YOLO model here")

    monkeypatch.setattr(detect, "yolo_model_path", missing)
    quantized_first("auto", progress=True)  # "auto" runs HOG then: nothing to quantize
    with pytest.raises(detect.DetectorError, match="no YOLO model"):
        quantized_first("yolo", progress=True)
