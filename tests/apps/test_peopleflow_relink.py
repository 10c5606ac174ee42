"""The report's identities, decided again over the whole run (peopleflow.relink)."""

import heapq
from types import SimpleNamespace

import numpy as np

from peopleflow.app import floor_tracks
from peopleflow.config import Zone
from peopleflow.coverage import Coverage
from peopleflow.relink import RelinkOptions, _People, _tracklets, relink
from peopleflow.simulate import default_plan
from peopleflow.track import HIST_BINS, HISTOGRAMS, LOOK_SIZE, appearance_distance

STEP = 0.5  # seconds between instants: 2 frames per second
NOISE = 0.005  # per histogram bin, before normalising
DOOR = Zone("entrance", np.array([[0.0, 0.0], [3.0, 0.0], [3.0, 3.0], [0.0, 3.0]]), door=True)


def _look(colour: int, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """Every histogram of the look (each body part, each channel) at level ``colour``."""
    v = np.zeros((HISTOGRAMS, HIST_BINS), np.float32)
    v[:, colour] = 1.0
    if noise:
        v += np.random.default_rng(seed).uniform(0, noise, v.shape).astype(np.float32)
        v /= v.sum(axis=1, keepdims=True)
    return v.reshape(LOOK_SIZE)


def _walk(start: float, end: float, a: tuple[float, float], b: tuple[float, float]) -> tuple:
    t = np.arange(start, end + 1e-9, STEP)
    f = (t - start) / max(end - start, 1e-9)
    return t, np.c_[a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1])]


def _observations(*people: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(t, xy, looks, who) from each person's (t, xy, colour)."""
    t = np.concatenate([p[0] for p in people])
    xy = np.concatenate([p[1] for p in people])
    looks = np.concatenate(
        [np.stack([_look(p[2], NOISE, seed=k) for k in range(len(p[0]))]) for p in people]
    )
    who = np.concatenate([np.full(len(p[0]), i) for i, p in enumerate(people)])
    return t, xy, looks, who


def _who_is_where(
    people: list[tuple[np.ndarray, np.ndarray]], t: np.ndarray, xy: np.ndarray, who: np.ndarray
) -> list[set[int]]:
    """For each relinked person, which true people its places came from."""
    out = []
    for ts, places in people:
        mine = set()
        for s, p in zip(ts, places, strict=True):
            k = np.flatnonzero((t == s) & (np.linalg.norm(xy - p, axis=1) < 1e-6))
            mine.update(int(who[i]) for i in k)
        out.append(mine)
    return out


def test_two_people_crossing_keep_their_own_identities() -> None:
    # A walks left to right, B right to left; they pass within 0.1 m at the same instant
    a = (*_walk(0, 10, (2.0, 5.0), (12.0, 5.0)), 3)
    b = (*_walk(0, 10, (12.0, 5.1), (2.0, 5.1)), 20)
    t, xy, looks, who = _observations(a, b)
    people = relink(t, xy, looks)
    assert sorted(_who_is_where(people, t, xy, who), key=min) == [{0}, {1}]
    for ts, _ in people:
        assert len(ts) == len(a[0])  # each whole, one place per instant


def test_look_alikes_who_cross_are_told_apart_by_how_they_walk() -> None:
    # Six people in the same dark clothes: three pairs, 5 m apart, each pair crossing at an
    # angle (passing 0.6 m apart). Their looks cannot tell them apart; where each walks can.
    # (Tracklets broken wherever two were near, then joined by look, mixed the pairs up.)
    walks = []
    for pair in range(3):
        y = 3.0 + 5.0 * pair
        walks.append(_walk(0, 10, (2.0, y - 2.0), (12.0, y + 2.0)))
        walks.append(_walk(0, 10, (2.0, y + 2.6), (12.0, y - 1.4)))
    t, xy, looks, who = _observations(*[(ts, ps, 5) for ts, ps in walks])
    people = relink(t, xy, looks)
    assert sorted(_who_is_where(people, t, xy, who), key=min) == [{k} for k in range(6)]


def test_a_person_detected_twice_at_once_is_one_person() -> None:
    # Every other instant a second box (0.4 m off) finds the same walker: one person.
    ts, ps = _walk(0, 10, (2.0, 2.0), (12.0, 8.0))
    twice = ts[::2]
    t = np.r_[ts, twice]
    xy = np.r_[ps, ps[::2] + [0.4, 0.0]]
    looks = np.stack([_look(9, NOISE, seed=k) for k in range(len(t))])
    (person,) = relink(t, xy, looks)
    assert np.array_equal(person[0], ts)  # one place per instant


def _blend(main: int, other: int, share: float) -> np.ndarray:
    """A look with ``share`` of every histogram at level ``other``, the rest at ``main``."""
    return (1 - share) * _look(main) + share * _look(other)


def test_two_shoppers_standing_side_by_side_who_look_different_stay_two() -> None:
    # Two shoppers stand 1.2 m apart at the checkout for 30 s; both are hidden from 10 to 14 s
    # (their tracklets end), and their looks differ by 0.2: alike enough to be joined by look
    # (join_look), but not alike enough for one person seen by two cameras 1.2 m apart.
    ts = np.arange(0.0, 30.0, STEP)
    ts = ts[(ts < 10) | (ts >= 14)]
    t = np.r_[ts, ts]
    xy = np.r_[np.tile([5.0, 5.0], (len(ts), 1)), np.tile([6.2, 5.0], (len(ts), 1))]
    a, b = _blend(5, 6, 0.2), _blend(5, 7, 0.2)
    assert 0.15 < appearance_distance(a[None], b[None])[0, 0] < RelinkOptions().join_look
    looks = np.r_[np.tile(a, (len(ts), 1)), np.tile(b, (len(ts), 1))]
    who = np.r_[np.zeros(len(ts), int), np.ones(len(ts), int)]
    people = relink(t, xy, looks)
    assert sorted(_who_is_where(people, t, xy, who), key=min) == [{0}, {1}]
    # Where one person's two places at one instant may be 2 m apart whatever the look (the rule
    # before), the two are one.
    assert len(relink(t, xy, looks, options=RelinkOptions(together_look=1.0))) == 1
    # One person whom two cameras placed 1.2 m apart (the places not merged) looks alike in
    # both: still one.
    (person,) = relink(t, xy, np.tile(a, (len(t), 1)))
    assert np.array_equal(person[0], ts)  # one place per instant


def test_a_person_hidden_for_a_while_is_one_person_but_a_stranger_is_not() -> None:
    t1, p1 = _walk(0, 6, (2.0, 2.0), (6.0, 6.0))
    t2, p2 = _walk(12, 20, (8.0, 6.0), (14.0, 6.0))  # 6 s behind a shelf, then on
    far_t, far_p = _walk(12, 20, (6.0, 9.0), (12.0, 9.0))  # someone else, elsewhere
    t, xy, looks, who = _observations((np.r_[t1, t2], np.r_[p1, p2], 7), (far_t, far_p, 25))
    people = relink(t, xy, looks)
    assert sorted(_who_is_where(people, t, xy, who), key=min) == [{0}, {1}]


def test_a_jump_no_one_could_walk_is_two_people() -> None:
    t1, p1 = _walk(0, 5, (2.0, 2.0), (4.0, 2.0))
    t2, p2 = _walk(5.5, 10, (18.0, 10.0), (16.0, 10.0))  # 15 m in half a second
    t, xy, looks, who = _observations((np.r_[t1, t2], np.r_[p1, p2], 7))
    assert len(relink(t, xy, looks)) == 2


def test_a_piece_that_begins_away_from_the_door_joins_the_person_it_fits() -> None:
    # one person, whose look changes halfway (a coat taken off, light from a window): the two
    # halves are too unlike to join on looks alone, but the second half begins mid-store
    t1, p1 = _walk(0, 8, (1.5, 1.0), (8.0, 6.0))
    t2, p2 = _walk(8.5, 16, (8.3, 6.2), (1.5, 1.0))
    first = np.stack([_look(7, NOISE, k) for k in range(len(t1))])
    changed = [0.36 * _look(7, NOISE, k) + 0.64 * _look(9, NOISE, k) for k in range(len(t2))]
    second = np.stack(changed)
    t, xy, looks = np.r_[t1, t2], np.r_[p1, p2], np.r_[first, second]
    unlike = float(appearance_distance(first.mean(0)[None], second.mean(0)[None])[0, 0])
    o = RelinkOptions()
    assert o.join_look < unlike < o.door_look  # the case this rule is for
    assert len(relink(t, xy, looks)) == 2  # no doors configured: left as they are
    (person,) = relink(t, xy, looks, doors=(DOOR,))
    assert np.array_equal(person[0], t)


def test_floor_tracks_relink_the_pipelines_instants_and_can_leave_them() -> None:
    # the live tracker swapped the two at the crossing (ids 1 and 2 trade places at t = 5)
    a_t, a_p = _walk(0, 10, (2.0, 5.0), (12.0, 5.0))
    b_t, b_p = _walk(0, 10, (12.0, 5.1), (2.0, 5.1))
    instants = []
    for k, ts in enumerate(a_t):
        swapped = ts > 5
        instants.append(
            SimpleNamespace(
                ts=ts,
                ids=np.array([2, 1] if swapped else [1, 2]),
                xy=np.stack([a_p[k], b_p[k]]),
                looks=np.stack([_look(3, NOISE, k), _look(20, NOISE, k)]),
            )
        )
    everywhere = Coverage.everywhere(default_plan())
    relinked = floor_tracks(instants, everywhere).tracks
    live = floor_tracks(instants, everywhere, relinked=False).tracks
    for tracks in (relinked, live):
        assert len(tracks) == 2
    # relinked: each identity keeps walking one way; live: each turns back at the swap
    assert all(
        np.all(np.diff(tr.xy[:, 0]) * np.sign(tr.xy[-1, 0] - tr.xy[0, 0]) > 0) for tr in relinked
    )
    assert all(abs(tr.xy[-1, 0] - tr.xy[0, 0]) < 1.0 for tr in live)


def test_no_observations_is_no_one() -> None:
    assert relink(np.zeros(0), np.zeros((0, 2)), np.zeros((0, LOOK_SIZE))) == []


def _join_with_one_heap(people: _People, most_unlike: float, misfit: float) -> None:
    """The joining step as first written, for reference: one heap of every pair, the pairs of a
    joined group pushed again and the stale ones thrown away as they come off."""

    def pairs(a: int, later_only: bool) -> list[tuple[float, int, int, int, int]]:
        c = people._candidates(a, most_unlike, later_only)  # the same pairs, as a list
        return [
            (float(d), a, int(k), c.version, int(v))
            for d, k, v in zip(c.unlike, c.others, c.versions, strict=True)
        ]

    heap = [pair for a in range(len(people.alive)) for pair in pairs(a, True)]
    heapq.heapify(heap)
    while heap:
        _, a, b, va, vb = heapq.heappop(heap)
        if not (people.alive[a] and people.alive[b]):
            continue
        if people.version[a] != va or people.version[b] != vb:
            continue
        if people._fits(a, b, misfit):
            people._merge(a, b)
            for pair in pairs(a, False):
                heapq.heappush(heap, pair)


def test_joining_gives_what_one_heap_of_every_pair_gives() -> None:
    # Forty shoppers in four alike colours, each seen in pieces (hidden now and then) and
    # sometimes twice at once: many pairs alike enough to be tried, most of them not one person.
    rng = np.random.default_rng(7)
    walkers = []
    for _ in range(40):
        start = float(rng.uniform(0, 60)) // STEP * STEP
        t, xy = _walk(start, start + float(rng.uniform(10, 40)), *rng.uniform(0, 15, (2, 2)))
        seen = rng.uniform(size=len(t)) > 0.15
        seen &= np.convolve(seen, np.ones(3), "same") > 0  # hidden for spells, not single frames
        walkers.append((t[seen], xy[seen], int(rng.integers(4))))
    t, xy, looks, _ = _observations(*walkers)
    twice = rng.uniform(size=len(t)) < 0.1
    t, xy, looks = np.r_[t, t[twice]], np.r_[xy, xy[twice] + 0.3], np.r_[looks, looks[twice]]
    o = RelinkOptions()
    label = _tracklets(t, xy, looks, o)
    fast, reference = _People(t, xy, looks, label, o), _People(t, xy, looks, label, o)
    fast.join(o.join_look, o.misfit)
    _join_with_one_heap(reference, o.join_look, o.misfit)
    assert len(fast.members) < label.max() + 1  # some joined
    assert len(fast.members) > len(walkers) // 2  # and not everyone with everyone
    assert {k: sorted(m) for k, m in fast.members.items()} == {
        k: sorted(m) for k, m in reference.members.items()
    }
