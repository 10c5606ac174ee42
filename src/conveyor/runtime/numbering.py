"""Sequence numbers of a split that survive a crash of the splitting pipeline.

A task that feeds a replicated task numbers its outputs 0, 1, 2, ... (``seq``) and the merge
downstream puts the replicas' outputs back in that order. If the splitting pipeline dies, its
replacement replays the items its predecessor had not finished, and some of those were already
numbered and sent: they must get the *same* numbers again (the rings drop the repeated writes by
origin, so the number a consumer saw is the old one), and new items must go on from the old
counter, or the merge would wait for a number that never comes.

So the split records, in shared memory, the number it gave each recent origin and the next
number, *before* it sends the item. A replacement loads the last ``SLOTS`` of them.
"""

from __future__ import annotations

from conveyor.runtime.shared_words import SharedWords

SLOTS = 4096  # numbered items remembered per splitting task (more than can be in flight)
_WORDS = 1 + 2 * SLOTS  # next, then (origin, seq) pairs


class SplitNumbers:
    """One journal per splitting task, by name (the parent creates it; pipelines attach)."""

    def __init__(self, words: SharedWords, tasks: list[str]) -> None:
        self.words = words
        self.tasks = list(tasks)

    @classmethod
    def create(cls, tasks: list[str]) -> SplitNumbers:
        return cls(SharedWords.create("split", _WORDS * len(tasks)), tasks)

    @classmethod
    def attach(cls, name: str, tasks: list[str]) -> SplitNumbers:
        return cls(SharedWords.attach(name, _WORDS * len(tasks)), tasks)

    @property
    def name(self) -> str:
        return self.words.name

    def numbering(self, task: str) -> Numbering:
        return Numbering(self.words.ints, self.tasks.index(task) * _WORDS)

    def close(self) -> None:
        self.words.close()


class Numbering:
    """The writer's side for one task: ``number(origin)`` is stable across restarts."""

    def __init__(self, ints: memoryview, base: int) -> None:
        self._ints, self._base = ints, base
        self.next = int(ints[base])
        self._known: dict[int, int] = {}
        for seq in range(max(0, self.next - SLOTS), self.next):
            at = base + 1 + 2 * (seq % SLOTS)
            if int(ints[at + 1]) == seq and ints[at]:
                self._known[int(ints[at])] = seq

    def number(self, origin: int) -> int:
        seq = self._known.pop(origin, None)  # given before a crash: the same number again
        if seq is not None:
            return seq
        seq = self.next
        at = self._base + 1 + 2 * (seq % SLOTS)
        self._ints[at] = origin
        self._ints[at + 1] = seq
        self.next = seq + 1
        self._ints[self._base] = self.next  # last: the entry is complete when next covers it
        return seq
