"""The live service's recorder and results database: exact against the batch report, resumed
from any batch without loss or doubling, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sqlalchemy")

from peopleflow.analytics import FloorTrack, Tally, accuracy, analyse, tally, to_report  # noqa: E402  # noqa: E402
from peopleflow.coverage import Coverage  # noqa: E402
from peopleflow.database import DatabaseError, ResultsDB  # noqa: E402
from peopleflow.recorder import Batch, Recorder, RecorderSettings  # noqa: E402
from peopleflow.simulate import default_plan, simulate  # noqa: E402
from peopleflow.track import LOOK_SIZE  # noqa: E402
from tests.services.postgres import postgres_server  # noqa: E402

ORIGIN = 1_796_115_600.0  # 2026-12-01 09:00 UTC
PLAN = default_plan()
SHOPPERS = simulate(PLAN, 16, 240, 2.0, 7)  # 4 minutes: people finalised while others walk
PLAN_JSON = json.dumps({"plan": PLAN.to_json(), "min_visit": 5.0})


def _instants() -> list[tuple[float, np.ndarray, np.ndarray, np.ndarray]]:
    """Every instant of the simulated shoppers, as the pipeline gives it (live ids = truth)."""
    looks = {
        s.id: np.random.default_rng(s.id).random(LOOK_SIZE).astype(np.float32) for s in SHOPPERS
    }
    out = []
    for t in np.unique(np.concatenate([s.track.t for s in SHOPPERS])):
        here = [(s.id, s.track.xy[s.track.t == t][0]) for s in SHOPPERS if (s.track.t == t).any()]
        ids = np.array([h[0] for h in here], np.int64)
        xy = np.array([h[1] for h in here]).reshape(-1, 2)
        lk = np.stack([looks[int(i)] for i in ids]) if len(ids) else np.zeros((0, LOOK_SIZE))
        out.append((ORIGIN + float(t), ids, xy, lk))
    return out


def _settings() -> RecorderSettings:
    return RecorderSettings(PLAN, Coverage.everywhere(PLAN, 2), 0.5, relinked=False, min_wall=0)


def _truth() -> list[FloorTrack]:
    return [FloorTrack(s.id, ORIGIN + s.track.t, s.track.xy) for s in SHOPPERS]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    folder = tmp_path_factory.mktemp(request.param)
    if request.param == "sqlite":
        yield f"sqlite:///{folder / 'results.sqlite'}"
        return
    with postgres_server() as url:
        yield url


@pytest.fixture
def db(db_url: str, request: pytest.FixtureRequest) -> Iterator[tuple[ResultsDB, str]]:
    results = ResultsDB.open(db_url)
    try:
        yield results, request.node.name  # one store per test: they share the server
    finally:
        results.close()


def _feed(recorder: Recorder, instants: list, db: ResultsDB, store: str) -> list[Batch]:
    written = []
    for t, ids, xy, looks in instants:
        batch = recorder.add(t, ids, xy, looks, ["cam1", "cam2"])
        if batch is not None:
            db.write(store, batch)
            written.append(batch)
    return written


def test_windows_add_up_to_the_batch_report() -> None:
    whole = analyse(_truth(), PLAN)
    parts = Tally()
    for track in _truth():  # person by person, as the recorder makes them final
        parts.add(tally([track], PLAN))
    assert len(parts.windows()) == 4
    assert accuracy(to_report(parts, PLAN, hour_of=lambda w: 9), whole) == {
        "heatmap_correlation": 1.0,
        "zone_dwell_error": 0.0,
        "visitors_error": 0.0,
        "transition_error": 0.0,
    }


def test_the_database_holds_the_runs_report(db: tuple[ResultsDB, str]) -> None:
    results, store = db
    results.resume(store, ORIGIN, PLAN_JSON)
    recorder = Recorder(_settings())
    batches = _feed(recorder, _instants(), results, store)
    assert recorder.held_observations > 0  # people still walking are not final yet
    results.write(store, recorder.finish())
    assert recorder.held_observations == 0
    assert len(batches) >= 40  # a batch every 5 s of camera time
    got = to_report(results.tally(store), PLAN, hour_of=lambda w: 9)
    assert accuracy(got, analyse(_truth(), PLAN))["zone_dwell_error"] == 0.0
    assert got.visitors == 16 and got.transitions == analyse(_truth(), PLAN).transitions
    assert results.closed_windows(store) == [int(ORIGIN) + 60 * k for k in range(4)]
    frames = results.frames(store)
    assert sum(n for (_, cam), n in frames.items() if cam == "cam1") == len(_instants())
    # A period: the first two windows only.
    early = to_report(results.tally(store, ORIGIN, ORIGIN + 120), PLAN, hour_of=lambda w: 9)
    assert 0 < early.visitors < 16


def test_a_batch_is_written_once(db: tuple[ResultsDB, str]) -> None:
    results, store = db
    results.resume(store, ORIGIN, PLAN_JSON)
    recorder = Recorder(_settings())
    instants = _instants()
    first = _feed(recorder, instants[:30], results, store)[0]
    before = results.tally(store)
    with pytest.raises(DatabaseError, match="does not follow"):
        results.write(store, first)
    assert results.tally(store) == before


@pytest.mark.parametrize("cut", [37, 250])
def test_a_service_killed_after_any_batch_resumes_without_loss_or_doubling(
    db: tuple[ResultsDB, str], cut: int
) -> None:
    results, store = db
    instants = _instants()
    results.resume(store, ORIGIN, PLAN_JSON)
    _feed(Recorder(_settings()), instants[:cut], results, store)  # then killed: no finish
    saved = results.resume(store, 0.0, PLAN_JSON)
    assert saved.origin == ORIGIN and saved.state is not None and saved.position is not None
    recorder = Recorder.restore(_settings(), saved.state)
    rest = [i for i in instants if i[0] > saved.position]
    assert len(rest) < len(instants) - cut + 10  # at most one batch's instants again
    _feed(recorder, rest, results, store)
    results.write(store, recorder.finish())
    got = to_report(results.tally(store), PLAN, hour_of=lambda w: 9)
    assert accuracy(got, analyse(_truth(), PLAN)) == {
        "heatmap_correlation": 1.0,
        "zone_dwell_error": 0.0,
        "visitors_error": 0.0,
        "transition_error": 0.0,
    }
    frames = results.frames(store)
    assert sum(n for (_, cam), n in frames.items() if cam == "cam2") == len(instants)


def test_a_database_of_another_schema_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    ResultsDB.open(url).close()
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as con:
        con.execute(sa.text("UPDATE meta SET value = '99' WHERE key = 'schema'"))
    engine.dispose()
    with pytest.raises(DatabaseError, match="schema version 99"):
        ResultsDB.open(url)
    with pytest.raises(DatabaseError, match="expected sqlite"):
        ResultsDB.open("mysql+nothing://x")


def test_a_state_held_by_a_version_with_other_looks_resumes() -> None:
    # A service upgraded to another kind of look (the histograms' size changed) finds a state
    # whose held observations carry the old looks: it goes on, with nothing lost.
    instants = _instants()
    recorder, batches = Recorder(_settings()), []
    for t, ids, xy, looks in instants[:100]:
        batch = recorder.add(t, ids, xy, looks, ["cam1", "cam2"])
        if batch is not None:
            batches.append(batch)
    with np.load(io.BytesIO(batches[-1].state)) as data:
        held = dict(data)
    assert len(held["looks"]) > 0  # people held, with their looks
    held["looks"] = held["looks"][:, :128]  # the old size
    old = io.BytesIO()
    np.savez(old, **held)
    restored = Recorder.restore(_settings(), old.getvalue())
    tally_ = Tally()
    for b in batches:
        tally_.add(b.tally)
    for t, ids, xy, looks in instants:
        if t > batches[-1].position:
            batch = restored.add(t, ids, xy, looks, ["cam1", "cam2"])
            if batch is not None:
                tally_.add(batch.tally)
    tally_.add(restored.finish().tally)
    got = to_report(tally_, PLAN, hour_of=lambda w: 9)
    assert got.visitors == 16 and got.transitions == analyse(_truth(), PLAN).transitions
