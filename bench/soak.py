"""A bounded soak: many sessions typing at once, with random disconnects, resumes and bad messages.

    python -m bench.soak --seconds 120 --sessions 500      # the figures in docs/RELIABILITY.md
    python -m bench.soak --seconds 5 --sessions 20          # the short variant the tests run

Starts its own server (loopback only), drives it through the client library, and prints one
JSON line: words served, errors by kind, sessions lost (a session the server no longer had
when its client came back: must be 0), reconnects, and the server's resident memory at the
start, at its peak and at the end (after every session has closed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import threading
import time
from collections import Counter
from typing import Any

from bench import texts
from bench.servers import start_service
from wordstream.client import AsyncClient, InvalidRequest, WordstreamError

BAD_WORDS = ["", "   ", "two words", "\x07", "x" * 500]
WORDS = texts.words()  # the test split's words: realistic text


async def typist(client: AsyncClient, rng: random.Random, deadline: float, stats: Counter[str]) -> None:
    """One session: words, sometimes a bad one, a rewind, or a dropped connection; closed at the end."""
    lost: list[int] = []
    session = client.session(on_replay=lambda old, new, words: lost.append(words))
    await session.open()
    try:
        while time.monotonic() < deadline:
            roll = rng.random()
            try:
                if roll < 0.05:
                    await session.push(rng.choice(BAD_WORDS))
                    stats["bad accepted"] += 1  # never expected
                elif roll < 0.08 and session.words:
                    await session.rewind(rng.randint(1, len(session.words)))
                    stats["rewinds"] += 1
                elif roll < 0.10 and session._call is not None:
                    session._call.cancel()  # the connection drops under the session
                    stats["disconnects"] += 1
                elif len(session.words) > 200:
                    await session.reset()
                else:
                    await session.push(rng.choice(WORDS))
                    stats["words"] += 1
            except InvalidRequest:
                stats["bad rejected (INVALID_ARGUMENT)"] += 1
            except WordstreamError as e:
                stats[f"error {e.code}"] += 1
            await asyncio.sleep(rng.uniform(0.0, 0.02))
        await session.close()
    except WordstreamError as e:
        stats[f"error {e.code}"] += 1
    stats["sessions lost"] += len(lost)


def sample_rss(server: Any, stop: threading.Event, peak: list[int]) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], server.rss())
        stop.wait(0.25)


async def soak(target: str, sessions: int, seconds: float, seed: int) -> Counter[str]:
    stats: Counter[str] = Counter()
    deadline = time.monotonic() + seconds
    async with AsyncClient(target, reconnect_timeout=30.0) as client:
        rngs = [random.Random(seed * 100_000 + i) for i in range(sessions)]
        await asyncio.gather(*(typist(client, rng, deadline, stats) for rng in rngs))
    return stats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--sessions", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--models", default="models")
    args = parser.parse_args()
    server = start_service("soak", args.models, True)
    try:
        time.sleep(0.5)
        start_rss = server.rss()
        peak, stop = [start_rss], threading.Event()
        sampler = threading.Thread(target=sample_rss, args=(server, stop, peak), daemon=True)
        sampler.start()
        began = time.monotonic()
        stats = asyncio.run(soak(server.target, args.sessions, args.seconds, args.seed))
        elapsed = time.monotonic() - began
        time.sleep(1.0)
        stop.set()
        sampler.join()
        end_rss = server.rss()
    finally:
        server.stop()
    errors = {k: v for k, v in stats.items() if k.startswith(("error", "bad"))}
    report = {
        "command": " ".join(["python -m bench.soak", *sys.argv[1:]]),
        "seconds": round(elapsed, 1),
        "sessions": args.sessions,
        "words_served": stats["words"],
        "words_per_second": round(stats["words"] / elapsed, 1),
        "rewinds": stats["rewinds"],
        "disconnects": stats["disconnects"],
        "errors": errors,
        "sessions_lost": stats["sessions lost"],
        "rss_mb": {
            "start": round(start_rss / 2**20, 1),
            "peak": round(peak[0] / 2**20, 1),
            "end": round(end_rss / 2**20, 1),
        },
    }
    print(json.dumps(report))
    return 0 if report["sessions_lost"] == 0 and not any("INTERNAL" in k for k in errors) else 1


if __name__ == "__main__":
    sys.exit(main())
