"""The relinking benchmark's hour: copies end to end, each one other people."""

from __future__ import annotations

import numpy as np

from peopleflow.people import Observations
from peopleflow.track import HIST_BINS, HISTOGRAMS, LOOK_SIZE, appearance_distance
from tests.apps.benchmark_scripts import benchmark


def test_an_hour_is_copies_of_other_people_one_after_another() -> None:
    bench_relink = benchmark("bench_relink")
    rng = np.random.default_rng(3)
    looks = np.zeros((12, HISTOGRAMS, HIST_BINS), np.float32)
    looks[:, :, :4] = rng.uniform(size=(12, HISTOGRAMS, 4))  # dark clothes: the low levels
    looks /= looks.sum(axis=2, keepdims=True)
    obs = Observations(
        np.repeat(np.arange(4) * 0.5, 3),
        np.zeros(12, np.int64),
        rng.uniform(0, 9, (12, 2)),
        looks.reshape(12, LOOK_SIZE),
    )
    t, xy, hour = bench_relink.an_hour(obs, 3)
    assert len(t) == 36 and np.all(np.diff(t[::12]) > 1.5)  # each copy after the one before
    assert np.array_equal(xy[12:24], obs.xy) and np.array_equal(hour[:12], obs.looks)
    within = appearance_distance(obs.looks, obs.looks)
    for c in (1, 2):  # each copy's people are told apart as the first copy's were ...
        copy = hour[12 * c : 12 * (c + 1)]
        assert np.allclose(appearance_distance(copy, copy), within, atol=1e-6)
        # ... and look like no one of the first copy's: a shopper is not their own copy
        assert appearance_distance(copy, obs.looks).diagonal().min() > 0.2
