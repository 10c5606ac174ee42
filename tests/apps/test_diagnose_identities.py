"""The identity diagnosis: observations matched to true people, and groups that mix or split."""

from __future__ import annotations

import numpy as np

from peopleflow.analytics import FloorTrack
from peopleflow.people import Observations
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
