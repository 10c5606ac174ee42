"""The files a report is read in: maps, ``report.json`` and CSV tables.

Written the same way for a batch run (``peopleflow run``) and for any period of a live
service's database (``peopleflow report``).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from peopleflow.analytics import Report
from peopleflow.config import FloorPlan
from peopleflow.maps import draw_flowmap, draw_heatmap


def write_report(
    rep: Report, plan: FloorPlan, name: str, out: Path, extra: dict[str, Any]
) -> dict[str, Path]:
    """heatmap.png, flowmap.png, report.json (the report and ``extra``), zones.csv and
    transitions.csv under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "heatmap": draw_heatmap(
            rep, plan, out / "heatmap.png", f"{name}: dwell time (seconds per {rep.cell:g} m cell)"
        ),
        "flowmap": draw_flowmap(rep, plan, out / "flowmap.png", f"{name}: flows between zones"),
        "report": out / "report.json",
        "zones": out / "zones.csv",
        "transitions": out / "transitions.csv",
    }
    paths["report"].write_text(json.dumps({"store": name, **rep.to_json(), **extra}, indent=2))
    write_csv(
        paths["zones"],
        ["zone", "dwell_seconds", "visits", "in_view_share"],
        (
            [z, round(s, 2), rep.visits.get(z, 0), _share(rep.zones_in_view.get(z))]
            for z, s in rep.zone_dwell.items()
        ),
    )
    write_csv(
        paths["transitions"],
        ["from", "to", "count"],
        ([a, b, n] for (a, b), n in sorted(rep.transitions.items())),
    )
    return paths


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def _share(value: float | None) -> str | float:
    return "" if value is None else round(value, 3)
