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
