"""Prometheus metrics on their own HTTP port (off unless --metrics-port is set). No grpc here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

LATENCY_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Metrics:
    """The service's counters, on a registry of its own (several servers can live in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.words = Counter("wordstream_words", "Words processed", registry=self.registry)
        self.word_latency = Histogram(
            "wordstream_word_latency_seconds",
            "Time from a word's arrival to its result, in the service",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "wordstream_batch_size", "Rows per model call", buckets=BATCH_BUCKETS, registry=self.registry
        )
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

    def track_sessions(self, count: Callable[[], int]) -> None:
        self.live_sessions.set_function(count)

    def serve(self, port: int, host: str = "0.0.0.0") -> int:
        """Start the HTTP endpoint; returns its port (port 0 picks a free one)."""
        self._server, _ = start_http_server(port, addr=host, registry=self.registry)
        return int(self._server.server_port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
