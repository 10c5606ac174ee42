"""conveyor: turn deep-learning inference code into a multi-process pipeline for live video.

The public surface is exactly what ``__all__`` lists (a test checks it). Today that is the
shared-memory transport and the error tree; tasks, graphs and backends build on it.
"""

from conveyor._errors import (
    ChannelBroken,
    ChannelClosed,
    ChannelError,
    ConfigurationError,
    ConveyorError,
    ConveyorTimeout,
    DecodeError,
    EncodeError,
    EndOfChannel,
    FrameStoreError,
    FrameStoreFull,
    StaleFrameError,
)
from conveyor.transport import (
    CameraSpec,
    Doorbell,
    FrameRef,
    FrameStore,
    Message,
    Ring,
    RingReader,
    RingWriter,
)

__version__ = "0.1.0"

__all__ = [
    "CameraSpec",
    "ChannelBroken",
    "ChannelClosed",
    "ChannelError",
    "ConfigurationError",
    "ConveyorError",
    "ConveyorTimeout",
    "DecodeError",
    "Doorbell",
    "EncodeError",
    "EndOfChannel",
    "FrameRef",
    "FrameStore",
    "FrameStoreError",
    "FrameStoreFull",
    "Message",
    "Ring",
    "RingReader",
    "RingWriter",
    "StaleFrameError",
    "__version__",
]
