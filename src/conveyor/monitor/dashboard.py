"""The live terminal dashboard: a ``Watcher`` observer drawing each snapshot with rich.

In a terminal it redraws in place: per pipeline its busy fraction as a bar, CPU use and
restarts; per task its recent throughput, latency percentiles, batch size, and its input queue
as a bar (full bars are congestion: that task, or what follows it, holds the graph up); the
sources' frames per second (per camera when told how many). When the output is not a terminal
(a log file, CI) it prints one plain line every ``log_every`` seconds instead. At the end it
prints the final table either way, and names the bottleneck pipeline if there is one.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from conveyor.monitor.stats import Stats

BAR = 12  # characters per bar


class Dashboard:
    """``cv.run(graph, watch=[Dashboard()])``: see the run as it goes."""

    def __init__(
        self,
        console: Console | None = None,
        cameras: int | None = None,
        log_every: float = 10.0,
        title: str = "conveyor",
    ) -> None:
        self.console = console or Console(stderr=True)
        self.cameras, self.log_every, self.title = cameras, log_every, title
        self._live: Live | None = None
        self._last: Stats | None = None  # the previous snapshot: rates are over the interval
        self._rates: dict[str, float] = {}
        self._logged = -float("inf")
        self._logged_stats: Stats | None = None
        self.final: Stats | None = None

    def __call__(self, stats: Stats) -> None:
        self._rates = self._recent_rates(stats)
        self._last = stats
        if self.console.is_terminal:
            if self._live is None:
                self._live = Live(console=self.console, auto_refresh=False, transient=True)
                self._live.start()
            self._live.update(self.render(stats), refresh=True)
        elif time.monotonic() - self._logged >= self.log_every:
            self._logged, self._logged_stats = time.monotonic(), stats
            self.console.print(self.line(stats), highlight=False, soft_wrap=True)
        self.final = stats

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        if self.final is not None:
            self._rates = {}  # the final table shows whole-run rates
            said = self._logged_stats is self.final  # its headline is the last line printed
            self.console.print(self.render(self.final, headline=not said))

    # -- what is drawn -------------------------------------------------------------------------

    def _recent_rates(self, stats: Stats) -> dict[str, float]:
        last = self._last
        if last is None or stats.elapsed <= last.elapsed:
            return {}
        span = stats.elapsed - last.elapsed
        return {
            n: (t.items_in - last.tasks[n].items_in) / span
            for n, t in stats.tasks.items()
            if n in last.tasks
        }

    def _rate(self, stats: Stats, task: str) -> float:
        return self._rates.get(task, stats.throughput(task))

    def _frames_per_second(self, stats: Stats) -> float:
        return sum(self._rate(stats, s) for s in stats.sources if s in stats.tasks)

    def headline(self, stats: Stats) -> str:
        fps = self._frames_per_second(stats)
        per = f" ({fps / self.cameras:.1f} per camera)" if self.cameras else ""
        return (
            f"{self.title}: {stats.elapsed:6.1f} s, {stats.source_items} source items, "
            f"{fps:.1f}/s{per}, restarts {stats.restarts}, dead letters {stats.dead_letters}"
            + (f", dropped {stats.dropped}" if stats.dropped else "")
        )

    def line(self, stats: Stats) -> str:
        """The plain log line: the headline, the busiest pipeline, the fullest queue."""
        parts = [self.headline(stats)]
        busiest = max(stats.pipelines, key=lambda p: p.busy, default=None)
        if busiest is not None:
            parts.append(f"busiest {busiest.name} {busiest.busy:.0%}")
        fullest = max(stats.tasks.values(), key=lambda t: t.congestion, default=None)
        if fullest is not None and fullest.queue:
            parts.append(f"fullest queue {fullest.name} {fullest.queue}/{fullest.capacity}")
        return "; ".join(parts)

    def render(self, stats: Stats, headline: bool = True) -> Any:
        pipes = Table(title="pipelines", title_justify="left", expand=False)
        for col in ("pipeline", "busy", "CPU", "restarts", "tasks"):
            pipes.add_column(col, justify="right" if col in ("CPU", "restarts") else "left")
        for p in stats.pipelines:
            # Names as Text: rich would read "Frames[cam1]" as markup and drop "[cam1]".
            tasks_here = Text(", ".join(p.tasks))
            pipes.add_row(Text(p.name), _bar(p.busy), f"{p.cpu:.0%}", str(p.restarts), tasks_here)
        tasks = Table(title="tasks", title_justify="left", expand=False)
        for col in ("task", "items/s", "ms p50/p99", "batch", "queue", "dead", "dropped"):
            tasks.add_column(
                col, justify="left" if col in ("task", "queue") else "right", no_wrap=True
            )
        for t in stats.tasks.values():
            queue = (
                Text.assemble(_bar(t.congestion), f" {t.queue}/{t.capacity}")
                if t.capacity
                else Text("")
            )
            tasks.add_row(
                Text(t.name + (f" x{t.replicas}" if t.replicas > 1 else "")),
                f"{self._rate(stats, t.name):.1f}",
                f"{_ms(t.p50)}/{_ms(t.p99)}",
                f"{t.mean_batch:.1f}",
                queue,
                str(t.dead_letters),
                str(t.dropped) if t.dropped else "",
            )
        parts: list[Any] = [Text(self.headline(stats), style="bold")] if headline else []
        parts += [pipes, tasks]
        if stats.saturated:
            parts.append(
                Text(
                    "every pipeline is busy: the processors are the limit (more cores or a GPU "
                    "would help; another placement would not)",
                    style="yellow",
                )
            )
        elif stats.bottleneck is not None:
            parts.append(
                Text(
                    f"bottleneck: {stats.bottleneck.name} is busy "
                    f"{stats.bottleneck.busy:.0%} of the time "
                    "(plan.replan(stats) places the tasks again from these measurements)",
                    style="yellow",
                )
            )
        return Group(*parts)


def _ms(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:.0f}" if ms >= 100 else f"{ms:.1f}" if ms >= 10 else f"{ms:.2f}"


def _bar(fraction: float) -> Text:
    fraction = min(1.0, max(0.0, fraction))
    filled = round(fraction * BAR)
    style = "red" if fraction > 0.9 else "yellow" if fraction > 0.6 else "green"
    return Text.assemble(("█" * filled, style), ("·" * (BAR - filled), "dim"), f" {fraction:4.0%}")
