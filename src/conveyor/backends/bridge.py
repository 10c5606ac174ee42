"""Bridges: how a producer's outputs cross from one node of a Ray cluster to another.

::

    node A                                      node B
    producer ══ring══> A's run (Outbound) ──Ray──> Bridge actor ──Ray──> Inbound ══> consumers
                       batches per drain           bounded buffer        in:producer

- **Outbound** (in the producer node's run): the run collects the producer's outputs as it
  collects any task's (a ring back to the node's supervisor, deduplicated by origin across a
  pipeline restart), then a thread sends them in batches, in order: one Ray call per batch of
  whatever one drain of the ring found, not one per message. When its queue is full the run
  stops reading that ring, so backpressure reaches the producer through the ring.
- **Bridge** (a Ray actor on the consumer's node): a bounded buffer of the stream, each
  message pickled by the sender and unpickled by the inbound source. ``push``
  waits while it is full; ``pull(position, acked)`` returns what follows ``position`` and drops
  what the consumer has acknowledged.
- **Inbound** (a source in the consumer node's run, ``in:PRODUCER``): yields the stream. It
  acknowledges an item once the item and everything derived from it on its node is done (the
  source's done prefix), so after a pipeline restart the replacement resumes at its done prefix
  and the bridge still holds everything from there: nothing lost, nothing doubled.

What is not covered: a node that dies takes its buffers and its in-flight items with it.
"""

from __future__ import annotations

import asyncio
import pickle
import queue
import threading
from collections import deque
from collections.abc import Iterator
from typing import Any

BATCH = 256  # messages per Ray call at most
CAPACITY = 1024  # messages a bridge holds before push waits (not yet acknowledged)
PULL_WAIT = 0.05  # seconds a pull waits for data before it returns empty
_END = object()


class Bridge:
    """One crossing's buffer (a Ray actor with asyncio: push and pull wait without a thread)."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self.items: deque[Any] = deque()
        self.first = 0  # the position of items[0] in the stream
        self.ended = False
        self.changed = asyncio.Condition()

    async def push(self, batch: list[Any]) -> None:
        async with self.changed:
            await self.changed.wait_for(lambda: len(self.items) < self.capacity)
            self.items.extend(batch)
            self.changed.notify_all()

    async def end(self) -> None:
        async with self.changed:
            self.ended = True
            self.changed.notify_all()

    async def pull(
        self, position: int, acked: int, limit: int = BATCH, wait: float = PULL_WAIT
    ) -> tuple[list[Any], bool]:
        """Up to ``limit`` items from ``position`` on, and whether the stream ends after them.
        Items before ``acked`` are done downstream: dropped (``acked <= position``)."""
        async with self.changed:
            drop = min(acked - self.first, len(self.items))
            if drop > 0:  # done downstream: room for push
                for _ in range(drop):
                    self.items.popleft()
                self.first += drop
                self.changed.notify_all()
            if position < self.first:
                raise RuntimeError(
                    f"bridge asked for item {position}, but items before {self.first} were "
                    "acknowledged and dropped"
                )

            def ready() -> bool:
                return position < self.first + len(self.items) or self.ended

            try:
                await asyncio.wait_for(self.changed.wait_for(ready), wait)
            except TimeoutError:
                return [], False
            start = position - self.first
            got = [self.items[i] for i in range(start, min(len(self.items), start + limit))]
            return got, self.ended and start + len(got) == len(self.items)


class Inbound:
    """The source that yields a bridge's stream on the consumer's node (``in:PRODUCER``).

    It uses the loop's optional source hooks: ``resume(n)`` (the first n items are done:
    start at n) and ``acknowledge(n)`` (items before n are done: the bridge may drop them)."""

    def __init__(self, bridge: str, namespace: str) -> None:
        self.bridge, self.namespace = bridge, namespace
        self.position = 0
        self.acked = 0

    def resume(self, done: int) -> None:
        self.position = self.acked = done

    def acknowledge(self, done: int) -> None:
        self.acked = done

    def __iter__(self) -> Iterator[Any]:
        import ray

        bridge = ray.get_actor(self.bridge, namespace=self.namespace)
        ref: Any = bridge.pull.remote(self.position, self.acked)
        while True:
            items: list[Any]
            ended: bool
            items, ended = ray.get(ref)
            if not ended:  # ask for the next batch now: it travels while these are used
                ref = bridge.pull.remote(self.position + len(items), self.acked)
            for item in items:
                self.position += 1
                yield pickle.loads(item)
            if ended:
                return


class Outbound:
    """Sends one producer's outputs to the bridges of the nodes that take them, in order, from
    a thread (the run's supervisor only queues them)."""

    def __init__(self, ray: Any, bridges: list[Any], depth: int = 4) -> None:
        self.ray, self.bridges = ray, bridges
        self.pending: list[Any] = []
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._send, name="conveyor-outbound", daemon=True)
        self.thread.start()

    def full(self) -> bool:
        """Whether the run should leave the producer's ring alone for now (backpressure).
        Raises what stopped the sending thread, if anything did."""
        if self.error is not None:
            raise self.error
        return self.queue.full() or len(self.pending) >= BATCH

    def put(self, value: Any) -> None:
        # Pickled here: the bridge keeps bytes, so it never imports the message's module (a
        # driver script's types exist only where the driver's __main__ was loaded).
        self.pending.append(pickle.dumps(value, protocol=5))

    def flush(self) -> None:
        if self.pending and not self.queue.full():
            self.queue.put(self.pending)
            self.pending = []

    def finish(self) -> None:
        """The producer's stream has ended: send the rest, then the end."""
        while self.pending:
            self._put(self.pending[:BATCH])
            self.pending = self.pending[BATCH:]
        self._put(_END)

    def _put(self, item: Any) -> None:
        while True:
            try:
                self.queue.put(item, timeout=0.5)
                return
            except queue.Full:
                if self.error is not None:
                    raise self.error from None

    def join(self, timeout: float | None = None) -> None:
        self.thread.join(timeout)
        if self.error is not None:
            raise self.error
        if self.thread.is_alive():
            raise TimeoutError(f"a bridge did not take its last messages in {timeout} s")

    def _send(self) -> None:
        try:
            while True:
                batch = self.queue.get()
                if batch is _END:
                    self.ray.get([b.end.remote() for b in self.bridges])
                    return
                self.ray.get([b.push.remote(batch) for b in self.bridges])
        except BaseException as exc:  # noqa: BLE001 - the run raises it from join()
            self.error = exc
