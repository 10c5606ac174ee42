"""Pictures of a traced run (``conveyor report TRACE --out DIR``), drawn with matplotlib.

- ``busy.png``: each pipeline's busy fraction over time (time in task code per time bin): the
  utilization picture; a pipeline near 100% while the others idle is the bottleneck.
- ``queues.png``: each task's input queue depth over time: a queue that climbs and stays up
  marks where items pile up.
- ``timeline.png``: the pipelines' task calls as coloured bars over a window of the run (the
  first ``window`` seconds), the picture of a pipelined execution.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from conveyor._errors import ConfigurationError


@dataclass
class Trace:
    """A trace file read back: per pipeline its name and task calls, per task its queue."""

    pipelines: dict[int, str] = field(default_factory=dict)
    calls: dict[int, list[tuple[str, float, float]]] = field(default_factory=dict)  # s, s
    queues: dict[tuple[int, str], list[tuple[float, int]]] = field(default_factory=dict)

    @property
    def end(self) -> float:
        ends = [start + dur for calls in self.calls.values() for _, start, dur in calls]
        ends += [t for q in self.queues.values() for t, _ in q]
        return max(ends, default=0.0)


def load_trace(path: str | Path) -> Trace:
    try:
        events = json.loads(Path(path).read_text())["traceEvents"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigurationError(f"{path} is not a conveyor trace file: {exc}") from exc
    trace = Trace()
    for e in events:
        if e.get("ph") == "M" and e.get("name") == "process_name":
            trace.pipelines[e["pid"]] = e["args"]["name"]
        elif e.get("ph") == "X":
            slices = trace.calls.setdefault(e["pid"], [])
            slices.append((e["name"], e["ts"] / 1e6, e["dur"] / 1e6))
        elif e.get("ph") == "C":
            for task, depth in e["args"].items():
                point = (e["ts"] / 1e6, int(depth))
                trace.queues.setdefault((e["pid"], task), []).append(point)
    return trace


def busy_over_time(calls: list[tuple[str, float, float]], edges: np.ndarray) -> np.ndarray:
    """Fraction of each bin (between consecutive ``edges``) covered by the calls."""
    busy = np.zeros(len(edges) - 1)
    for _, start, dur in calls:
        lo, hi = start, start + dur
        first = max(0, int(np.searchsorted(edges, lo, "right")) - 1)
        last = min(len(busy) - 1, int(np.searchsorted(edges, hi, "left")) - 1)
        for b in range(first, last + 1):
            busy[b] += max(0.0, min(hi, edges[b + 1]) - max(lo, edges[b]))
    return np.clip(busy / np.diff(edges), 0.0, 1.0)


def draw_report(trace_path: str | Path, out: str | Path, window: float = 2.0) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trace = load_trace(trace_path)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    end = trace.end or 1.0
    edges = np.linspace(0.0, end, int(min(200, max(20, end / 0.05))) + 1)  # 50 ms bins
    mids = (edges[:-1] + edges[1:]) / 2
    written = []

    fig, ax = plt.subplots(figsize=(10, 4))
    for pid, name in sorted(trace.pipelines.items()):
        ax.plot(mids, 100 * busy_over_time(trace.calls.get(pid, []), edges), label=name)
    _finish(ax, "busy %", "Pipeline utilization (time in task code)")
    ax.set_ylim(0, 105)
    written.append(_save(fig, out / "busy.png"))

    fig, ax = plt.subplots(figsize=(10, 4))
    replicated = Counter(task for _, task in trace.queues)
    for (pid, task), points in sorted(trace.queues.items(), key=lambda kv: kv[0][::-1]):
        ts, depths = zip(*points, strict=True)
        where = trace.pipelines.get(pid, f"p{pid}")
        label = f"{task} ({where})" if replicated[task] > 1 else task  # one line per replica
        ax.step([*ts, end], [*depths, depths[-1]], where="post", label=label)
    _finish(ax, "items waiting", "Input queue depth")
    written.append(_save(fig, out / "queues.png"))

    fig, ax = plt.subplots(figsize=(10, 1 + 0.6 * max(1, len(trace.pipelines))))
    colours = _colours({name for calls in trace.calls.values() for name, _, _ in calls})
    rows = sorted(trace.pipelines.items())
    shown = min(window, end)
    for row, (pid, _name) in enumerate(rows):
        by_task: dict[str, list[tuple[float, float]]] = {}
        for task, start, dur in trace.calls.get(pid, []):
            if start < window:
                by_task.setdefault(task, []).append((start, max(dur, shown / 2000)))
        for task, bars in by_task.items():
            ax.broken_barh(bars, (row - 0.4, 0.8), color=colours[task], label=task)
    ax.set_yticks(range(len(rows)), [name for _, name in rows])
    shown = min(window, end)
    ax.set_xlim(0, shown)
    handles, labels = ax.get_legend_handles_labels()
    first = {label: h for h, label in reversed(list(zip(handles, labels, strict=True)))}
    ax.legend(list(first.values()), list(first), loc="upper right", fontsize="small")
    ax.set_xlabel("seconds")
    ax.set_title(f"Task calls per pipeline (first {shown:.3g} s)")
    written.append(_save(fig, out / "timeline.png"))
    return written


def _colours(tasks: set[str]) -> dict[str, Any]:
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    return {task: cmap(i % 20) for i, task in enumerate(sorted(tasks))}


def _finish(ax: Any, ylabel: str, title: str) -> None:
    ax.set_xlabel("seconds")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize="small")


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
