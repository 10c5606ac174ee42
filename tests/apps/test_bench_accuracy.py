"""The accuracy benchmark's quick mode: two small evaluation stores, the JSON it promises."""

from __future__ import annotations

import json
from pathlib import Path

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
