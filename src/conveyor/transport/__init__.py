"""The shared-memory transport, conveyor's low-level API: the codec, ring channels, the
multi-camera frame store, doorbells, and the errors only they raise.

A run uses these for you; use them directly to move data between processes of your own (see
``conveyor.demo`` and docs/transport.md for the design and its picture).
"""

from conveyor._errors import (
    ChannelBroken,
    ChannelClosed,
    ChannelError,
    DecodeError,
    EncodeError,
    EndOfChannel,
    FrameStoreError,
    FrameStoreFull,
    StaleFrameError,
)
from conveyor.spec import CameraSpec
from conveyor.transport.codec import Encoded, decode, encode
from conveyor.transport.doorbell import Doorbell
from conveyor.transport.frameref import FrameRef
from conveyor.transport.framestore import FrameSlot, FrameStore, resolve
from conveyor.transport.ring import Message, Ring, RingReader, RingWriter
from conveyor.transport.segment import Segment, leaked_segments, sweep_orphans

__all__ = [
    "CameraSpec",
    "ChannelBroken",
    "ChannelClosed",
    "ChannelError",
    "DecodeError",
    "Doorbell",
    "EncodeError",
    "Encoded",
    "EndOfChannel",
    "FrameRef",
    "FrameSlot",
    "FrameStore",
    "FrameStoreError",
    "FrameStoreFull",
    "Message",
    "Ring",
    "RingReader",
    "RingWriter",
    "Segment",
    "StaleFrameError",
    "decode",
    "encode",
    "leaked_segments",
    "resolve",
    "sweep_orphans",
]
