"""The identity diagnosis: observations matched to true people, and groups that mix or split."""

from __future__ import annotations

import numpy as np

from peopleflow.analytics import FloorTrack
from peopleflow.config import Zone
from peopleflow.people import Observations
from peopleflow.relink import RelinkOptions
from peopleflow.simulate import default_plan
from peopleflow.track import HIST_BINS, HISTOGRAMS
from tests.apps.benchmark_scripts import benchmark


def test_observations_are_matched_to_true_people_and_mixing_is_counted() -> None:
    di = benchmark("diagnose_identities")
    t = np.arange(14) * 0.5
    truth = [  # two people walking side by side, 2 m apart
        FloorTrack(0, t, np.c_[t, np.zeros(14)]),
        FloorTrack(1, t, np.c_[t, np.full(14, 2.0)]),
    ]
    # each seen at every instant, 0.2 m off, and a false detection far from both at the end
    xy = np.r_[truth[0].xy + 0.2, truth[1].xy - 0.2, [[9.0, 9.0]]]
    obs = Observations(np.r_[t, t, t[-1]], np.zeros(29, np.int64), xy, None)
    who = di.true_person_of(obs, truth, within=1.0)
    assert list(who) == [0] * 14 + [1] * 14 + [-1]
    people = di.by_truth(obs, who)
    assert [len(p.members) for p in people] == [14, 14]
    first, second = np.arange(14), np.arange(14, 28)
    assert di.mixing([first, second], who) == (0, 0, 2)  # right
    assert di.mixing([np.r_[first, second]], who) == (1, 0, 2)  # one group holds both
    # the first person split in two (7 observations each: both count), the second whole
    assert di.mixing([first[:7], first[7:], second], who) == (0, 1, 2)
    # ... and its second half in the second person's group: split, and a group holds two
    assert di.mixing([first[:7], np.r_[first[7:], second]], who) == (1, 1, 2)
    # a person's few observations (under MAJOR) in another's group count for neither
    assert di.mixing([np.r_[first, second[:3]], second[3:]], who) == (0, 0, 2)


def test_tracklet_breaks_are_counted_by_cause_and_tracklets_cut_by_true_person() -> None:
    di = benchmark("diagnose_identities")

    def look(first_bin: int) -> np.ndarray:  # every histogram on four bins from first_bin
        h = np.zeros((HISTOGRAMS, HIST_BINS), np.float32)
        h[:, first_bin : first_bin + 4] = 0.25
        return h.ravel()

    t = np.arange(14) * 0.5
    hidden = np.r_[np.arange(6), 12, 13]  # the second person is unseen for 3.5 s
    times = np.r_[t, t[hidden]]
    xy = np.r_[np.c_[t, np.zeros(14)], np.c_[t[hidden], np.full(8, 2.0)]]
    # the first person's clothes look different from the eighth instant on
    looks = np.stack([look(0)] * 7 + [look(20)] * 7 + [look(8)] * 8)
    obs = Observations(times, np.zeros(22, np.int64), xy, looks)
    who = np.r_[np.zeros(14, np.int64), np.ones(8, np.int64)]
    label = np.r_[[0] * 7, [1] * 7, [2] * 6, [3] * 2]
    counted = di.breaks(obs, label, who, RelinkOptions())
    assert counted == {"kept": 18, "look": 1, "unseen": 1}
    # one tracklet holding both people, and an unmatched observation: three pieces
    pieces = di.cut_where_the_truth_changes(np.zeros(4, int), np.array([0, 0, 1, -1]))
    assert list(pieces) == [1, 1, 2, 0]


def test_people_in_a_zone_that_no_observation_matches_are_counted_as_unseen() -> None:
    di = benchmark("diagnose_identities")
    t = np.arange(10) * 0.5
    table = Zone("promotion", np.array([[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0]]))
    truth = [  # three people standing at the table all along, one walking elsewhere
        FloorTrack(0, t, np.tile([0.5, 0.5], (10, 1))),
        FloorTrack(1, t, np.tile([1.5, 0.5], (10, 1))),
        FloorTrack(2, t, np.tile([1.0, 1.5], (10, 1))),
        FloorTrack(3, t, np.c_[5 + t, np.full(10, 5.0)]),
    ]
    # the crowd hides two of them: one observation at the table per instant, plus the walker
    obs = Observations(np.r_[t, t], np.zeros(20, np.int64), np.r_[truth[0].xy, truth[3].xy], None)
    who = di.true_person_of(obs, truth, within=0.3)
    present, observed, share = di.seen_per_zone(obs, who, truth, (table,))["promotion"]
    assert (present, observed) == (3.0, 1.0)
    assert abs(share - 1 / 3) < 1e-9


def test_a_door_visited_mid_way_by_a_newcomer_joined_onto_someone_is_counted() -> None:
    di = benchmark("diagnose_identities")
    plan = default_plan()  # its entrance: 0..3.5 x 0..3 m
    t = np.arange(0, 40, 0.5)
    # the truth: one shopper browses aisle 3 and is lost there at 20 s; another comes in by
    # the entrance at 20 s and browses aisle 2
    lost = FloorTrack(0, t[t < 20], np.tile([12.0, 6.0], (int(np.sum(t < 20)), 1)))
    later = t[t >= 20]
    came = FloorTrack(
        1, later, np.c_[np.where(later < 22, 2.0, 9.5), np.where(later < 22, 1.5, 6.0)]
    )
    # the report joined the two into one track: aisle 3, the entrance, aisle 2
    joined = FloorTrack(7, t, np.r_[lost.xy, came.xy])
    assert di.doors_visited_mid_way([joined], [lost, came], plan, 5.0) == (1, 1, 0)
    # each alone visits no door mid-way
    assert di.doors_visited_mid_way([lost, came], [lost, came], plan, 5.0) == (0, 0, 0)
