"""A Prometheus endpoint for a run: a ``Watcher`` observer that serves the latest snapshot.

``MetricsServer(port)`` binds to 127.0.0.1 (pass ``host="0.0.0.0"`` to expose it) when it is
made, so a taken port fails before the run starts; ``port=0`` picks a free one (``.port``).
A scrape reads the last snapshot handed to it, never the shared table: scraping costs the
pipelines nothing. Names follow Prometheus conventions: ``_total`` for counters, seconds.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from conveyor._errors import ConfigurationError
from conveyor.monitor.stats import Stats


class MetricsServer:
    """``cv.run(graph, watch=[MetricsServer(9464)])``: scrape http://127.0.0.1:9464/metrics."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        if not 0 <= port <= 65535:
            raise ConfigurationError(f"expected a port 0..65535, got {port}")
        self.latest: Stats | None = None
        self._lock = threading.Lock()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_StatsCollector(self))
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=registry)
        except OSError as exc:
            raise ConfigurationError(f"cannot serve metrics on {host}:{port}: {exc}") from exc
        self.host, self.port = host, int(self._server.server_port)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def __call__(self, stats: Stats) -> None:
        with self._lock:
            self.latest = stats

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


class _StatsCollector(Collector):
    def __init__(self, owner: MetricsServer) -> None:
        self.owner = owner

    def collect(self) -> Iterator[Metric]:
        with self.owner._lock:
            stats = self.owner.latest
        if stats is None:
            return
        yield _gauge(
            "conveyor_elapsed_seconds", "Wall seconds since the run started", stats.elapsed
        )
        per_task: list[tuple[str, str, type, Any]] = [
            ("calls", "Calls of the task", CounterMetricFamily, lambda t: t.calls),
            ("items_in", "Items the task took", CounterMetricFamily, lambda t: t.items_in),
            ("items_out", "Items the task produced", CounterMetricFamily, lambda t: t.items_out),
            ("dead_letters", "Items given up on", CounterMetricFamily, lambda t: t.dead_letters),
            ("dropped", "Items a live source let go", CounterMetricFamily, lambda t: t.dropped),
            ("busy_seconds", "Seconds in the task's code", CounterMetricFamily, lambda t: t.busy),
            ("queue_depth", "Items waiting at its inputs", GaugeMetricFamily, lambda t: t.queue),
            ("queue_capacity", "Room of its inputs", GaugeMetricFamily, lambda t: t.capacity),
            ("batch_mean", "Items per call", GaugeMetricFamily, lambda t: t.mean_batch),
        ]
        for name, doc, kind, value in per_task:
            family = kind(f"conveyor_task_{name}", doc, labels=["task"])
            for t in stats.tasks.values():
                family.add_metric([t.name], value(t))
            yield family
        latency = GaugeMetricFamily(
            "conveyor_task_latency_seconds",
            "Seconds per call at a quantile (top of its log2 histogram bucket)",
            labels=["task", "quantile"],
        )
        for t in stats.tasks.values():
            for q, v in (("0.5", t.p50), ("0.9", t.p90), ("0.99", t.p99)):
                latency.add_metric([t.name, q], v)
        yield latency
        per_pipeline: list[tuple[str, str, type, Any]] = [
            ("busy_ratio", "Fraction of wall time in task code", GaugeMetricFamily, "busy"),
            ("cpu_ratio", "CPU seconds per wall second", GaugeMetricFamily, "cpu"),
            ("restarts", "Processes restarted", CounterMetricFamily, "restarts"),
            ("sleeps", "Times it slept for want of input", CounterMetricFamily, "sleeps"),
        ]
        for name, doc, kind, attr in per_pipeline:
            family = kind(f"conveyor_pipeline_{name}", doc, labels=["pipeline"])
            for p in stats.pipelines:
                family.add_metric([p.name], getattr(p, attr))
            yield family


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)
