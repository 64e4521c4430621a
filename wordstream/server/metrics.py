"""Prometheus metrics on their own HTTP port (off unless --metrics-port is set). No grpc here.

What changes with every word (words, per-word latency, batch sizes) is counted in plain
Python numbers on the event loop thread and turned into Prometheus samples only when the
endpoint is scraped: prometheus_client's own counters take a lock per update, which was a
measurable share of a word's cost. Rare events use prometheus_client's counters directly.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

LATENCY_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class LoopHistogram:
    """A histogram updated from the event loop thread only, so without a lock."""

    def __init__(self, name: str, documentation: str, buckets: tuple[float, ...]) -> None:
        self.name, self.documentation, self.bounds = name, documentation, buckets
        self.counts = [0] * (len(buckets) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float, times: int = 1) -> None:
        self.counts[bisect_left(self.bounds, value)] += times  # the first bucket whose bound is >= value
        self.sum += value * times

    @property
    def count(self) -> int:
        return sum(self.counts)

    def family(self) -> HistogramMetricFamily:
        counts, total = list(self.counts), self.sum  # a snapshot: the loop thread goes on counting
        cumulative, buckets = 0, []
        for bound, n in zip((*map(str, self.bounds), "+Inf"), counts):
            cumulative += n
            buckets.append((bound, cumulative))
        return HistogramMetricFamily(self.name, self.documentation, buckets=buckets, sum_value=total)


class _LoopCounters:
    """Exports the loop-thread counters of a :class:`Metrics` at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily("wordstream_words", "Words processed", value=self.metrics.words)
        hits, misses = self.metrics.token_cache()
        yield CounterMetricFamily("wordstream_token_cache_hits", "Words whose tokens were remembered", value=hits)
        yield CounterMetricFamily("wordstream_token_cache_misses", "Words tokenized afresh", value=misses)
        yield self.metrics.word_latency.family()
        yield self.metrics.batch_size.family()


class Metrics:
    """The service's counters, on a registry of its own (several servers can live in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.words = 0
        self.word_latency = LoopHistogram(
            "wordstream_word_latency_seconds",
            "Time from a word's arrival to its result, in the service",
            LATENCY_BUCKETS,
        )
        self.batch_size = LoopHistogram("wordstream_batch_size", "Rows per model call", BATCH_BUCKETS)
        self.registry.register(_LoopCounters(self))
        self.live_sessions = Gauge("wordstream_live_sessions", "Sessions held in memory", registry=self.registry)
        self.sessions_expired = Counter(
            "wordstream_sessions_expired", "Sessions freed by the idle reaper", registry=self.registry
        )
        self.sessions_refused = Counter(
            "wordstream_sessions_refused", "New sessions refused because the server was full", registry=self.registry
        )
        self.errors = Counter(
            "wordstream_errors", "Errors answered, by gRPC status code", ["code"], registry=self.registry
        )
        self._server: Any = None
        self.token_cache: Callable[[], tuple[int, int]] = lambda: (0, 0)  # (hits, misses) of the models' word caches

    def track_sessions(self, count: Callable[[], int]) -> None:
        self.live_sessions.set_function(count)

    def serve(self, port: int, host: str = "localhost") -> int:
        """Start the HTTP endpoint; returns its port (port 0 picks a free one)."""
        self._server, _ = start_http_server(port, addr=host, registry=self.registry)
        return int(self._server.server_port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
