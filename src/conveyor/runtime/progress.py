"""How far each source got, in shared memory, so that a restarted source resumes there.

A source's items are numbered 0, 1, 2, ... An item is *done* when everything derived from it in
its pipeline has finished and every ring write it led to is published. The source's *progress*
is the length of the done prefix (items 0..progress-1 are all done), written by the one pipeline
that runs the source. A replacement pipeline skips that many items of a fresh generator and
emits the rest again; the rings drop the outputs that were already written (by origin), so
downstream sees each item's outputs once. This assumes a replayable source (a file, a synthetic
camera): a live stream simply goes on from where it is.

A source that keeps in step with its siblings (one per camera, reading files in several
processes) reads an item only within ``LEAD`` items of the slowest sibling's done prefix
(``in_step``). A second word per source says it holds no sibling back (``free``): it has
ended, or keeps no step.
"""

from __future__ import annotations

from conveyor.runtime.shared_words import SharedWords

LEAD = 8  # items a source keeping in step may read past the slowest sibling's done prefix


class SourceProgress:
    """Two words per source task, by name: its done prefix and whether it is free (holds no
    sibling back); the parent creates it, pipelines attach."""

    def __init__(self, words: SharedWords, sources: list[str]) -> None:
        self.words = words
        self.sources = list(sources)
        self._counts = words.ints
        self._index = {name: i for i, name in enumerate(self.sources)}

    @classmethod
    def create(cls, sources: list[str]) -> SourceProgress:
        return cls(SharedWords.create("progress", 2 * len(sources)), sources)

    @classmethod
    def attach(cls, name: str, sources: list[str]) -> SourceProgress:
        return cls(SharedWords.attach(name, 2 * len(sources)), sources)

    @property
    def name(self) -> str:
        return self.words.name

    def get(self, source: str) -> int:
        return int(self._counts[2 * self._index[source]])

    def set(self, source: str, done: int) -> None:
        self._counts[2 * self._index[source]] = done

    def free(self, source: str, free: bool) -> None:
        """Whether ``source`` holds no sibling back (it has ended, or keeps no step)."""
        self._counts[2 * self._index[source] + 1] = int(free)

    def in_step(self, item: int, siblings: list[str]) -> bool:
        """May a source read its item number ``item``: is it within ``LEAD`` items of the
        slowest done prefix of ``siblings`` that are not free (one not started yet is at 0)?"""
        counts, index = self._counts, self._index
        held = [counts[2 * index[s]] for s in siblings if not counts[2 * index[s] + 1]]
        return not held or item < min(held) + LEAD

    def close(self) -> None:
        self.words.close()


class DonePrefix:
    """Items finish out of order; ``done(n)`` returns the new length of the done prefix."""

    def __init__(self, start: int) -> None:
        self.prefix = start
        self._ahead: set[int] = set()

    def done(self, n: int) -> int:
        if n != self.prefix:
            self._ahead.add(n)
            return self.prefix
        self.prefix += 1
        while self.prefix in self._ahead:
            self._ahead.remove(self.prefix)
            self.prefix += 1
        return self.prefix
