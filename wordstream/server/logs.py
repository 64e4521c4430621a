"""Structured logs: one JSON object per line, with the event's fields (session ids shortened)."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from wordstream.server.errors import short_id

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD:
                entry[key] = short_id(value) if key == "session" and isinstance(value, str) else value
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("wordstream")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


class Throttled:
    """A log line that may come at most ``burst`` times per ``interval`` seconds, so a flood of
    refused calls cannot flood the log; the next line that gets through says how many were dropped."""

    def __init__(
        self,
        logger: logging.Logger,
        burst: int = 10,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger, self.burst, self.interval, self.clock = logger, burst, interval, clock
        self.window_start, self.count, self.dropped = -float("inf"), 0, 0

    def warning(self, message: str, **fields: Any) -> None:
        now = self.clock()
        if now - self.window_start >= self.interval:
            self.window_start, self.count = now, 0
        if self.count >= self.burst:
            self.dropped += 1
            return
        self.count += 1
        if self.dropped:
            fields["dropped_since_last"] = self.dropped
            self.dropped = 0
        self.logger.warning(message, extra=fields)
