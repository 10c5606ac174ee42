"""What the driver tells a running pipeline: changes of the run while it goes on (cameras
added and removed). Plain values, sent over a small ring from the driver to each pipeline
(``ControlInlet``) and read by the loop between two tasks.

Each change is also written into the pipeline's config by the driver *before* it is sent, so
a replacement of a pipeline that died starts with it; a message read again by that
replacement (its predecessor died before committing it) is therefore already in effect, and
applying a change twice does what applying it once does:

- ``Attach``: a new input from another process (the ring of an added camera's source) into
  one of this pipeline's tasks; known by its ring's name;
- ``EndSource``: a source of this pipeline ends now (a removed camera): it yields nothing
  more, its consumers finish what it sent and learn that it ended, as at a file's end;
- ``Expect``: how many streams a gathering task now waits for before trusting its
  population (``runtime.gather``), a number, not a difference.
"""

from __future__ import annotations

from dataclasses import dataclass

from conveyor.runtime.links import Link
from conveyor.transport.ring import RingReader


@dataclass(frozen=True)
class Attach:
    link: Link  # its ``dst`` is this pipeline; its ring is new


@dataclass(frozen=True)
class EndSource:
    source: str


@dataclass(frozen=True)
class Expect:
    task: str  # a gathering task of this pipeline
    streams: int


Change = Attach | EndSource | Expect


class ControlInlet:
    """The driver's ring into one pipeline; each change is committed once applied."""

    def __init__(self, name: str) -> None:
        self.reader = RingReader(name)

    def news(self) -> bool:
        return self.reader.has_data()

    def read(self) -> list[Change]:
        """The changes that came, in order (committed: the caller applies them now)."""
        changes: list[Change] = []
        while True:
            got = self.reader.try_read()
            if got is None:
                return changes
            changes.append(got.value)
            got.commit()

    def close(self) -> None:
        self.reader.close()
