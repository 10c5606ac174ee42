"""bench_reid's detector features: pooled over the right cells, one unit row per box."""

from __future__ import annotations

import numpy as np
import pytest

from tests.apps.benchmark_scripts import benchmark

bench_reid = benchmark("bench_reid")


def test_pooled_is_the_mean_of_the_cells_whose_centres_lie_in_the_box() -> None:
    fmap = np.arange(2 * 4 * 6, dtype=np.float32).reshape(2, 4, 6)
    # Cells 1-2 across (centres 1.5, 2.5) and row 1 down (centre 1.5) lie in this box.
    got = bench_reid.pooled(fmap, np.array([1.2, 1.0, 2.9, 2.0]))
    assert got == pytest.approx(fmap[:, 1:2, 1:3].mean(axis=(1, 2)))
    # A box smaller than a cell takes the cell under its centre.
    tiny = bench_reid.pooled(fmap, np.array([4.1, 2.1, 4.3, 2.3]))
    assert tiny == pytest.approx(fmap[:, 2, 4])


def test_detector_features_give_one_unit_row_per_box_at_each_level() -> None:
    rng = np.random.default_rng(0)
    frames = [
        (rng.integers(0, 255, (180, 320, 3), np.uint8), np.array([[10, 20, 60, 150.0]] * 2)),
        (rng.integers(0, 255, (180, 320, 3), np.uint8), np.array([[200, 30, 260, 170.0]])),
    ]
    features = bench_reid.detector_features(frames, (128, 224))
    if isinstance(features, str):
        pytest.skip(features)
    assert set(features) == set(bench_reid.DETECTOR_LEVELS)
    for rows in features.values():
        assert rows.shape[0] == 3
        assert np.linalg.norm(rows, axis=1) == pytest.approx(np.ones(3), abs=1e-5)
        # The same box of the same frame pools the same cells: the same row.
        assert rows[0] == pytest.approx(rows[1], abs=1e-5)
