"""The accuracy benchmark's quick mode: two small evaluation stores, the JSON it promises."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest

from tests.apps.benchmark_scripts import benchmark


# Generates two stores and runs each through the pipeline: ~100 s on a 2-core VM, near the
# suite's 120 s per test on a slow day of a shared one (it took 120 s on 2026-12-07 before the
# quick mode's cheaper detector input), so it has a budget of its own.
@pytest.mark.timeout(300)
def test_quick_mode_scores_two_unseen_stores(tmp_path: Path) -> None:
    bench_accuracy = benchmark("bench_accuracy")
    out = tmp_path / "acc.json"
    summary = bench_accuracy.main(
        ["--quick", "--data", str(tmp_path / "stores"), "--json", str(out)]
    )
    written = json.loads(out.read_text())
    assert written == json.loads(json.dumps(summary))
    assert written["stores_count"] == 2 and len(written["stores"]) == 2
    seeds = [s["params"]["seed"] for s in written["stores"]]
    assert min(seeds) >= bench_accuracy.EVAL_SEED  # never a tuning store (seeds 0..4)
    for figure in bench_accuracy.FIGURES:
        values = [s[figure] for s in written["stores"]]
        worst = min(values) if figure == "heatmap_correlation" else max(values)
        assert written[f"worst_{figure}"] == worst
        assert abs(written[f"mean_{figure}"] - sum(values) / 2) < 1e-3
        in_view = [s["in_view"][figure] for s in written["stores"]]
        assert abs(written[f"in_view_mean_{figure}"] - sum(in_view) / 2) < 1e-3
    # Scored again where the cameras look: the share of the shoppers' time in view is known.
    assert all(0.5 < s["truth_in_view_share"] <= 1.0 for s in written["stores"]), written
    # A real run, not a stub: the pipeline found people and their heat map follows the truth.
    assert all(s["heatmap_correlation"] > 0.5 for s in written["stores"]), written
    assert all(0.0 <= s["visitors_error"] <= 1.0 for s in written["stores"]), written


def test_shaken_detections_move_by_the_stated_noise_and_the_summary_keeps_their_spread() -> None:
    """``--shake``'s noise: boxes by SHAKE_BOX of their height, scores by SHAKE_SCORE, the
    same for the same seed; the summary's summed figures come from each store's own."""
    replay = benchmark("replay_peopleflow")
    bench_accuracy = benchmark("bench_accuracy")
    rng = np.random.default_rng(0)
    top = rng.uniform(0, 300, (4000, 2))
    tall = rng.uniform(40, 200, 4000)
    boxes = np.c_[top[:, 0], top[:, 1], top[:, 0] + tall / 2, top[:, 1] + tall].astype(np.float32)
    d = {"boxes": boxes, "scores": np.full(4000, 0.5, np.float32), "index": np.arange(4000)}
    one, again, other = (replay.shaken(d, k) for k in (1, 1, 2))
    assert np.array_equal(one["boxes"], again["boxes"])
    assert not np.array_equal(one["boxes"], other["boxes"])
    assert one["index"] is d["index"] and one["boxes"].dtype == np.float32
    moved = (one["boxes"] - boxes) / tall[:, None]
    assert abs(moved.std() - replay.SHAKE_BOX) < 0.1 * replay.SHAKE_BOX
    assert abs((one["scores"] - 0.5).std() - replay.SHAKE_SCORE) < 0.1 * replay.SHAKE_SCORE
    figures = {"heatmap_correlation": 0.9, "zone_dwell_error": 0.1, "visitors_error": 0.05}
    stores = [
        {**figures, "transition_error": t, "in_view": {**figures, "transition_error": t}}
        for t in (0.2, 0.4)
    ]
    stores[0]["shaken"] = {"summed": 0.5}
    stores[1]["shaken"] = {"summed": 0.7}
    summary = bench_accuracy.summarise(stores)
    assert summary["mean_summed"] == pytest.approx((0.45 + 0.65) / 2)
    assert summary["shaken_mean_summed"] == pytest.approx(0.6)


def test_another_precision_is_a_store_file_of_its_own_beside_the_store(tmp_path: Path) -> None:
    """``--precision int8`` runs a copy of the store's file that sets it; the store's own file
    stays as generated (float32) for other runs."""
    bench_accuracy = benchmark("bench_accuracy")
    config = tmp_path / "store.toml"
    assert bench_accuracy.with_precision(config, "float32") == config
    config.write_text('[detector]\nscore = 0.3  # kept\n\n[[zones]]\nname = "z"\n')
    copy = bench_accuracy.with_precision(config, "int8")
    assert copy == tmp_path / "store-int8.toml"
    read = tomllib.loads(copy.read_text())
    assert read["detector"] == {"score": 0.3, "precision": "int8"}
    assert read["zones"] == [{"name": "z"}] and "# kept" in copy.read_text()
    assert "precision" not in config.read_text()
    config.write_text('[store]\nname = "s"\n\n[[zones]]\nname = "z"\n')  # no [detector]
    read = tomllib.loads(bench_accuracy.with_precision(config, "int8").read_text())
    assert read["detector"] == {"precision": "int8"} and read["store"] == {"name": "s"}
    assert read["zones"] == [{"name": "z"}]


def test_seeds_name_drawn_stores_of_either_set() -> None:
    """``--seeds``: each seed's store as its set draws it (tuning below 1000), never a mix."""
    bench_accuracy = benchmark("bench_accuracy")
    tuning = bench_accuracy.draw_stores(20, False, bench_accuracy.TUNE_SEED)
    evaluation = bench_accuracy.draw_stores(3, False)
    assert bench_accuracy.stores_of([513, 502, 1002]) == [tuning[13], tuning[2], evaluation[2]]
    assert {p.resolution for p in bench_accuracy.stores_of(list(bench_accuracy.TUNING_SET))} == {
        "640x360",
        "1280x720",
        "1920x1080",
    }
    with pytest.raises(ValueError, match="begin at 500"):
        bench_accuracy.stores_of([499])
    with pytest.raises(SystemExit):
        bench_accuracy.main(["--seeds", "502,1000", "--replay"])
    with pytest.raises(SystemExit):
        bench_accuracy.main(["--seeds", "502,x"])
