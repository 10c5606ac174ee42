"""How much of a store's error is who is who: the report against the same observations grouped
by the truth, and where relinking mixes or splits people.

    python benchmarks/diagnose_identities.py [--store DIR]

A tuning tool, like ``replay_peopleflow.py`` (whose cached detections it replays): use it on
tuning stores, never to choose things on evaluation stores. Each observation (a person at one
instant, as the pipeline made it) is matched to the true person nearest it then (one
assignment per instant, within ``--within`` metres). It prints:

1. the four figures with the report's identities, and with the truth's (the matched
   observations grouped by true person, everything after that as in a run): what perfect
   identities would give with this detection and placing;
2. after each of relinking's steps (tracklets, joining, doors): how many groups hold two true
   people, and how many true people are split over two groups or more (counting a true person
   in a group where it has ``MAJOR`` or more of its observations);
3. for each pair of groups one true person is split over: whether the look (over the join's
   limit) or the check that one person could have made both kept them apart;
4. where tracklets break: of the steps of a true person from one instant seen to the next, how
   many land in another tracklet, and why (``breaks``);
5. the four figures with the tracklets cut wherever the true person changes, everything after
   that as in a run: what purer tracklets alone would give;
6. per zone, how many true people stand in it at an instant, how many observations the
   pipeline made there, and the share of the true people's instants there matched by one:
   where it is low, people are not seen at all (a dense crowd hides them from every camera),
   and no grouping can bring their dwell back;
7. how many of the report's tracks (and the truth's) visit a door mid-way, and at how many
   of those the true person there came in by that door: a newcomer joined onto someone lost
   inside (why the move into such a door is not a transition, ``analytics.tally``).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import peopleflow.app as app  # noqa: E402
import peopleflow.relink as relink  # noqa: E402
from peopleflow.analytics import FloorTrack, analyse, dwell_weights, visits_of  # noqa: E402
from peopleflow.config import FloorPlan, Zone, load_config  # noqa: E402
from peopleflow.generate import load_truth  # noqa: E402
from peopleflow.people import Observations, Person  # noqa: E402
from peopleflow.relink import RelinkOptions, _People, _tracklets  # noqa: E402
from peopleflow.track import appearance_distance, roots_distance  # noqa: E402
from replay_peopleflow import DEFAULT_STORE, above, cached_detections, replay_store  # noqa: E402

MAJOR = 6  # observations of one true person that make them part of a group
LOOK_STEPS = 10  # a tracklet's look when judging a break: the mean of this many last ones


def true_places(truth: list[FloorTrack], now: float) -> tuple[list[int], np.ndarray]:
    """The true people there at ``now`` (indices into ``truth``) and their places (m, 2)."""
    there = [k for k, tr in enumerate(truth) if len(tr.t) and tr.t[0] <= now <= tr.t[-1]]
    places = np.array(
        [[np.interp(now, truth[k].t, truth[k].xy[:, i]) for i in (0, 1)] for k in there]
    ).reshape(-1, 2)
    return there, places


def true_person_of(obs: Observations, truth: list[FloorTrack], within: float) -> np.ndarray:
    """For each observation, the index of the true person it is (-1: none within reach)."""
    from scipy.optimize import linear_sum_assignment

    who = np.full(len(obs.t), -1)
    for now in np.unique(obs.t):
        cur = np.flatnonzero(obs.t == now)
        there, places = true_places(truth, now)
        if not there:
            continue
        apart = np.linalg.norm(obs.xy[cur][:, None] - places[None], axis=2)
        rows, cols = linear_sum_assignment(np.where(apart <= within, apart, 1e6))
        for r, c in zip(rows, cols, strict=True):
            if apart[r, c] <= within:
                who[cur[r]] = there[c]
    return who


def seen_per_zone(
    obs: Observations, who: np.ndarray, truth: list[FloorTrack], zones: tuple[Zone, ...]
) -> dict[str, tuple[float, float, float]]:
    """Per zone, over the instants observed: (true people in it per instant, observations in it
    per instant, the share of true people's instants in it that an observation matched)."""
    times = np.unique(obs.t)
    # each true person's places at the instants observed in their span, and the instants an
    # observation matched them: once per person, not once per zone
    spans = []
    for k, tr in enumerate(truth):
        at = times[(times >= tr.t[0]) & (times <= tr.t[-1])] if len(tr.t) else times[:0]
        place = np.c_[np.interp(at, tr.t, tr.xy[:, 0]), np.interp(at, tr.t, tr.xy[:, 1])]
        spans.append((at, place, np.isin(at, obs.t[who == k])))
    n = max(len(times), 1)
    out = {}
    for zone in zones:
        present = matched = 0
        for at, place, seen in spans:
            inside = zone.contains(place) if len(at) else np.zeros(0, bool)
            present += int(inside.sum())
            matched += int(seen[inside].sum())
        observed = int(zone.contains(obs.xy).sum()) if len(obs.t) else 0
        out[zone.name] = (present / n, observed / n, matched / present if present else 1.0)
    return out


def doors_visited_mid_way(
    tracks: list[FloorTrack], truth: list[FloorTrack], plan: FloorPlan, min_visit: float
) -> tuple[int, int, int]:
    """(door visits in ``tracks`` that are neither a track's first visit nor its last, those
    where the true person nearest the visit's first sample came in by that door, the same
    count of mid-way door visits in ``truth``)."""

    def visits(track: FloorTrack) -> list[tuple[int, int]]:
        zone = plan.zone_of(track.xy)
        return visits_of(zone, dwell_weights(track.t), min_visit, track.t, track.xy, plan)

    def mid_way_doors(seen: list[tuple[int, int]]) -> list[tuple[int, int]]:
        return [v for v in seen[1:-1] if plan.zones[v[0]].door]

    true_visits = [visits(tr) for tr in truth]  # once each: the first, and the mid-way doors
    came_in = [(seen or [(-1, 0)])[0][0] for seen in true_visits]  # the first visit's zone
    mid = newcomers = 0
    for track in tracks:
        for door, start in mid_way_doors(visits(track)):
            mid += 1
            there, places = true_places(truth, float(track.t[start]))
            if there:
                nearest = int(np.argmin(np.linalg.norm(places - track.xy[start], axis=1)))
                newcomers += int(came_in[there[nearest]] == door)
    return mid, newcomers, sum(len(mid_way_doors(seen)) for seen in true_visits)


def by_truth(obs: Observations, who: np.ndarray) -> list[Person]:
    """The matched observations grouped by true person, as ``people_of`` groups them."""
    out = []
    for k in np.unique(who[who >= 0]):
        members = np.flatnonzero(who == k)
        members = members[np.argsort(obs.t[members], kind="stable")]
        times, first = np.unique(obs.t[members], return_index=True)
        out.append(Person(members, times, obs.xy[members[first]]))
    return sorted(out, key=lambda p: float(p.t[0]))


def mixing(groups: list[np.ndarray], who: np.ndarray) -> tuple[int, int, int]:
    """(groups holding two true people or more, true people split over two groups or more,
    true people counted)."""
    holding: Counter[int] = Counter()
    mixed = 0
    for members in groups:
        ids, counts = np.unique(who[members][who[members] >= 0], return_counts=True)
        major = ids[counts >= MAJOR]
        mixed += len(major) > 1
        holding.update(int(k) for k in major)
    return mixed, sum(n > 1 for n in holding.values()), len(holding)


def breaks(obs: Observations, label: np.ndarray, who: np.ndarray, o: RelinkOptions) -> Counter[str]:
    """Each true person's steps from one instant seen to the next (their first observation at
    each), counted as ``kept`` (same tracklet) or by why the tracklet broke, judged against
    the tracklet's look then (the mean of its last ``LOOK_STEPS`` observations): ``unseen``
    (hidden longer than ``coast``), ``look`` (over the veto), ``far`` (beyond ``link``), or
    ``other`` (the assignment gave the observation to another tracklet or a double)."""
    assert obs.looks is not None
    out: Counter[str] = Counter()
    for k in np.unique(who[who >= 0]):
        mine = np.flatnonzero(who == k)
        mine = mine[np.argsort(obs.t[mine], kind="stable")]
        mine = mine[np.unique(obs.t[mine], return_index=True)[1]]
        for a, b in zip(mine[:-1], mine[1:], strict=True):
            if label[a] == label[b]:
                out["kept"] += 1
                continue
            before = np.flatnonzero((label == label[a]) & (obs.t <= obs.t[a]))[-LOOK_STEPS:]
            unlike = appearance_distance(obs.looks[before].mean(0)[None], obs.looks[b][None])
            if obs.t[b] - obs.t[a] > o.coast:
                out["unseen"] += 1
            elif float(unlike[0, 0]) > o.link_look:
                out["look"] += 1
            elif float(np.linalg.norm(obs.xy[b] - obs.xy[a])) > o.link:
                out["far"] += 1
            else:
                out["other"] += 1
    return out


def cut_where_the_truth_changes(label: np.ndarray, who: np.ndarray) -> np.ndarray:
    """Tracklet numbers with each tracklet split by true person (a tracklet's unmatched
    observations make a piece of their own)."""
    key = np.c_[label, np.where(who >= 0, who, -1)]
    return np.unique(key, axis=0, return_inverse=True)[1].ravel()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", type=Path, default=DEFAULT_STORE, help="a generated store")
    ap.add_argument("--within", type=float, default=1.0, help="metres: farthest match")
    args = ap.parse_args(argv)
    config = args.store / "store.toml"
    if not config.is_file():
        sys.exit(f"{config} not found: run `peopleflow generate` (or make demo) first")
    cfg = load_config(config)
    truth, _ = load_truth(args.store / "truth.npz")
    d = above(cached_detections(cfg, args.store, None), cfg.detector.score)
    instants, coverage, _ = replay_store(cfg, d)
    obs = Observations.of(instants)
    if obs.looks is None:
        sys.exit("the replay gave no looks: nothing to relink")
    who = true_person_of(obs, truth, args.within)
    print(f"{np.mean(who >= 0):.0%} of {len(obs)} observations matched to {len(truth)} people")
    true = analyse(truth, cfg.plan, min_visit=cfg.min_visit)
    print(f"{'true dwell':>20}: " + ", ".join(f"{z} {s:.0f} s" for z, s in true.zone_dwell.items()))

    def truths_people(o: Observations, relinked: bool, doors: object) -> list[Person]:
        return by_truth(o, who)

    o = RelinkOptions()
    label = _tracklets(obs.t, obs.xy, obs.looks, o)
    pure = cut_where_the_truth_changes(label, who)
    real_tracklets = relink._tracklets

    def pure_people(o_: Observations, relinked: bool, doors: tuple[Zone, ...]) -> list[Person]:
        assert len(o_.t) == len(pure)  # the same observations, in the same order
        relink._tracklets = lambda *_: pure
        try:
            return relink.relink_people(o_.t, o_.xy, o_.looks, doors)
        finally:
            relink._tracklets = real_tracklets

    reports_people = app.people_of
    for name, grouping in (
        ("report's identities", reports_people),
        ("truth's", truths_people),
        ("pure tracklets'", pure_people),
    ):
        app.people_of = grouping  # store_report groups the observations through it
        people, report = app.store_report(instants, cfg, coverage)
        if grouping is reports_people:
            reports_tracks = people.tracks
        figures = app.score(report, truth, cfg)
        print(f"{name:>20}: " + " / ".join(f"{v:.3f}" for v in figures.values()))
        print(f"{'':>22}{people.verdict.describe()}")
        print(
            f"{'':>22}dwell: " + ", ".join(f"{z} {s:.0f} s" for z, s in report.zone_dwell.items())
        )

    app.people_of = reports_people
    groups = _People(obs.t, obs.xy, obs.looks, label, o)
    steps = [("tracklets", [np.flatnonzero(label == k) for k in range(label.max() + 1)])]
    groups.join(o.join_look, o.misfit)
    steps.append(("joined", list(groups.members.values())))
    split_pairs: Counter[str] = Counter()
    for k in np.unique(who[who >= 0]):
        mine = [g for g, m in groups.members.items() if np.sum(who[m] == k) >= MAJOR]
        for i, a in enumerate(mine):
            for b in mine[i + 1 :]:
                unlike = float(roots_distance(groups.roots[a][None], groups.roots[b][None])[0, 0])
                fits = groups._fits(a, b, o.misfit)
                why = [w for w, no in (("look", unlike > o.join_look), ("fit", not fits)) if no]
                split_pairs[" and ".join(why) or "neither"] += 1
    if cfg.plan.doors:
        groups.join_pieces(cfg.plan.doors, o)
        steps.append(("doors", list(groups.members.values())))
    for name, members in steps:
        mixed, split, counted = mixing(members, who)
        print(
            f"after {name:>9}: {len(members)} groups; {mixed} hold two true people or more; "
            f"{split} of {counted} true people are split over two or more"
        )
    print(
        "split pairs after joining, kept apart by: "
        + (", ".join(f"{k} {n}" for k, n in split_pairs.items()) or "none")
    )
    steps_ = breaks(obs, label, who, o)
    broken = sum(steps_.values()) - steps_["kept"]
    print(
        f"tracklet breaks: {broken} of {sum(steps_.values())} steps of a true person; by "
        + ", ".join(f"{k} {n}" for k, n in steps_.most_common() if k != "kept")
    )
    print("seen at all, per zone (true people at an instant, observations there, share matched):")
    for zone, (present, observed, share) in seen_per_zone(obs, who, truth, cfg.plan.zones).items():
        print(f"{zone:>20}: {present:.1f} people, {observed:.1f} observations, {share:.0%} matched")
    mid, newcomers, true_mid = doors_visited_mid_way(reports_tracks, truth, cfg.plan, cfg.min_visit)
    print(
        f"doors visited mid-way: {mid} by the report's tracks, at {newcomers} of them by one "
        f"who came in there; {true_mid} by the truth's"
    )


if __name__ == "__main__":
    main()
