"""Shared-memory transport: codec, ring channels, the multi-camera frame store, doorbells.

See docs/transport.md for the design and its picture.
"""

from conveyor.transport.codec import Encoded, decode, encode
from conveyor.transport.doorbell import Doorbell
from conveyor.transport.frameref import FrameRef
from conveyor.transport.framestore import CameraSpec, FrameSlot, FrameStore, resolve
from conveyor.transport.ring import Message, Ring, RingReader, RingWriter
from conveyor.transport.segment import Segment, leaked_segments, sweep_orphans

__all__ = [
    "CameraSpec",
    "Doorbell",
    "Encoded",
    "FrameRef",
    "FrameSlot",
    "FrameStore",
    "Message",
    "Ring",
    "RingReader",
    "RingWriter",
    "Segment",
    "decode",
    "encode",
    "leaked_segments",
    "resolve",
    "sweep_orphans",
]
