"""Where a server's CPU goes by thread: the event loop's thread against gRPC's own, echo and service.

    python -m bench.threads                    # 3 rounds of 100 streams x 300 words and 1 stream x 2,000
    python -m bench.threads --rounds 1 --no-write

The echo and the service run side by side (alternating, under the same load from bench.load);
each thread's user and system CPU is read from /proc before and after the load, and printed per
message, summed by the thread's name ("python" is the event loop's thread and grpc's poller;
"event_engine" is gRPC's own). No profiler: the figures are the kernel's. It answers one
question the profile cannot: how much of a word's cost is the loop thread's Python (which the
service adds) and how much is gRPC's threads (which it shares with the echo). Writes the table
between the ``bench.threads`` markers of docs/COST.md and keeps the run in docs/bench-runs/.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench.servers import ROOT, Server, load, start_echo, start_service, write_figures
from bench.texts import write as write_texts

TICK = os.sysconf("SC_CLK_TCK")


def thread_times(pid: int) -> dict[int, tuple[str, int, int]]:
    """Each live thread of ``pid``: its name, user and system CPU ticks."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except FileNotFoundError:  # ended meanwhile
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        out[int(tid)] = (name, int(fields[11]), int(fields[12]))
    return out


def split(server: Server, kind: str, streams: int, words: int, texts: Path | None) -> dict[str, Any]:
    """The server's CPU per message by thread, main thread first, under ``streams`` x ``words``."""
    options: dict[str, Any] = {"texts": texts} if kind == "service" else {"request_bytes": 16, "response_bytes": 1200}
    before = thread_times(server.process.pid)
    figures = load(server, kind, streams, words, 1 if streams == 1 else 2, **options)
    after = thread_times(server.process.pid)
    messages = figures["messages"] + streams  # and one warm-up message per stream
    per_thread: dict[str, dict[str, float]] = {}
    for tid, (name, user, system) in after.items():
        _, user0, system0 = before.get(tid, (name, 0, 0))
        key = "loop thread" if tid == server.process.pid else name
        entry = per_thread.setdefault(key, {"user_us": 0.0, "system_us": 0.0})
        entry["user_us"] += 1e6 * (user - user0) / TICK / messages
        entry["system_us"] += 1e6 * (system - system0) / TICK / messages
    total = sum(e["user_us"] + e["system_us"] for e in per_thread.values())
    return {"streams": streams, "words": words, "per_message_us": per_thread, "total_us": total}


THREADS = ("loop thread", "python", "event_engine")  # the loop's; gRPC's poller (and idle helpers); gRPC's own


def markdown(report: dict[str, Any]) -> str:
    """Median over rounds of each server's CPU per message, by thread (user + system), per load."""
    lines = [
        f"Measured {report['when']} with `{report['command']}` ({len(report['rounds']) // 4} rounds; median over "
        "rounds, µs of CPU per message: user + system).",
        "",
        "| load | server | all threads | " + " | ".join(THREADS) + " |",
        "|---|---|---|" + "---|" * len(THREADS),
    ]
    for streams in (100, 1):
        for server in ("echo", "service"):
            rows = [r for r in report["rounds"] if r["server"] == server and r["streams"] == streams]
            cells = [f"{statistics.median(r['total_us'] for r in rows):.0f}"]
            for thread in THREADS:
                used = [r["per_message_us"].get(thread, {}) for r in rows]
                user = statistics.median(u.get("user_us", 0.0) for u in used)
                system = statistics.median(u.get("system_us", 0.0) for u in used)
                cells.append(f"{user:.0f} + {system:.0f}")
            lines.append(f"| {streams} stream{'s' if streams > 1 else ''} | {server} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.threads", description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="models")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "docs"), help="where COST.md and bench-runs/ are")
    parser.add_argument("--no-write", action="store_true", help="print the figures, write nothing")
    args = parser.parse_args(argv)
    texts = write_texts(Path(os.environ.get("TMPDIR", "/tmp")) / "wordstream-bench-texts.txt")
    servers = {"echo": start_echo(), "service": start_service("service", args.models)}
    rounds = []
    try:
        for _ in range(args.rounds):
            for streams, words in ((100, 300), (1, 2000)):
                for kind, server in servers.items():
                    rounds.append({"server": kind, **split(server, kind, streams, words, texts)})
    finally:
        for server in servers.values():
            server.stop()
    report = {
        "command": "python -m bench.threads" + ("" if not argv else " " + " ".join(argv)),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "rounds": rounds,
    }
    text = markdown(report)
    if not args.no_write:
        write_figures(Path(args.out), "threads", report, text, doc="COST.md")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
