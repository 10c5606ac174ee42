"""The JSON behind every view of the store's web page (``peopleflow.web``), read from the
results database (and, for "now", the running service's ``LiveView``).

A period is ``?period=last-hour`` (the default), ``today``, ``date:YYYY-MM-DD`` or
``hour:YYYY-MM-DDTHH``, or ``?from=ISO&to=ISO`` (local time; a window counts when it starts
in the period). Every answer names its period in epoch seconds and local ISO time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from peopleflow.analytics import HEAT_CELL
from peopleflow.database import ResultsDB
from peopleflow.live import LiveView
from peopleflow.period import local_hour, parse_time

PERIODS = ("last-hour", "today", "date:YYYY-MM-DD", "hour:YYYY-MM-DDTHH")


class BadRequest(ValueError):
    """A request's parameters are wrong; the message says what was expected."""


@dataclass(frozen=True)
class Period:
    start: float
    end: float

    def to_json(self) -> dict[str, Any]:
        iso = {k: datetime.fromtimestamp(v).isoformat(timespec="seconds") for k, v in
               (("from", self.start), ("to", self.end))}  # fmt: skip
        return {"from_epoch": self.start, "to_epoch": self.end, **iso}


def period_of(query: dict[str, str], now: float | None = None) -> Period:
    """The period a request asks for (see the module's docstring)."""
    now = time.time() if now is None else now
    try:
        if "from" in query or "to" in query:
            start = parse_time(query["from"]) if "from" in query else 0.0
            end = parse_time(query["to"]) if "to" in query else now + 1
            return Period(start, end)
        name = query.get("period", "last-hour")
        if name == "last-hour":
            return Period(now - 3600, now + 1)
        if name == "today":
            day = datetime.fromtimestamp(now).replace(hour=0, minute=0, second=0, microsecond=0)
            return Period(day.timestamp(), (day + timedelta(days=1)).timestamp())
        if name.startswith("date:"):
            day = datetime.fromisoformat(name[5:])
            return Period(day.timestamp(), (day + timedelta(days=1)).timestamp())
        if name.startswith("hour:"):
            hour = datetime.fromisoformat(name[5:] + ":00")
            return Period(hour.timestamp(), (hour + timedelta(hours=1)).timestamp())
    except (ValueError, KeyError):
        pass
    raise BadRequest(f"period: expected one of {', '.join(PERIODS)}, or from=ISO&to=ISO")


class StoreData:
    """The answers for one store of a results database."""

    def __init__(self, db: ResultsDB, store: str, live: LiveView | None = None) -> None:
        self.db, self.store, self.live = db, store, live
        self.plan, self.min_visit = db.plan(store)

    def store_json(self) -> dict[str, Any]:
        return {"store": self.store, "min_visit_s": self.min_visit, **self.plan.to_json()}

    def people_now(self) -> dict[str, Any]:
        now = self.live.people if self.live is not None else None
        if now is None:
            return {"at": None, "age_s": None, "people": [], "cameras": []}
        people = [{"id": i, "x": x, "y": y} for i, (x, y) in zip(now.ids, now.xy, strict=True)]
        return {
            "at": now.at,
            "age_s": round(time.time() - now.at, 1),
            "people": people,
            "cameras": now.cameras,
        }

    def heatmap(self, period: Period) -> dict[str, Any]:
        cells = self._sums("heat_cells", ["row", "col"], "seconds", period)
        rows, cols = (
            int(np.ceil(self.plan.height / HEAT_CELL)),
            int(np.ceil(self.plan.width / HEAT_CELL)),
        )
        return {
            "period": period.to_json(),
            "cell_m": HEAT_CELL,
            "rows": rows,
            "cols": cols,
            "total_seconds": round(sum(float(s) for _, _, s in cells), 2),
            "cells": [[int(r), int(c), round(float(s), 3)] for r, c, s in sorted(cells)],
        }

    def flows(self, period: Period) -> dict[str, Any]:
        centres = {
            z.name: [round(float(v), 3) for v in z.polygon.mean(axis=0)] for z in self.plan.zones
        }
        pairs = self._sums("transitions", ["from_zone", "to_zone"], "count", period)
        visits = self._sums("zone_visits", ["zone"], "visits", period)
        return {
            "period": period.to_json(),
            "zones": centres,
            "transitions": [{"from": a, "to": b, "count": int(n)} for a, b, n in sorted(pairs)],
            "visits": {z: int(n) for z, n in visits},
        }

    def dwell(self, period: Period) -> dict[str, Any]:
        total = dict.fromkeys(self.plan.zone_names, 0.0)
        by_hour: dict[str, dict[int, float]] = {z: {} for z in self.plan.zone_names}
        for win, zone, seconds in self._sums("zone_dwell", ["window_start", "zone"], "seconds",
                                             period):  # fmt: skip
            total[zone] = total.get(zone, 0.0) + float(seconds)
            hours = by_hour.setdefault(zone, {})
            hours[local_hour(win)] = hours.get(local_hour(win), 0.0) + float(seconds)
        return {
            "period": period.to_json(),
            "total_s": {z: round(s, 2) for z, s in total.items()},
            "by_hour_s": {
                z: {str(h): round(s, 2) for h, s in sorted(hours.items())}
                for z, hours in by_hour.items()
            },
        }

    def visitors(self, period: Period) -> dict[str, Any]:
        by_hour: dict[int, int] = {}
        for win, n in self._sums("visitors", ["window_start"], "count", period):
            by_hour[local_hour(win)] = by_hour.get(local_hour(win), 0) + int(n)
        return {
            "period": period.to_json(),
            "total": sum(by_hour.values()),
            "by_hour": {str(h): n for h, n in sorted(by_hour.items())},
        }

    def cameras(self, period: Period) -> dict[str, Any]:
        out: dict[str, dict[str, Any]] = {}
        for what in ("frames", "dropped", "reconnects"):
            for cam, n in self._sums("camera_frames", ["camera"], what, period):
                out.setdefault(cam, {})[what] = int(n)
        windows = len(self._sums("camera_frames", ["window_start"], "frames", period))
        seconds = max(1.0, windows * 60.0)
        last = self.live.last_frame if self.live is not None else {}
        for cam, row in out.items():
            row["fps"] = round(row["frames"] / seconds, 2)
            row["last_frame_age_s"] = round(time.time() - last[cam], 1) if cam in last else None
        gaps = [
            {"camera": g.camera, "from_epoch": g.start, "to_epoch": g.end,
             "seconds": round(g.end - g.start, 1)}
            for g in self.db.gaps(self.store)
            if g.start < period.end and g.end > period.start
        ]  # fmt: skip
        return {"period": period.to_json(), "cameras": dict(sorted(out.items())), "gaps": gaps}

    def pipeline(self) -> dict[str, Any]:
        stats = self.live.stats if self.live is not None else None
        if stats is None:
            return {"running": False, "pipelines": [], "tasks": []}
        return {
            "running": True,
            "elapsed_s": round(stats.elapsed, 1),
            "pipelines": [
                {
                    "name": p.name,
                    "tasks": list(p.tasks),
                    "busy": round(p.busy, 3),
                    "cpu": round(p.cpu, 3),
                    "restarts": p.restarts,
                }
                for p in stats.pipelines
            ],  # fmt: skip
            "tasks": [
                {
                    "name": t.name,
                    "items_out": t.items_out,
                    "queue": t.queue,
                    "capacity": t.capacity,
                    "dead_letters": t.dead_letters,
                    "p99_s": round(t.p99, 4),
                }
                for t in stats.tasks.values()
            ],  # fmt: skip
        }

    def _sums(self, table: str, keys: list[str], value: str, period: Period) -> list[Any]:
        return self.db.summed(table, keys, value, self.store, period.start, period.end)
