"""Timeline trace of a run: a slice per task call, queue depths as counters (Chrome/Perfetto).

Each pipeline process records its events in memory and appends them to a part file of its own
(``PREFIX.pN.PID.jsonl``): every ``FLUSH`` events and when its loop ends, so a crash loses at
most the last few; a replacement process after a restart writes a new part. When the run ends
the parent merges the parts into one file in the Chrome trace-event format, which
https://ui.perfetto.dev and ``chrome://tracing`` open: one process track per pipeline, one
slice per task call (with its first item's id and its batch size), one counter track per
task's input queue. Times are ``time.perf_counter()``, which on Linux reads CLOCK_MONOTONIC:
one clock for every process of the machine, so the tracks line up.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from conveyor.runtime.instrument import Instrument, TaskInfo

FLUSH = 4096  # events kept in memory before a part file is appended to


class TraceRecorder(Instrument):
    """One pipeline process's events. Appending a tuple per call is all tracing costs there."""

    def __init__(self, prefix: str, pipeline: int) -> None:
        self.path = f"{prefix}.p{pipeline}.{os.getpid()}.jsonl"
        self.events: list[tuple[Any, ...]] = []
        self._depths: dict[str, int] = {}

    def call(self, task: str, start: float, seconds: float, items: int, item: int | None) -> None:
        self.events.append(("X", task, start, seconds, items, item))
        if len(self.events) >= FLUSH:
            self.flush()

    def queue(self, task: str, now: float, depth: int) -> None:
        if self._depths.get(task) != depth:  # a counter track needs only the changes
            self._depths[task] = depth
            self.events.append(("C", task, now, depth))

    def call_ended(
        self, task: TaskInfo, started: float, spent: float, items: int, first: int | None
    ) -> None:
        self.call(task.name, started, spent, items, first)

    def queued(self, task: TaskInfo, depth: int, capacity: int) -> None:
        self.queue(task.name, time.perf_counter(), depth)

    def loop_ended(self) -> None:
        self.flush()

    def flush(self) -> None:
        if not self.events:
            return
        with open(self.path, "a") as f:
            f.writelines(json.dumps(e) + "\n" for e in self.events)
        self.events.clear()


def new_trace_prefix() -> str:
    """Where a run's pipelines write their parts (a fresh private folder)."""
    return os.path.join(tempfile.mkdtemp(prefix="conveyor-trace-"), "part")


def write_trace(prefix: str, out: str | os.PathLike[str], pipelines: list[str]) -> Path:
    """Merge the parts under ``prefix`` into the trace file ``out`` and remove them.
    ``pipelines`` names the pipelines by index (their tracks' names)."""
    raw: list[tuple[int, list[Any]]] = []
    for part in sorted(glob.glob(f"{prefix}.p*.jsonl")):
        pipeline = int(Path(part).name.split(".")[1][1:])
        with open(part) as f:
            raw += [(pipeline, json.loads(line)) for line in f if line.strip()]
    t0 = min((e[2] for _, e in raw), default=0.0)
    events: list[dict[str, Any]] = []
    for i, name in enumerate(pipelines):
        events.append(_meta("process_name", i, {"name": name}))
        events.append(_meta("process_sort_index", i, {"sort_index": i}))
        events.append(_meta("thread_name", i, {"name": "tasks"}))
    for pipeline, e in raw:
        ts = round((e[2] - t0) * 1e6, 3)  # microseconds from the first event
        if e[0] == "X":
            _, task, _, seconds, items, item = e
            events.append(
                {
                    "name": task,
                    "cat": "task",
                    "ph": "X",
                    "pid": pipeline,
                    "tid": 0,
                    "ts": ts,
                    "dur": round(seconds * 1e6, 3),
                    "args": {"item": item, "batch": items},
                }
            )
        else:
            _, task, _, depth = e
            events.append(
                {
                    "name": f"queue {task}",
                    "ph": "C",
                    "pid": pipeline,
                    "ts": ts,
                    "args": {task: depth},
                }
            )
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"traceEvents": events, "displayTimeUnit": "ms"}))
    remove_trace_parts(prefix)
    return path


def remove_trace_parts(prefix: str) -> None:
    shutil.rmtree(os.path.dirname(prefix), ignore_errors=True)


def _meta(name: str, pid: int, args: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "ph": "M", "pid": pid, "tid": 0, "args": args}


class TraceOutput:
    """A run's trace: pipelines write parts under ``prefix``; ``close()`` merges them into
    ``out`` (also after a failed run: what was recorded up to the failure is kept)."""

    def __init__(self, out: str | os.PathLike[str], pipelines: list[str]) -> None:
        self.out, self.pipelines = Path(out), pipelines
        self.prefix = new_trace_prefix()

    def close(self) -> None:
        # Runs among the run's clean-up: a trace that cannot be written must not stop the
        # rest of it (shared memory, processes) or hide the run's own error.
        try:
            write_trace(self.prefix, self.out, self.pipelines)
        except (OSError, ValueError) as exc:
            remove_trace_parts(self.prefix)
            print(f"conveyor: the trace {self.out} could not be written: {exc}", file=sys.stderr)
