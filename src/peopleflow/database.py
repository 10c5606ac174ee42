"""The results database: SQLite (one file, the default) or PostgreSQL, through SQLAlchemy Core.

Why SQLAlchemy Core: one schema and one set of statements for both engines (types, upserts,
transactions), connection pooling for the web page's readers, and no ORM: the rows are sums
per window, read by ``GROUP BY``. Schema version in ``meta``; ``ResultsDB.open`` creates the
tables on first start and refuses a database of another version.

Every result row carries the batch that wrote it (``peopleflow.recorder.Batch``), and every
table's primary key includes it: a batch is written whole, in one transaction, together with
the recorder's state and position in ``stores``, or not at all; a batch written twice fails on
its keys instead of doubling anything. A period's figures are sums over the windows it holds
(``tally``); ``windows`` lists the windows closed (no person still held can add to them).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from peopleflow.analytics import Tally
from peopleflow.config import FloorPlan
from peopleflow.recorder import Batch, Gap

SCHEMA_VERSION = 1
metadata = sa.MetaData()


def _keyed(name: str, *columns: sa.Column[Any]) -> sa.Table:
    """A results table: store, window start and batch, then its own columns; all but the last
    one (the value) in the primary key."""
    cols: list[sa.schema.SchemaItem] = [
        sa.Column("store", sa.String(200), primary_key=True),
        sa.Column("window_start", sa.BigInteger, primary_key=True),
        sa.Column("batch", sa.Integer, primary_key=True),
        *columns,
    ]
    return sa.Table(name, metadata, *cols)


meta = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("value", sa.String(200), nullable=False),
)
stores = sa.Table(
    "stores",
    metadata,
    sa.Column("store", sa.String(200), primary_key=True),
    sa.Column("origin", sa.Float, nullable=False),  # epoch seconds of video time 0 (files)
    sa.Column("plan", sa.Text, nullable=False),  # the floor plan, zones and visit rule (JSON)
    sa.Column("batch", sa.Integer, nullable=False),  # the last batch written
    sa.Column("position", sa.Float),  # epoch seconds of the last instant accounted for
    sa.Column("state", sa.LargeBinary),  # the recorder, to start again from
    sa.Column("updated", sa.Float, nullable=False),  # wall clock of the last write
)
windows = sa.Table(
    "windows",
    metadata,
    sa.Column("store", sa.String(200), primary_key=True),
    sa.Column("window_start", sa.BigInteger, primary_key=True),
    sa.Column("batch", sa.Integer, nullable=False),  # the batch that closed it
)
batches = sa.Table(
    "batches",
    metadata,
    sa.Column("store", sa.String(200), primary_key=True),
    sa.Column("batch", sa.Integer, primary_key=True),
    sa.Column("position", sa.Float, nullable=False),
    sa.Column("written", sa.Float, nullable=False),  # wall clock
    # wall clock when the batch's first instant was read: written - captured is the lag from
    # camera to database (0: not known)
    sa.Column("captured", sa.Float, nullable=False),
    sa.Column("people", sa.Integer, nullable=False),
    sa.Column("dropped", sa.Integer, nullable=False),
)
zone_dwell = _keyed(
    "zone_dwell",
    sa.Column("zone", sa.String(200), primary_key=True),
    sa.Column("seconds", sa.Float, nullable=False),
)
zone_visits = _keyed(
    "zone_visits",
    sa.Column("zone", sa.String(200), primary_key=True),
    sa.Column("visits", sa.Integer, nullable=False),
)
transitions = _keyed(
    "transitions",
    sa.Column("from_zone", sa.String(200), primary_key=True),
    sa.Column("to_zone", sa.String(200), primary_key=True),
    sa.Column("count", sa.Integer, nullable=False),
)
visitors = _keyed("visitors", sa.Column("count", sa.Integer, nullable=False))
heat_cells = _keyed(
    "heat_cells",
    sa.Column("row", sa.Integer, primary_key=True),
    sa.Column("col", sa.Integer, primary_key=True),
    sa.Column("seconds", sa.Float, nullable=False),
)
camera_frames = _keyed(
    "camera_frames",
    sa.Column("camera", sa.String(200), primary_key=True),
    sa.Column("frames", sa.Integer, nullable=False),  # processed
    sa.Column("dropped", sa.Integer, nullable=False),  # by a live camera, to keep up
    sa.Column("reconnects", sa.Integer, nullable=False),
)
camera_gaps = sa.Table(
    "camera_gaps",
    metadata,
    sa.Column("store", sa.String(200), primary_key=True),
    sa.Column("camera", sa.String(200), primary_key=True),
    sa.Column("start", sa.Float, primary_key=True),
    sa.Column("end", sa.Float, nullable=False),
    sa.Column("batch", sa.Integer, nullable=False),
)


@dataclass(frozen=True)
class BatchRow:
    batch: int
    position: float  # epoch seconds of its last instant
    written: float  # wall clock
    captured: float  # wall clock when its first instant was read (0: not known)


@dataclass(frozen=True)
class CameraCounts:
    frames: int  # processed
    dropped: int  # by a live camera, to keep up with real time
    reconnects: int


def plan_json(plan: FloorPlan, min_visit: float) -> str:
    """What ``stores.plan`` keeps: the floor plan and the visit rule, all a report needs to
    draw the store from the database alone."""
    return json.dumps({"plan": plan.to_json(), "min_visit": min_visit})


class DatabaseError(RuntimeError):
    """The results database cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Resume:
    """Where a store's service stopped: its origin, last batch and the recorder's state."""

    origin: float
    batch: int
    position: float | None
    state: bytes | None


class ResultsDB:
    """One results database (``url``: ``sqlite:///path`` or ``postgresql://...``)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str) -> ResultsDB:
        """Connect, create the schema on first use, check its version."""
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        try:
            engine = sa.create_engine(url)
        except (sa.exc.ArgumentError, ImportError) as exc:
            raise DatabaseError(
                f"--db {url}: expected sqlite:///PATH or postgresql://... ({exc})"
            ) from None
        if engine.dialect.name == "sqlite":
            sa.event.listen(engine, "connect", _sqlite_pragmas)
        db = cls(engine)
        try:
            db._create()
        except sa.exc.OperationalError as exc:
            raise DatabaseError(f"cannot open the database {engine.url!r}: {exc.orig}") from None
        return db

    def _create(self) -> None:
        metadata.create_all(self.engine)
        with self.engine.begin() as con:
            found = con.execute(sa.select(meta.c.value).where(meta.c.key == "schema")).scalar()
            if found is None:
                con.execute(meta.insert().values(key="schema", value=str(SCHEMA_VERSION)))
            elif int(found) != SCHEMA_VERSION:
                raise DatabaseError(
                    f"the database has schema version {found}, this peopleflow writes "
                    f"{SCHEMA_VERSION}: use a new database, or the peopleflow that made it"
                )

    def close(self) -> None:
        self.engine.dispose()

    def resume(self, store: str, origin: float, plan: str) -> Resume:
        """The store's row, made with ``origin`` if it has none yet; ``plan`` (JSON: what the
        report needs to draw the store) is written either way."""
        with self.engine.begin() as con:
            row = con.execute(sa.select(stores).where(stores.c.store == store)).first()
            if row is None:
                con.execute(
                    stores.insert().values(
                        store=store, origin=origin, plan=plan, batch=0, updated=time.time()
                    )
                )
                return Resume(origin, 0, None, None)
            con.execute(stores.update().where(stores.c.store == store).values(plan=plan))
        return Resume(row.origin, row.batch, row.position, row.state)

    def plan(self, store: str) -> tuple[FloorPlan, float]:
        """The store's floor plan and visit rule (``plan_json``), as its service last wrote
        them."""
        with self.engine.connect() as con:
            found = con.execute(sa.select(stores.c.plan).where(stores.c.store == store)).scalar()
        if found is None:
            known = ", ".join(self.store_names()) or "none"
            raise DatabaseError(f"no store {store!r} in the database (stores: {known})")
        saved = json.loads(found)
        return FloorPlan.from_json(saved["plan"]), float(saved["min_visit"])

    def write(self, store: str, batch: Batch) -> None:
        """One batch, whole or not at all; refused if it is not the next one."""
        now = time.time()
        with self.engine.begin() as con:
            done = con.execute(
                stores.update()
                .where(stores.c.store == store, stores.c.batch == batch.number - 1)
                .values(batch=batch.number, position=batch.position, state=batch.state, updated=now)
            )
            if done.rowcount != 1:
                raise DatabaseError(
                    f"store {store!r}: batch {batch.number} does not follow the last one written "
                    "(is another service writing this store?)"
                )
            for table, rows in _rows(store, batch):
                if rows:
                    con.execute(table.insert(), rows)
            con.execute(
                batches.insert().values(
                    store=store,
                    batch=batch.number,
                    position=batch.position,
                    written=now,
                    captured=batch.captured,
                    people=batch.people,
                    dropped=batch.dropped,
                )
            )

    def tally(self, store: str, start: float | None = None, end: float | None = None) -> Tally:
        """The sums of every window that starts in [start, end)."""
        out = Tally()

        def per_window(table: str, keys: list[str], value: str) -> list[tuple[Any, ...]]:
            return self.summed(table, ["window_start", *keys], value, store, start, end)

        for win, zone, seconds in per_window("zone_dwell", ["zone"], "seconds"):
            out.dwell[(int(win), zone)] += float(seconds)
        for win, r, c, seconds in per_window("heat_cells", ["row", "col"], "seconds"):
            out.heat[(int(win), int(r), int(c))] += float(seconds)
        for win, zone, n in per_window("zone_visits", ["zone"], "visits"):
            out.visits[(int(win), zone)] += int(n)
        for win, a, b, n in per_window("transitions", ["from_zone", "to_zone"], "count"):
            out.transitions[(int(win), a, b)] += int(n)
        for win, n in per_window("visitors", [], "count"):
            out.visitors[int(win)] += int(n)
        return out

    def summed(
        self,
        table: str,
        keys: list[str],
        value: str,
        store: str,
        start: float | None = None,
        end: float | None = None,
    ) -> list[tuple[Any, ...]]:
        """``value`` summed over the windows starting in [start, end), per ``keys`` (columns of
        ``table``, one of the results tables): the page's questions, answered by the database
        (a day of a busy store is half a million rows; their sums are a few hundred)."""
        found = metadata.tables[table]
        cols = [found.c[k] for k in keys]
        query = sa.select(*cols, sa.func.sum(found.c[value])).group_by(*cols)
        with self.engine.connect() as con:
            return [tuple(r) for r in con.execute(_period(query, found, store, start, end))]

    def frames(
        self, store: str, start: float | None = None, end: float | None = None
    ) -> Counter[tuple[int, str]]:
        """Frames processed per (window start, camera)."""
        return Counter({k: v.frames for k, v in self.camera_health(store, start, end).items()})

    def camera_health(
        self, store: str, start: float | None = None, end: float | None = None
    ) -> dict[tuple[int, str], CameraCounts]:
        """Frames processed and dropped, and reconnects, per (window start, camera)."""
        cols = [camera_frames.c.window_start, camera_frames.c.camera]
        sums = [sa.func.sum(camera_frames.c[k]) for k in ("frames", "dropped", "reconnects")]
        query = sa.select(*cols, *sums).group_by(*cols)
        with self.engine.connect() as con:
            rows = con.execute(_period(query, camera_frames, store, start, end))
            return {(int(w), c): CameraCounts(int(f), int(d), int(r)) for w, c, f, d, r in rows}

    def gaps(self, store: str) -> list[Gap]:
        query = (
            sa.select(camera_gaps.c.camera, camera_gaps.c.start, camera_gaps.c.end)
            .where(camera_gaps.c.store == store)
            .order_by(camera_gaps.c.start)
        )
        with self.engine.connect() as con:
            return [Gap(c, float(a), float(b)) for c, a, b in con.execute(query)]

    def closed_windows(self, store: str) -> list[int]:
        query = (
            sa.select(windows.c.window_start)
            .where(windows.c.store == store)
            .order_by(windows.c.window_start)
        )
        with self.engine.connect() as con:
            return [int(w) for (w,) in con.execute(query)]

    def batches(self, store: str) -> list[BatchRow]:
        """Every batch written, in order."""
        query = (
            sa.select(batches.c.batch, batches.c.position, batches.c.written, batches.c.captured)
            .where(batches.c.store == store)
            .order_by(batches.c.batch)
        )
        with self.engine.connect() as con:
            return [
                BatchRow(int(b), float(p), float(w), float(c)) for b, p, w, c in con.execute(query)
            ]

    def store_names(self) -> list[str]:
        with self.engine.connect() as con:
            return [s for (s,) in con.execute(sa.select(stores.c.store).order_by(stores.c.store))]


def _period(query: Any, table: sa.Table, store: str, start: float | None, end: float | None) -> Any:
    query = query.where(table.c.store == store)
    if start is not None:
        query = query.where(table.c.window_start >= start)
    if end is not None:
        query = query.where(table.c.window_start < end)
    return query


def _rows(store: str, b: Batch) -> list[tuple[sa.Table, list[dict[str, Any]]]]:
    def keyed(win: int) -> dict[str, Any]:
        return {"store": store, "window_start": win, "batch": b.number}

    t = b.tally
    return [
        (zone_dwell, [{**keyed(w), "zone": z, "seconds": s} for (w, z), s in t.dwell.items()]),
        (zone_visits, [{**keyed(w), "zone": z, "visits": n} for (w, z), n in t.visits.items()]),
        (
            transitions,
            [
                {**keyed(w), "from_zone": a, "to_zone": z, "count": n}
                for (w, a, z), n in t.transitions.items()
            ],
        ),
        (visitors, [{**keyed(w), "count": n} for w, n in t.visitors.items()]),
        (
            heat_cells,
            [{**keyed(w), "row": r, "col": c, "seconds": s} for (w, r, c), s in t.heat.items()],
        ),
        (
            camera_frames,
            [
                {
                    **keyed(w),
                    "camera": c,
                    "frames": b.frames.get((w, c), 0),
                    "dropped": b.frames_dropped.get((w, c), 0),
                    "reconnects": b.reconnects.get((w, c), 0),
                }
                for w, c in sorted({*b.frames, *b.frames_dropped, *b.reconnects})
            ],
        ),
        (
            camera_gaps,
            [
                {
                    "store": store,
                    "camera": g.camera,
                    "start": g.start,
                    "end": g.end,
                    "batch": b.number,
                }
                for g in b.gaps
            ],
        ),
        (windows, [{"store": store, "window_start": w, "batch": b.number} for w in b.closed]),
    ]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers (the web page) never block the writer
    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL keeps it consistent on power loss
    cursor.close()
