"""Group commit on Redis Cluster: one pipeline per node (what the server does) against one script
call per slot (the alternative issue 20 asked to measure), side by side in one run.

    python -m bench.groupcommit                 # 3 runs x 3 rounds; writes its part of docs/SCALING.md
    python -m bench.groupcommit --no-write      # print only

A fresh six-node cluster per run (deploy.cluster.RedisCluster, AOF on). In this process, two
ledgers on it: ``per_node`` is the server's RedisClusterLedger unchanged (writes wait in one queue
per primary; a flush is one pipeline on one connection to that node, one write-script call per
write); ``per_slot`` is the same ledger with one queue per hash slot, a flush being one call of
the write script over every write waiting for that slot, sent through the cluster client (each
call its own round trip, all slots' calls in flight together). Both run the same write script,
the same fencing and the same retries: only the grouping differs.

Load: ``--sessions`` sessions write concurrently, each ``--writes`` words one after the other
(a typist waits for its answer), each word one record of ``--record-bytes`` random bytes (about
the default LSTM's word). Per round each variant takes its turn (the order alternates): writes
per second, p50 and p99 of a write, and CPU per write of this process (the ledger's side: the
replica pays it) and of the six Redis nodes. Ratios per_slot / per_node per round; the report
gives their median, range and each run's median.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.crc import key_slot
from redis.exceptions import NoScriptError, RedisError, TryAgainError

from bench.profile import cpu_seconds
from bench.servers import ROOT, write_figures
from deploy.cluster import RedisCluster
from wordstream.server.cluster_ledger import RedisClusterLedger
from wordstream.server.redis_ledger import SCRIPTS, SHAS, _Write, keys, next_epoch

VARIANTS = ("per_node", "per_slot")


class PerSlotLedger(RedisClusterLedger):
    """The alternative: one queue per hash slot, one write-script call per slot's batch."""

    def _route(self, session_id: str) -> str:
        return str(key_slot(keys(session_id)[0].encode()))

    async def _send(self, batch: list[_Write]) -> list[Any]:
        script_keys = [key for write in batch for key in write.keys]
        args = [self.ttl_ms, *(arg for write in batch for arg in write.args)]
        cluster: AsyncRedisCluster = self.redis
        try:
            replies = await cluster.evalsha(SHAS["write"], len(script_keys), *script_keys, *args)
        except NoScriptError:
            await cluster.script_load(SCRIPTS["write"])
            return [TryAgainError("the write script was loaded")] * len(batch)
        return list(replies)


async def _sessions(ledger: RedisClusterLedger, count: int) -> list[tuple[str, str]]:
    """``count`` sessions created in the store: (id, epoch)."""
    made = []
    for _ in range(count):
        session_id, epoch = secrets.token_urlsafe(32), f"1.{secrets.token_urlsafe(6)}"
        await ledger._call("create", session_id, ledger.ttl_ms, "bench", "0" * 16, "full", "", epoch)
        made.append((session_id, epoch))
    return made


async def _type(ledger: RedisClusterLedger, session_id: str, epoch: str, writes: int, record: bytes) -> list[float]:
    latencies = []
    for n in range(writes):
        began = time.perf_counter()
        result = await ledger._committed(session_id, [epoch, n, -1, 1, record])
        latencies.append(time.perf_counter() - began)
        if result != n + 1:
            raise RuntimeError(f"the write of word {n} of a session was refused: {result!r}")
        epoch = next_epoch(epoch)
    return latencies


async def _load(variant: str, cluster: RedisCluster, args: argparse.Namespace) -> dict[str, Any]:
    kind = RedisClusterLedger if variant == "per_node" else PerSlotLedger
    ledger = kind(cluster.url, ttl=600.0)
    await ledger.redis.initialize()
    for node in ledger.redis.get_primaries():
        await ledger.redis.execute_command("SCRIPT", "LOAD", SCRIPTS["write"], target_nodes=node)
    sessions = await _sessions(ledger, args.sessions)
    try:
        record = os.urandom(args.record_bytes)
        pids = {f"redis-node{i + 1}": n.process.pid for i, n in enumerate(cluster.nodes) if n.process}
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        own, began = time.process_time(), time.perf_counter()
        per_session = await asyncio.gather(*(_type(ledger, s, e, args.writes, record) for s, e in sessions))
        wall, own = time.perf_counter() - began, time.process_time() - own
        redis_cpu = sum(cpu_seconds(pid) - before[name] for name, pid in pids.items())
    finally:
        for key in (k for s, _ in sessions for k in keys(s)):
            await ledger.redis.delete(key)
        await ledger.stop(None)  # type: ignore[arg-type]  # stop reads no store
    latencies = sorted(x for one in per_session for x in one)
    count = len(latencies)
    return {
        "writes": count,
        "writes_per_second": count / wall,
        "p50_ms": 1e3 * latencies[count // 2],
        "p99_ms": 1e3 * latencies[min(count - 1, int(count * 0.99))],
        "ledger_cpu_us_per_write": 1e6 * own / count,
        "redis_cpu_us_per_write": 1e6 * redis_cpu / count,
    }


def run_once(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    cluster = RedisCluster(directory / "redis-cluster").start()
    rounds = []
    try:
        for n in range(args.rounds):
            order = VARIANTS if n % 2 == 0 else VARIANTS[::-1]
            rounds.append({variant: asyncio.run(_load(variant, cluster, args)) for variant in order})
    finally:
        cluster.stop()
    return {"rounds": rounds, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


KEYS = ("writes_per_second", "p50_ms", "p99_ms", "ledger_cpu_us_per_write", "redis_cpu_us_per_write")


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per figure: each variant's median, and per_slot / per_node per round (rounds where per_node
    read zero, as a short run's Redis CPU can at the clock's 10 ms tick, give no ratio)."""
    out: dict[str, Any] = {}
    for key in KEYS:
        per_run = [
            [r["per_slot"][key] / r["per_node"][key] for r in run["rounds"] if r["per_node"][key]] for run in runs
        ]
        every = [v for values in per_run for v in values]
        ratio = None
        if every:
            medians = [statistics.median(v) for v in per_run if v]
            ratio = {"median": statistics.median(every), "min": min(every), "max": max(every), "run_medians": medians}
        out[key] = {
            "per_node": statistics.median(r["per_node"][key] for run in runs for r in run["rounds"]),
            "per_slot": statistics.median(r["per_slot"][key] for run in runs for r in run["rounds"]),
            "ratio": ratio,
        }
    return out


def markdown(result: dict[str, Any]) -> str:
    s = result["summary"]
    names = {
        "writes_per_second": "writes/s",
        "p50_ms": "p50 of a write (ms)",
        "p99_ms": "p99 of a write (ms)",
        "ledger_cpu_us_per_write": "ledger CPU per write (µs, the replica's side)",
        "redis_cpu_us_per_write": "Redis CPU per write (µs, six nodes)",
    }
    lines = [
        f"Measured {result['when']} with `{result['command']}` ({result['runs']} runs × {result['rounds']} "
        f"rounds; {result['sessions']} sessions × {result['writes']} writes of {result['record_bytes']} bytes; "
        "medians, ratio per round: median [range], run medians).",
        "",
        "| figure | one pipeline per node (kept) | one script call per slot | per slot / per node |",
        "|---|---|---|---|",
    ]
    for key, name in names.items():
        r = s[key]["ratio"]
        ratio = "—"
        if r:
            medians = ", ".join(f"{m:.2f}" for m in r["run_medians"])
            ratio = f"{r['median']:.2f} [{r['min']:.2f}–{r['max']:.2f}] (runs {medians})"
        lines.append(f"| {name} | {s[key]['per_node']:,.2f} | {s[key]['per_slot']:,.2f} | {ratio} |")
    faster = (
        "one pipeline per node"
        if s["writes_per_second"]["per_slot"] < s["writes_per_second"]["per_node"]
        else "one script call per slot"
    )
    lines += ["", f"Faster: {faster} (median writes/s over rounds; the server keeps one pipeline per node)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.groupcommit", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--writes", type=int, default=50, help="words each session writes, one after the other")
    parser.add_argument("--record-bytes", type=int, default=1200, help="bytes of a word's record")
    parser.add_argument("--out", default=str(ROOT / "docs"), help="where SCALING.md and bench-runs/ are")
    parser.add_argument("--no-write", action="store_true", help="print the figures, write nothing")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="wordstream-groupcommit-") as tmp:
        runs = []
        for n in range(args.runs):
            runs.append(run_once(args, Path(tmp) / f"run{n}"))
            print(f"run {n + 1}/{args.runs} done", file=sys.stderr, flush=True)
    result = {
        "command": "python -m bench.groupcommit" + ("" if not argv else " " + " ".join(argv)),
        "when": runs[-1]["when"],
        "runs": args.runs,
        "rounds": args.rounds,
        "sessions": args.sessions,
        "writes": args.writes,
        "record_bytes": args.record_bytes,
        "summary": summary(runs),
        "raw": runs,
    }
    text = markdown(result)
    if not args.no_write:
        write_figures(Path(args.out), "groupcommit", result, text)
    print(text)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RedisError as e:
        sys.exit(f"bench.groupcommit: {e}")
