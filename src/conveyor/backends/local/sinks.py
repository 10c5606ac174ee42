"""Where a forwarded task's outputs go in the driver as they come: a function here
(``CallbackSink``: ``run(..., on_output=...)``) or a bridge to another node
(``backends.bridge.Outbound``), behind one protocol; and reading the rings into them."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np

from conveyor._errors import EndOfChannel
from conveyor.runtime.inlets import Inlet


class Sink(Protocol):
    """Where a forwarded task's outputs go as they come (``backends.bridge.Outbound``)."""

    def full(self) -> bool: ...  # leave the ring alone for now (raises if the outlet broke)
    def put(self, value: Any) -> None: ...
    def flush(self) -> None: ...  # after each drain: hand over what was put
    def finish(self) -> None: ...  # the stream has ended
    def join(self, timeout: float | None = None) -> None: ...


class CallbackSink:
    """A sink that hands each output to a function in this process, as it comes (what
    ``run(..., on_output=...)`` gives: a sink in the driver, such as a database writer)."""

    def __init__(self, deliver: Callable[[Any], None]) -> None:
        self.deliver = deliver

    def full(self) -> bool:
        return False

    def put(self, value: Any) -> None:
        self.deliver(value)

    def flush(self) -> None:
        pass

    def finish(self) -> None:
        pass

    def join(self, timeout: float | None = None) -> None:
        pass


def drain(
    open_readers: dict[str, Inlet],
    outputs: dict[str, list[Any]],
    forward: Mapping[str, Sink] | None = None,
    kept: set[str] | None = None,
) -> set[str]:
    """Read what the collect rings hold; returns the names left unread (their outlet is full)."""
    forward = forward or {}
    blocked = set()
    for name, reader in list(open_readers.items()):
        outlet = forward.get(name)
        while True:
            if outlet is not None and outlet.full():
                blocked.add(name)
                break
            try:
                entry = reader.read()
            except EndOfChannel:
                del open_readers[name]
                if outlet is not None:
                    outlet.finish()
                break
            if entry is None:
                break
            value = _detach(entry.value)
            if kept is None or name in kept:
                outputs[name].append(value)
            if outlet is not None:
                outlet.put(value)
            if entry.lease is not None:
                entry.lease.drop()  # commits its ring message
        if outlet is not None:
            outlet.flush()
    return blocked


def _detach(value: Any) -> Any:
    """Copy a collected value out of the ring (its arrays are views valid until commit)."""
    return copy.deepcopy(value) if _has_arrays(value) else value


def _has_arrays(value: Any) -> bool:
    if isinstance(value, np.ndarray):
        return True
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return any(_has_arrays(getattr(value, f.name)) for f in dataclasses.fields(value))
    if isinstance(value, dict):
        return any(_has_arrays(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_arrays(v) for v in value)
    return False
