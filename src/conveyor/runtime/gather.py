"""Gathering many messages of one type into groups: every camera's detections for one instant.

    @conveyor.task(gather=conveyor.Gather(by="index", member="camera"), max_wait=0.2)
    def associate(dets: list[Detections]) -> FloorTracks: ...

A group is the messages whose ``by`` attribute is equal (or, with ``window``, falls in the same
``window``-wide bucket of a float timestamp). Groups go out oldest first, and a group is ready
when no more of it can come:

- every *member* seen so far (``member``: the attribute naming a stream, such as a camera) has
  either sent its message for the group or already moved past it (each member's stream is in
  order, so it will send nothing older), and at least one has moved past it (so the members
  seen are not merely the first to arrive); no fixed camera count is needed, and a camera
  that joins late joins the population. A group thus waits about one frame period. Below
  sources bound once per camera (``expected``: how many), the population is not trusted
  before that many members have been seen: a camera whose process started later is not left
  out of the first groups; and when the count drops (a camera removed from the run), as
  many members as the drop may be missing once they have been silent for ``QUIET`` seconds
  (the removed camera's last items may still be on their way), and they leave the population;
- or its first message waited ``max_wait`` seconds (a camera stalled or dropped the frame,
  or was removed from the run): the members it still waited for then leave the population
  until they send again, so a camera that is away delays one group by ``max_wait``, not
  every group after it;
- or no more input can come at all.

A message that comes after its group went out is not lost: it forms a later group of its own.
The decision is a pure function over the queued messages, tested without processes.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

QUIET = 1.0  # seconds a member must have been silent to count as removed (see below)


@dataclass(frozen=True)
class Pending:
    """What the decision needs to know of one queued message."""

    key: Any  # group key (orderable: an int index or a time bucket)
    member: Hashable
    arrived: float


def oldest_group(
    pending: Sequence[Pending],
    latest: dict[Hashable, Any],
    now: float,
    max_wait: float,
    upstream_done: bool,
    expected: int = 0,
    heard: dict[Hashable, float] | None = None,
) -> tuple[list[int] | None, float | None]:
    """Positions of the oldest group if it is ready, else None; and when it will be due.

    ``latest`` maps each member seen so far to the largest key it has sent (kept by the caller
    across calls, since messages already gathered still count); this call updates it, and
    ``heard`` (each member's latest arrival), likewise kept.
    """
    if not pending:
        return None, None
    heard = {} if heard is None else heard
    for p in pending:
        if p.member not in latest or p.key > latest[p.member]:
            latest[p.member] = p.key
        if p.arrived > heard.get(p.member, -math.inf):
            heard[p.member] = p.arrived
    first = min(pending, key=lambda p: (p.key, p.arrived))
    key = first.key
    positions = [i for i, p in enumerate(pending) if p.key == key]
    arrived = min(pending[i].arrived for i in positions)
    due = arrived + max_wait
    if upstream_done:
        return positions, None
    have = {pending[i].member for i in positions}
    if now >= due:
        # Those it waited for in vain are away (stalled, or removed from the run): forget
        # them until they send again, so that the next groups do not wait for them too.
        for member in [m for m, k in latest.items() if m not in have and k < key]:
            del latest[member]
        return positions, None
    if len(latest) < expected:  # streams not seen yet: wait for them, up to ``max_wait``
        return None, due - now
    moved_on = any(k > key for k in latest.values())  # time has passed this group somewhere
    missing = [m for m, k in latest.items() if m not in have and k <= key]
    if moved_on and not missing:
        return positions, None
    # More members seen than streams feed it now (a camera was removed from the run): that
    # many may be gone, among those missing that have been silent for ``QUIET`` seconds (the
    # removed camera's last items may still be on their way: it is not silent before).
    spare = len(latest) - expected if expected else 0
    silent = [m for m in missing if now - heard.get(m, now) >= QUIET]
    if moved_on and spare and len(missing) <= spare and len(silent) == len(missing):
        for member in missing:
            del latest[member]
        return positions, None
    if spare and len(silent) < len(missing) <= spare:  # look again when they have been silent
        return None, min(due, min(heard.get(m, now) for m in missing) + QUIET) - now
    return None, due - now
