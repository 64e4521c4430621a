"""What a stored word costs Redis: memory per word against the raw bytes of its history rows.

    python -m bench.storage             # 200 sessions x 20 words (default LSTM); writes its part of docs/SCALING.md
    python -m bench.storage --no-write  # print only

One replica of ours with ``--state-store`` on a fresh Redis (unix socket, AOF off: memory is
the question). ``--sessions`` sessions each type ``--words`` words of the test split, one word a
request; Redis's ``used_memory`` before and after, over the words stored, is the memory per
word. The raw step is what the history holds per token: token id (8 bytes), word index (4),
the probabilities (4 per label) and every state tensor (4 per value); a word's raw bytes are its
steps'. The goal (issue 20): at most 1.3 times the raw bytes, and a resume still exact.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from redis import StrictRedis

from bench import texts
from bench.servers import ROOT, start_service, write_figures
from deploy.cluster import Redis
from wordstream.client import Client
from wordstream.modelfile import load_model

GOAL = 1.3


def measure(args: argparse.Namespace) -> dict[str, Any]:
    model = load_model(Path(args.models) / f"{args.model}.onnx", threads=0)
    step_bytes = 8 + 4 + 4 * len(model.labels) + sum(4 * s.layers * s.hidden for s in model.states)
    redis = Redis(Path(tempfile.mkdtemp(prefix="wordstream-storage-"))).start()
    raw = StrictRedis(unix_socket_path=str(redis.socket))
    replica = start_service("replica1", args.models, extra=["--state-store", redis.url, "--default-model", args.model])
    words = list(texts.words())
    try:
        before = int(raw.info("memory")["used_memory"])
        steps = stored = 0
        with Client(replica.target) as client:
            for n in range(args.sessions):
                session = client.session(history="none")
                session.open()
                for k in range(args.words):
                    result = session.push(words[(n * 997 + k) % len(words)])
                    steps += len(result.tokens)
                    stored += 1
                session.detach()
        after = int(raw.info("memory")["used_memory"])
    finally:
        replica.stop()
        redis.stop()
    per_word = (after - before) / stored
    raw_per_word = step_bytes * steps / stored
    return {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": args.model,
        "sessions": args.sessions,
        "words": stored,
        "steps": steps,
        "step_bytes": step_bytes,
        "used_memory_added": after - before,
        "bytes_per_word": round(per_word, 1),
        "raw_bytes_per_word": round(raw_per_word, 1),
        "ratio": round(per_word / raw_per_word, 3),
    }


def markdown(report: dict[str, Any]) -> str:
    met = "met" if report["ratio"] <= GOAL else "**not met**"
    return (
        f"Measured {report['when']} with `{report['command']}`: {report['sessions']} sessions × "
        f"{report['words'] // report['sessions']} words of {report['model']} ({report['steps']:,} steps of "
        f"{report['step_bytes']:,} raw bytes) added {report['used_memory_added'] / 2**20:.1f} MiB to Redis's "
        f"`used_memory`: {report['bytes_per_word']:,.0f} bytes per stored word against "
        f"{report['raw_bytes_per_word']:,.0f} raw, {report['ratio']:.2f}× (goal ≤ {GOAL}×: {met}).\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.storage", description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="models")
    parser.add_argument("--model", default="sentiment-lstm")
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--words", type=int, default=20)
    parser.add_argument("--out", default=str(ROOT / "docs"), help="where SCALING.md and bench-runs/ are")
    parser.add_argument("--no-write", action="store_true", help="print the figures, write nothing")
    args = parser.parse_args(argv)
    report = {**measure(args), "command": "python -m bench.storage" + ("" if argv is None else " " + " ".join(argv))}
    print(markdown(report), end="")
    if not args.no_write:
        write_figures(Path(args.out), "storage", report, markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
