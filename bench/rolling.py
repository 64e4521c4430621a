"""A rolling restart under steady load: every replica restarted in turn while sessions type.

    python -m bench.rolling                                   # 2 replicas, 50 sessions, the default models
    python -m bench.rolling --sessions 8 --settle 1 --models DIR --default-model NAME   # the test's variant

Starts a local cluster (deploy/cluster.py: Redis with AOF, the replicas, Envoy), types through
Envoy with the client library (real text: the test split's words), and restarts the replicas
one at a time: SIGTERM (the drain: 2 s), wait for the exit, start it again on its port, wait
until Envoy sees it healthy, let the load settle, next. Then every answer every session got
is checked against an offline ONNX Runtime run of the same words from the start, step by
step. Prints one JSON line: words answered, sessions, sessions lost (replayed: must be 0),
wrong outputs (must be 0), client errors by kind, and each restart's seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from bench import texts
from deploy.cluster import ROOT, Envoy, Redis, Replica, wait_for
from wordstream.client import AsyncClient, WordstreamError
from wordstream.modelfile import load_model


async def typist(
    client: AsyncClient, words: list[str], stop: asyncio.Event, stats: Counter[str]
) -> tuple[str, list[str], list[np.ndarray], int]:
    """Types ``words`` in a loop until ``stop``; returns the session's model, words, every answer's
    probabilities and how many times it was replayed."""
    session = client.session(history="none")
    await session.open()
    answered: list[np.ndarray] = []
    i = 0
    while not stop.is_set():
        try:
            result = await session.push(words[i % len(words)])
        except WordstreamError as e:
            stats[f"error {e.code}"] += 1
            await asyncio.sleep(0.05)
            continue
        assert result.output is not None
        answered.append(np.array(list(result.output.probabilities.values()), np.float32))
        i += 1
        await asyncio.sleep(0.05)  # a fast typist: ~20 words/s per session at most
    assert session.model is not None
    model = session.model.name
    replays = session.replays
    typed = list(session.words)
    await session.close()
    return model, typed, answered, replays


def wrong_answers(model_path: Path, words: list[str], answered: list[np.ndarray]) -> int:
    """Answers that differ from an uninterrupted offline run over the same words."""
    model = load_model(model_path)
    state = model.initial_state(1)
    wrong = 0
    for word, got in zip(words, answered):
        for token in model.codec.encode_ids(word):
            probs, state = model.run(np.array([token], np.int64), state)
        wrong += not np.allclose(probs[0], got, atol=1e-5)
    return wrong + abs(len(words) - len(answered))


def run(
    models: Path, default_model: str, replicas: int, sessions: int, settle: float, directory: Path
) -> dict[str, Any]:
    redis = Redis(directory / "redis", appendonly=True).start()
    servers = [
        Replica(f"r{i + 1}", models, redis.url, "--drain", "2", "--grace", "5", default_model=default_model).start()
        for i in range(replicas)
    ]
    envoy = Envoy([s.port for s in servers], directory=directory).start(healthy=replicas)
    stats: Counter[str] = Counter()
    restarts: list[float] = []
    try:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        stop = asyncio.Event()
        corpus = list(texts.words())
        rng = random.Random(7)

        async def load() -> list[tuple[str, list[str], list[np.ndarray], int]]:
            async with AsyncClient(envoy.target, reconnect_timeout=30) as client:
                starts = [rng.randrange(len(corpus) - 200) for _ in range(sessions)]
                jobs = [typist(client, corpus[s : s + 200], stop, stats) for s in starts]
                return await asyncio.gather(*jobs)

        done = asyncio.run_coroutine_threadsafe(load(), loop)
        time.sleep(settle)
        for server in servers:
            started = time.monotonic()
            server.stop()
            server.start()
            wait_for(lambda: envoy.healthy() == replicas, "every replica healthy again", timeout=60)
            restarts.append(round(time.monotonic() - started, 2))
            time.sleep(settle)
        loop.call_soon_threadsafe(stop.set)
        results = done.result(timeout=120)
        loop.call_soon_threadsafe(loop.stop)
    finally:
        envoy.stop()
        for server in servers:
            server.stop()
        redis.stop()
    wrong = sum(wrong_answers(models / f"{model}.onnx", typed, answered) for model, typed, answered, _ in results)
    return {
        "replicas": replicas,
        "sessions": sessions,
        "words": sum(len(answered) for _, _, answered, _ in results),
        "sessions_lost": sum(1 for *_, replays in results if replays),
        "wrong_outputs": wrong,
        "client_errors": dict(stats),
        "restart_seconds": restarts,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rolling", description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=str(ROOT / "models"))
    parser.add_argument("--default-model", default="sentiment-lstm")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--settle", type=float, default=5.0, help="seconds of load before, between and after restarts")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="wordstream-rolling-") as directory:
        figures = run(Path(args.models), args.default_model, args.replicas, args.sessions, args.settle, Path(directory))
    print(json.dumps(figures))
    return 0 if figures["sessions_lost"] == 0 and figures["wrong_outputs"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
