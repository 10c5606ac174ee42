"""A report for any period, from the results database alone (``peopleflow report``).

The period is [start, end) in epoch seconds; a window counts when it starts in it. Hours are
the machine's local time. Writes what ``peopleflow run`` writes for a whole run (maps,
``report.json``, zones and transitions), and the tables a store reads by the hour: dwell by
zone and hour, visitors by hour, and each camera's frames by hour and its gaps.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from peopleflow.analytics import Report, Tally, to_report
from peopleflow.config import FloorPlan
from peopleflow.database import DatabaseError, ResultsDB
from peopleflow.outputs import write_csv, write_report


@dataclass(frozen=True)
class Period:
    """What the database holds for one store over [start, end) (None: open-ended)."""

    store: str
    start: float | None
    end: float | None
    plan: FloorPlan
    tally: Tally
    report: Report


def local_hour(epoch: float) -> int:
    return datetime.fromtimestamp(epoch).hour


def read_period(
    db: ResultsDB, store: str | None = None, start: float | None = None, end: float | None = None
) -> Period:
    """The period's sums and report; ``store`` may be left out when the database has one."""
    store = store or only_store(db)
    plan, min_visit = db.plan(store)
    tally = db.tally(store, start, end)
    report = to_report(tally, plan, local_hour, min_visit=min_visit)
    return Period(store, start, end, plan, tally, report)


def write_period(db: ResultsDB, period: Period, out: Path) -> dict[str, Path]:
    """The period's files under ``out``."""
    windows = sorted(period.tally.windows())
    extra = {
        "period": {
            "from": _iso(period.start),
            "to": _iso(period.end),
            "first_window": _iso(windows[0]) if windows else None,
            "last_window": _iso(windows[-1]) if windows else None,
            "windows_with_results": len(windows),
        }
    }
    paths = write_report(period.report, period.plan, period.store, out, extra)
    by_hour = period.report.zone_dwell_by_hour
    paths["dwell_by_hour"] = write_csv(
        out / "dwell_by_zone_and_hour.csv",
        ["zone", "hour", "dwell_seconds"],
        ([z, h, round(s, 2)] for z, hours in by_hour.items() for h, s in sorted(hours.items())),
    )
    visitors: Counter[str] = Counter()
    for win, n in period.tally.visitors.items():
        visitors[_hour_key(win)] += n
    paths["visitors_by_hour"] = write_csv(
        out / "visitors_by_hour.csv", ["hour", "visitors"], sorted(visitors.items())
    )
    health: dict[tuple[str, str], list[int]] = {}
    for (win, cam), got in db.camera_health(period.store, period.start, period.end).items():
        sums = health.setdefault((_hour_key(win), cam), [0, 0, 0])
        sums[0] += got.frames
        sums[1] += got.dropped
        sums[2] += got.reconnects
    paths["camera_frames"] = write_csv(
        out / "camera_frames_by_hour.csv",
        ["hour", "camera", "frames", "dropped", "reconnects"],
        ([h, c, *n] for (h, c), n in sorted(health.items())),
    )
    gaps = [
        g
        for g in db.gaps(period.store)
        if (period.end is None or g.start < period.end)
        and (period.start is None or g.end > period.start)
    ]
    paths["camera_gaps"] = write_csv(
        out / "camera_gaps.csv",
        ["camera", "from", "to", "seconds"],
        ([g.camera, _iso(g.start), _iso(g.end), round(g.end - g.start, 1)] for g in gaps),
    )
    return paths


def parse_time(text: str) -> float:
    """Epoch seconds of a local date or date and time, ISO 8601 (``2026-12-02``,
    ``2026-12-02T09:30``)."""
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise ValueError(
            f"expected a date or a date and time such as 2026-12-02 or 2026-12-02T09:30, "
            f"got {text!r}"
        ) from None


def only_store(db: ResultsDB) -> str:
    names = db.store_names()
    if len(names) != 1:
        raise DatabaseError(
            f"the database holds {len(names)} stores ({', '.join(names) or 'none'}): name one "
            "with --store"
        )
    return names[0]


def _hour_key(epoch: float) -> str:
    return datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:00")


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch).isoformat(timespec="seconds")
