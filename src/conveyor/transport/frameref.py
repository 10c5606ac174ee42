"""The small reference a message carries instead of a frame's pixels."""

from __future__ import annotations

from typing import NamedTuple


class FrameRef(NamedTuple):
    """Names one written frame: which store, which camera, which slot, which write of it.

    ``generation`` changes every time the slot is rewritten, so a reference that outlived its
    frame is detected (``StaleFrameError``) instead of returning another frame's pixels.
    Resolve it with ``FrameStore.view(ref)`` or ``conveyor.transport.framestore.resolve(ref)``.
    """

    store: str
    camera: int
    slot: int
    generation: int
