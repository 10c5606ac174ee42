"""A single-producer single-consumer message channel in shared memory.

Layout of the segment (every shared counter on its own cache line, one writer each)::

    0     magic, capacity, max_items                     (written once by the creator)
    64    write_pos, write_count, producer_pid, closed     (written by the producer only)
    128   read_pos, read_count, consumer_pid, rclosed      (written by the consumer only)
    192   consumer doorbell name, producer doorbell name
    4096  ledger: the origin id of each of the last LEDGER_SIZE records (producer only)
    36864 data: variable-size records, each 64-byte aligned

Positions are byte counters that only grow; a record lives at ``pos % capacity`` and never
wraps: when it does not fit before the end, the producer writes a PAD record up to the end and
starts again at 0. A record is::

    kind u32 | nbuf u32 | total u64 | seq u64 | header_len u64 | nbuf x (offset u64, nbytes u64)
    | pickle header | array 0 (aligned) | array 1 (aligned) | ...

Reading returns a ``Message`` whose arrays are read-only views into the ring: no copy. The
consumer's *cursor* is private; the shared ``read_pos`` moves only on ``commit()``, in order, so
a consumer that dies leaves every uncommitted record in place and its replacement, starting from
``read_pos``, reads them again. Frames referenced by a record are held from write to commit.

**Exactly once across a producer's restart.** A write may carry an *origin*: a nonzero 64-bit
id that names the input the message was derived from (deterministically, so a replay derives
the same id). The producer notes it in the ledger, in the record's slot, before it publishes
the record; a replacement producer loads the ids of the last ``LEDGER_SIZE`` published records
and drops a write whose origin is among them (``duplicates`` counts them). So outputs that a
replay produces a second time never reach the consumer, whether or not it already took them.

A message larger than half the ring (which could otherwise never fit next to a PAD) goes to an
*overflow segment* of its own; the ring carries a small OVERFLOW record with its name, and the
commit unlinks it. Overflow segments are named after the ring, so the ring owner's janitor
removes any that are left if the owner dies.
"""

from __future__ import annotations

import os
import struct
from collections import deque
from typing import Any

from conveyor._errors import (
    ChannelBroken,
    ChannelClosed,
    ConfigurationError,
    ConveyorTimeout,
    DecodeError,
    EndOfChannel,
)
from conveyor.transport import codec, framestore
from conveyor.transport.doorbell import Doorbell
from conveyor.transport.procs import pid_alive
from conveyor.transport.segment import Segment, leaked_segments, new_name, unlink

_MAGIC = 0x31474E4952564E43  # b"CNVRING1"
_LEDGER_OFFSET = 4096
LEDGER_SIZE = 4096  # origins of the last records written, kept for deduplication
_DATA_OFFSET = _LEDGER_OFFSET + 8 * LEDGER_SIZE
_NAME_BYTES = 64
_REC = struct.Struct("<IIQQQ")  # kind, nbuf, total, seq, header_len
_BUF = codec.TABLE_ENTRY  # offset, nbytes
_DATA, _PAD, _OVERFLOW = 1, 2, 3
_ALIGN = codec.ALIGN
DEFAULT_SPIN = 50e-6  # seconds a blocked reader busy-checks before it sleeps
# producer line (index into a u64 view of bytes 64..128)
_WPOS, _WCOUNT, _PPID, _CLOSED = 0, 1, 2, 3
# consumer line (bytes 128..192)
_RPOS, _RCOUNT, _CPID, _RCLOSED = 0, 1, 2, 3


def _align(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


# Attached doorbells by name: a cache of OS handles, not run state (a name is one run's bell;
# two runs in one process have two names, so they never share an entry).
_bells: dict[str, Doorbell] = {}


def _bell(name: str) -> Doorbell:
    """This process's handle on a doorbell (one per name, shared by all its rings)."""
    bell = _bells.get(name)
    if bell is None:
        bell = _bells[name] = Doorbell.attach(name)
    return bell


def register_bell(bell: Doorbell) -> None:
    """Make rings in this process use ``bell`` (e.g. the one this process created and waits on)."""
    _bells[bell.name] = bell


class Ring:
    """The owner's handle: creates the segment, hands out its name, unlinks it on close.

    ``consumer_bell`` / ``producer_bell`` are doorbell names of the consuming and producing
    processes (one doorbell per process, shared by all its channels). If omitted, the ring makes
    its own, which suits a standalone channel.
    """

    def __init__(
        self,
        capacity: int = 64 << 20,
        max_items: int = 1024,
        consumer_bell: str | None = None,
        producer_bell: str | None = None,
    ) -> None:
        if capacity < 4 * _ALIGN or capacity % _ALIGN:
            raise ConfigurationError(
                f"ring capacity must be a positive multiple of {_ALIGN} bytes (at least "
                f"{4 * _ALIGN}), got {capacity}"
            )
        if max_items < 1:
            raise ConfigurationError(f"max_items must be at least 1, got {max_items}")
        self._own_bells = []
        if consumer_bell is None:
            self._own_bells.append(Doorbell.create())
            consumer_bell = self._own_bells[-1].name
        if producer_bell is None:
            self._own_bells.append(Doorbell.create())
            producer_bell = self._own_bells[-1].name
        for bell in self._own_bells:
            register_bell(bell)
        self.segment = Segment.create("ring", _DATA_OFFSET + capacity, name=new_name("ring"))
        self.name = self.segment.name
        head = self.segment.buf[:64].cast("Q")
        head[0], head[1], head[2] = _MAGIC, capacity, max_items
        head.release()
        for offset, bell_name in ((192, consumer_bell), (256, producer_bell)):
            raw = bell_name.encode()
            if len(raw) >= _NAME_BYTES:
                raise ConfigurationError(f"doorbell name too long: {bell_name!r}")
            self.segment.buf[offset : offset + len(raw)] = raw
        self.capacity = capacity
        self.max_items = max_items

    def writer(self) -> RingWriter:
        return RingWriter(self.name)

    def reader(self) -> RingReader:
        return RingReader(self.name)

    def close(self) -> None:
        """Unlink the ring, the doorbells it made, and any overflow segment still pending."""
        if self.segment.closed:
            return
        self.segment.close()
        for name in leaked_segments():
            if name.startswith(self.name + "-ovf-"):
                unlink(name)
        for bell in self._own_bells:
            _bells.pop(bell.name, None)
            bell.close()

    def __enter__(self) -> Ring:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Endpoint:
    """What both ends share: the mapping, the header lines, the doorbells."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._seg = Segment.attach(name)
        buf = self._seg.buf
        head = buf[:64].cast("Q")
        if head[0] != _MAGIC:
            head.release()
            self._seg.close()
            raise ConfigurationError(f"segment {name!r} is not a conveyor ring")
        self.capacity, self.max_items = int(head[1]), int(head[2])
        head.release()
        self._prod = buf[64:128].cast("Q")
        self._cons = buf[128:192].cast("Q")
        self._ledger = buf[_LEDGER_OFFSET:_DATA_OFFSET].cast("q")
        self._data = buf[_DATA_OFFSET : _DATA_OFFSET + self.capacity]
        self.consumer_bell = _bell(_read_name(buf, 192))
        self.producer_bell = _bell(_read_name(buf, 256))
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise ChannelClosed(f"this endpoint of ring {self.name} was closed")

    def _release_views(self) -> None:
        for view in (self._prod, self._cons, self._ledger, self._data):
            view.release()
        self._seg.close()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()  # type: ignore[attr-defined]


def _claim_end(end: _Endpoint, line: memoryview, pid_at: int, closed_at: int, role: str) -> None:
    """Record this process as the ring's producer or consumer; refuse a second live one.

    A ring has one producer and one consumer: a second live writer would corrupt it. A dead or
    cleanly closed predecessor may be replaced (that is how crash recovery resumes).
    """
    me, pid = os.getpid(), int(line[pid_at])
    if pid and pid != me and not line[closed_at] and pid_alive(pid):
        end._release_views()
        raise ConfigurationError(
            f"ring {end.name} already has a live {role} (pid {pid}); a ring has exactly one "
            f"{role} at a time: give each {role} a ring of its own"
        )
    line[pid_at] = me


def _read_name(buf: memoryview, offset: int) -> str:
    return bytes(buf[offset : offset + _NAME_BYTES]).rstrip(b"\0").decode()


class RingWriter(_Endpoint):
    """The producing end. One process writes to a ring at a time.

    A write into a full ring whose consumer died raises ``ChannelBroken``; with
    ``wait_for_consumer=True`` (a supervised run, where a replacement consumer takes the ring
    over) it waits for the replacement instead.
    """

    def __init__(self, name: str, wait_for_consumer: bool = False) -> None:
        super().__init__(name)
        self.wait_for_consumer = wait_for_consumer
        _claim_end(self, self._prod, _PPID, _CLOSED, "producer")
        self._prod[_CLOSED] = 0
        # Private copies of the producer line: records are placed first, published together.
        self._wpos, self._wcount = int(self._prod[_WPOS]), int(self._prod[_WCOUNT])
        self._overflow_count = 0
        # Origins of the last published records: a predecessor's, when this one replaces it.
        ledger = self._ledger
        recent = [
            int(ledger[w % LEDGER_SIZE])
            for w in range(max(0, self._wcount - LEDGER_SIZE), self._wcount)
        ]
        self._recent: deque[int] = deque(recent, maxlen=LEDGER_SIZE)
        self._seen = set(recent) - {0}
        self.duplicates = 0  # writes dropped because their origin was already written

    def has_space(self, nbytes: int = _ALIGN) -> bool:
        """Could a record of ``nbytes`` be written now?"""
        total = min(-(-nbytes // _ALIGN) * _ALIGN, self.capacity // 2)
        return self._room(total) is not None

    def _room(self, total: int) -> int | None:
        """Padding needed before a record of ``total`` bytes, or None if there is no room now."""
        cons, cap = self._cons, self.capacity
        if self._wcount - cons[_RCOUNT] >= self.max_items:
            return None
        off = self._wpos % cap
        pad = cap - off if off + total > cap else 0
        if self._wpos - cons[_RPOS] + pad + total > cap:
            return None
        return pad

    # -- writing -------------------------------------------------------------------------------

    def try_write(self, value: object, origin: int = 0) -> bool:
        """Write now if there is room; False if the ring is full (in bytes or items)."""
        self._check_open()
        if origin and self._written(origin):
            return True
        if not self._place(codec.encode(value), origin):
            return False
        self._publish()
        return True

    def write(self, value: object, timeout: float | None = None, origin: int = 0) -> None:
        """Write, waiting up to ``timeout`` seconds (None: forever) while the ring is full.

        ``origin``: a nonzero id of what the message derives from; a write whose origin this
        ring already holds (a replay after a crash) is dropped and counted in ``duplicates``.
        """
        self._check_open()
        if origin and self._written(origin):
            return
        enc = codec.encode(value)
        if self._place(enc, origin):  # the common case: room now, no waiting machinery
            self._publish()
            return
        self._write_all([enc], timeout, [origin])

    def _written(self, origin: int) -> bool:
        if origin in self._seen:
            self.duplicates += 1
            return True
        return False

    def write_many(self, values: list[object], timeout: float | None = None) -> None:
        """Write several messages, publishing them together (one doorbell check, not one each).

        ``timeout`` bounds the whole call; on ConveyorTimeout the messages already published
        stay published (``written`` on the exception says how many).
        """
        self._check_open()
        self._write_all([codec.encode(v) for v in values], timeout)

    def _write_all(
        self,
        encoded: list[codec.Encoded],
        timeout: float | None,
        origins: list[int] | None = None,
    ) -> None:
        done = 0

        def place_some() -> bool:
            nonlocal done
            while done < len(encoded) and self._place(
                encoded[done], origins[done] if origins else 0
            ):
                done += 1
            if self._wcount != self._prod[_WCOUNT]:
                self._publish()
            return done == len(encoded)

        if place_some():
            return
        if not self.producer_bell.wait(place_some, timeout, on_nap=self._check_consumer):
            exc = ConveyorTimeout(
                f"ring {self.name} stayed full for {timeout} s ({done} of {len(encoded)} written)"
            )
            exc.written = done  # type: ignore[attr-defined]
            raise exc

    def _check_consumer(self) -> None:
        if self._cons[_RCLOSED]:
            raise ChannelClosed(f"the consumer of ring {self.name} closed it")
        pid = int(self._cons[_CPID])
        if pid and not self.wait_for_consumer and not pid_alive(pid):
            raise ChannelBroken(f"the consumer of ring {self.name} (pid {pid}) died", pid=pid)

    def _note(self, origin: int) -> None:
        """Record the origin of the record being placed (before it is published)."""
        self._ledger[self._wcount % LEDGER_SIZE] = origin
        if len(self._recent) == LEDGER_SIZE:
            self._seen.discard(self._recent[0])
        self._recent.append(origin)
        if origin:
            self._seen.add(origin)

    def _place(self, enc: codec.Encoded, origin: int = 0) -> bool:
        """Write one record after the last placed one; not visible until ``_publish``."""
        if self._cons[_RCLOSED]:
            raise ChannelClosed(f"the consumer of ring {self.name} closed it")
        arrays, header = enc.arrays, enc.header
        head_end = _REC.size + _BUF.size * len(arrays) + len(header)
        if arrays:
            layout = codec.array_layout(arrays, head_end)
            end = layout[-1][0] + layout[-1][1]
        else:
            layout, end = [], head_end
        total = -(-end // _ALIGN) * _ALIGN
        if total > self.capacity >> 1:
            return self._place_overflow(enc, layout, total, origin)
        pad = self._room(total)
        if pad is None:
            return False
        data, off = self._data, self._wpos % self.capacity
        if pad:
            _REC.pack_into(data, off, _PAD, 0, pad, 0, 0)
            off = 0
        _REC.pack_into(data, off, _DATA, len(arrays), total, self._wcount, len(header))
        if arrays:
            _fill_arrays(data, off, layout, arrays)
        data[off + head_end - len(header) : off + head_end] = header
        if enc.frame_refs:
            framestore.retain_refs(enc.frame_refs, message=True)  # until the consumer commits
        self._note(origin)
        self._wcount += 1
        self._wpos += pad + total
        return True

    def _place_overflow(
        self, enc: codec.Encoded, layout: list[tuple[int, int]], total: int, origin: int
    ) -> bool:
        seg_name = f"{self.name}-ovf-{self._wcount}-{os.getpid()}-{self._overflow_count}"
        raw = seg_name.encode()
        small = -(-(_REC.size + len(raw)) // _ALIGN) * _ALIGN
        pad = self._room(small)
        if pad is None:
            return False
        # Not watched by this process's janitor: the ring owner's janitor covers it by name.
        seg = Segment.create("ovf", total, name=seg_name, watch=False)
        self._overflow_count += 1
        try:
            buf = seg.buf
            _REC.pack_into(buf, 0, _DATA, len(enc.arrays), total, self._wcount, len(enc.header))
            _fill_arrays(buf, 0, layout, enc.arrays)
            head_end = _REC.size + _BUF.size * len(enc.arrays) + len(enc.header)
            buf[head_end - len(enc.header) : head_end] = enc.header
        finally:
            seg.owner = False  # the consumer unlinks it on commit
            seg.close()
        data, off = self._data, self._wpos % self.capacity
        if pad:
            _REC.pack_into(data, off, _PAD, 0, pad, 0, 0)
            off = 0
        _REC.pack_into(data, off, _OVERFLOW, 0, small, self._wcount, len(raw))
        data[off + _REC.size : off + _REC.size + len(raw)] = raw
        if enc.frame_refs:
            framestore.retain_refs(enc.frame_refs, message=True)
        self._note(origin)
        self._wcount += 1
        self._wpos += pad + small
        return True

    def _publish(self) -> None:
        prod = self._prod
        prod[_WCOUNT] = self._wcount
        prod[_WPOS] = self._wpos  # the placed records become visible here
        self.consumer_bell.ring()

    def close(self) -> None:
        """Tell the consumer no more messages come (it reads what is left, then EndOfChannel)."""
        if self._closed:
            return
        self._closed = True
        self._prod[_CLOSED] = 1
        self.consumer_bell.ring()
        self._release_views()


def _fill_arrays(
    dst: memoryview, start: int, layout: list[tuple[int, int]], arrays: list[Any]
) -> None:
    """The buffer table, then each array copied once to its aligned offset."""
    pos = start + _REC.size
    for (off, nbytes), arr in zip(layout, arrays, strict=True):
        _BUF.pack_into(dst, pos, off, nbytes)
        pos += _BUF.size
        codec.write_array(dst[start + off : start + off + nbytes], arr)


class Message:
    """One message read from a ring. Its arrays are views valid until ``commit()``."""

    __slots__ = ("value", "seq", "_reader", "_end", "_refs", "_overflow", "done")

    def __init__(
        self,
        value: Any,
        seq: int,
        reader: RingReader,
        end: int,
        refs: list[framestore.FrameRef],
        overflow: str | None,
    ) -> None:
        self.value = value
        self.seq = seq
        self._reader = reader
        self._end = end
        self._refs = refs
        self._overflow = overflow
        self.done = False

    def commit(self) -> None:
        """Done with this message: its space (and frames) may be reused; views become invalid."""
        self._reader._commit(self)

    def __repr__(self) -> str:
        state = " committed" if self.done else ""
        return f"<Message seq={self.seq} {type(self.value).__name__}{state}>"


class RingReader(_Endpoint):
    """The consuming end. A replacement reader re-reads everything not yet committed."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        _claim_end(self, self._cons, _CPID, _RCLOSED, "consumer")
        self._cons[_RCLOSED] = 0
        self._cursor = int(self._cons[_RPOS])  # private: where the next read starts
        self._ro = self._seg.readonly()[_DATA_OFFSET : _DATA_OFFSET + self.capacity]
        self._pending: deque[Message] = deque()
        self._decoder = codec.Decoder()  # keeps array views per ring position

    def has_data(self) -> bool:
        return self._prod[_WPOS] > self._cursor

    @property
    def producer_closed(self) -> bool:
        return bool(self._prod[_CLOSED])

    def try_read(self) -> Message | None:
        """The next message, or None if there is none now. Raises EndOfChannel once drained."""
        if self._closed:
            self._check_open()
        prod = self._prod
        while prod[_WPOS] > self._cursor:
            msg = self._read_record()
            if msg is not None:
                return msg
        if prod[_CLOSED] and prod[_WPOS] <= self._cursor:
            raise EndOfChannel(f"ring {self.name}: the producer closed it and all was read")
        return None

    def read(self, timeout: float | None = None, spin: float = DEFAULT_SPIN) -> Message:
        """The next message, waiting up to ``timeout`` seconds (None: forever).

        ``spin``: seconds to busy-check before sleeping on the doorbell. A wake-up costs ~45 us
        on a small VM; when the producer is active the next message usually comes sooner, and
        the spin is bounded, so an idle reader wastes at most ``spin`` per sleep.
        """
        msg = self.try_read()
        if msg is not None:
            return msg
        ok = self.consumer_bell.wait(
            lambda: self.has_data() or bool(self._prod[_CLOSED]),
            timeout,
            spin=spin,
            on_nap=self._check_producer,
        )
        if not ok:
            raise ConveyorTimeout(f"no message on ring {self.name} within {timeout} s")
        msg = self.try_read()
        assert msg is not None  # has_data was true, or closed (try_read raised)
        return msg

    def read_many(
        self, max_items: int = 64, timeout: float | None = None, spin: float = DEFAULT_SPIN
    ) -> list[Message]:
        """Wait for at least one message, then take up to ``max_items`` that are there."""
        first = self.read(timeout, spin)
        out = [first]
        prod = self._prod
        while len(out) < max_items and prod[_WPOS] > self._cursor:
            msg = self._read_record()
            if msg is not None:
                out.append(msg)
        return out

    def commit_all(self, messages: list[Message]) -> None:
        """Commit several messages with one update of the shared counters."""
        if self._closed:
            self._check_open()
        for msg in messages:
            msg.done = True
        self._advance()

    def _check_producer(self) -> None:
        pid = int(self._prod[_PPID])
        if pid and not pid_alive(pid) and not self.has_data() and not self._prod[_CLOSED]:
            raise ChannelBroken(f"the producer of ring {self.name} (pid {pid}) died", pid=pid)

    def _read_record(self) -> Message | None:
        cursor = self._cursor
        start = cursor % self.capacity
        ro = self._ro
        kind, nbuf, total, seq, header_len = _REC.unpack_from(ro, start)
        overflow = None
        if kind == _DATA:
            table_at = start + _REC.size
            head_at = table_at + _BUF.size * nbuf
            header = ro[head_at : head_at + header_len]
            value, refs = self._decoder.decode_at(ro, start, table_at, nbuf, header)
        elif kind == _PAD:
            self._cursor = cursor + total
            return None
        elif kind == _OVERFLOW:
            overflow = bytes(ro[start + _REC.size : start + _REC.size + header_len]).decode()
            rec = Segment.attach(overflow).readonly()
            _k, nbuf, _t, _s, header_len = _REC.unpack_from(rec, 0)
            value, refs = _decode_record(rec, 0, nbuf, header_len)
        else:
            raise DecodeError(f"ring {self.name}: corrupt record kind {kind} at {cursor}")
        self._cursor = end = cursor + total
        msg = Message(value, seq, self, end, refs, overflow)
        self._pending.append(msg)
        return msg

    def _commit(self, msg: Message) -> None:
        if msg.done:
            return
        if self._closed:
            self._check_open()
        msg.done = True
        if self._pending[0] is msg:
            self._advance()
        # else: committed out of order; its space is freed when the ones before it commit

    def _advance(self) -> None:
        """Move the shared read position over every committed message at the head."""
        pending, cons = self._pending, self._cons
        moved = False
        while pending and pending[0].done:
            moved = True
            head = pending.popleft()
            cons[_RCOUNT] += 1
            cons[_RPOS] = head._end
            # Only now that read_pos has moved past it: a crash before this line re-delivers
            # the message (and its frames are released once, by the replacement).
            if head._refs:
                framestore.release_refs(head._refs, message=True)
            if head._overflow:
                unlink(head._overflow)
        if moved:
            self.producer_bell.ring()

    @property
    def uncommitted(self) -> int:
        return len(self._pending)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._cons[_RCLOSED] = 1
        self.producer_bell.ring()
        self._decoder.clear()
        self._ro.release()
        self._release_views()


def _decode_record(
    buf: memoryview, start: int, nbuf: int, header_len: int
) -> tuple[Any, list[framestore.FrameRef]]:
    """A record outside the ring (an overflow segment, unlinked on commit): no views kept."""
    table_at = start + _REC.size
    head_at = table_at + _BUF.size * nbuf
    buffers = codec.table_buffers(buf, start, table_at, nbuf)
    return codec.decode(buf[head_at : head_at + header_len], buffers)


__all__ = ["Message", "Ring", "RingReader", "RingWriter"]
