"""The scale-out's costs, side by side in one run: memory vs Redis store vs two replicas behind Envoy.

    python -m bench.scaling                       # 3 runs x 3 rounds; writes docs/bench-runs/scaling-*.json
    python -m bench.scaling --runs 1 --rounds 1 --words 20 --single-words 50   # the smoke test's variant

Five set-ups, each started fresh per run, on the default models:

- ``memory``: one replica, sessions in memory (today's single process), clients direct;
- ``redis``:  one replica with ``--state-store`` (Redis, AOF on, unix socket), clients direct;
- ``cluster``: one replica with ``--state-store redis-cluster://`` (six local nodes: 3 primaries
  with a replica each, AOF on), clients direct;
- ``cluster-wait``: the same with ``--store-replicas 1`` (a word answered once a replica of its
  primary acknowledged it: WAIT in the write's pipeline), clients direct;
- ``envoy``:  two replicas with the store, clients through Envoy (deploy/envoy.yaml).

In every round each set-up takes its turn (the order rotates from round to round) with the
same loads (bench/load.py's ping-pong streams typing the test split's words, each with its own
x-session-id): one stream (latency:
p50, p99) and 100 streams (words/s, p50, p99). The CPU seconds of every process (each replica,
Envoy, Redis) are read from /proc around each load and divided by the words answered: CPU per
word of each component, the input of the capacity model in docs/SCALING.md. Ratios are per
round; the report gives their median and range over rounds and each run's median, and a goal
is met only when the median of all rounds and every run's median meet it.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from redis import StrictRedis

from bench import texts
from bench.profile import cpu_seconds
from bench.servers import ROOT, Server, load, spread, start_service, write_figures
from deploy.cluster import Envoy, Redis, RedisCluster

SETUPS = ("memory", "redis", "cluster", "cluster-wait", "envoy")
TYPISTS = (10_000, 100_000)
WORDS_PER_TYPIST = 3.0  # words per second while typing
HEADROOM = 0.7  # plan each core at 70 % busy


class Setup:
    """The processes of one set-up and the address clients use."""

    def __init__(
        self, name: str, target: str, replicas: list[Server], envoy: Envoy | None, store: Redis | RedisCluster | None
    ):
        self.name, self.target, self.replicas, self.envoy, self.store = name, target, replicas, envoy, store

    def pids(self) -> dict[str, int]:
        pids = {f"replica{i + 1}": r.process.pid for i, r in enumerate(self.replicas)}
        if self.envoy and self.envoy.process:
            pids["envoy"] = self.envoy.process.pid
        if isinstance(self.store, Redis) and self.store.process:
            pids["redis"] = self.store.process.pid
        if isinstance(self.store, RedisCluster):  # every node: its CPU is the store's
            pids.update({f"redis-node{i + 1}": n.process.pid for i, n in enumerate(self.store.nodes) if n.process})
        return pids

    def cpu(self) -> float:  # bench.servers.load reads this around its load
        return sum(cpu_seconds(pid) for pid in self.pids().values())

    def stop(self) -> None:
        if self.envoy:
            self.envoy.stop()
        for replica in self.replicas:
            replica.stop()


def start(name: str, models: str, redis: Redis, cluster: RedisCluster) -> Setup:
    store = ["--state-store", redis.url]
    if name == "memory":
        replica = start_service("replica1", models)
        return Setup(name, replica.target, [replica], None, None)
    if name == "redis":
        replica = start_service("replica1", models, extra=store + ["--replica-name", "replica1"])
        return Setup(name, replica.target, [replica], None, redis)
    if name in ("cluster", "cluster-wait"):
        wait = ["--store-replicas", "1"] if name == "cluster-wait" else []
        extra = ["--state-store", cluster.url, "--replica-name", "replica1", *wait]
        replica = start_service("replica1", models, extra=extra)
        return Setup(name, replica.target, [replica], None, cluster)
    replicas = [start_service(f"replica{i}", models, extra=store + ["--replica-name", f"replica{i}"]) for i in (1, 2)]
    envoy = Envoy([r.port for r in replicas]).start(healthy=2)
    return Setup(name, envoy.target, replicas, envoy, redis)


def measure(setup: Setup, streams: int, words: int, texts_file: Path) -> dict[str, Any]:
    """One load; its figures, and the CPU seconds per word of each process."""
    pids = setup.pids()
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    # load() reads .target and .cpu() of what it loads: here the set-up's front and all its processes.
    figures = load(setup, "service", streams, words, processes=1 if streams == 1 else 2, texts=texts_file)  # type: ignore[arg-type]
    figures.pop("server_cpu_s")
    answered = figures["messages"]
    cpu = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    figures["cpu_us_per_word"] = {name: 1e6 * seconds / answered for name, seconds in cpu.items()}
    return figures


def run_once(args: argparse.Namespace, texts_file: Path, directory: Path) -> dict[str, Any]:
    redis = Redis(directory / "redis", appendonly=True).start()
    cluster = RedisCluster(directory / "redis-cluster").start()
    setups = {name: start(name, args.models, redis, cluster) for name in SETUPS}
    rounds: list[dict[str, Any]] = []
    try:
        for n in range(args.rounds):
            row: dict[str, Any] = {}
            order = list(setups)[n % len(setups) :] + list(setups)[: n % len(setups)]  # no set-up always first
            for name in order:
                setup = setups[name]
                row[name] = {
                    "one_stream": measure(setup, 1, args.single_words, texts_file),
                    "streams_100": measure(setup, 100, args.words, texts_file),
                }
            rounds.append(row)
        redis_keys = int(StrictRedis(unix_socket_path=str(redis.socket)).dbsize())  # closed sessions leave none
    finally:
        for setup in setups.values():
            setup.stop()
        redis.stop()
        cluster.stop()
    return {"rounds": rounds, "redis_keys_left": redis_keys, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def ratios(runs: list[dict[str, Any]], value: Any) -> dict[str, Any]:
    return spread([[value(r) for r in run["rounds"]] for run in runs])


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def fig(setup: str, load_name: str, key: str) -> Any:
        return lambda r: r[setup][load_name][key]

    out: dict[str, Any] = {
        "redis_over_memory_throughput_100": ratios(
            runs,
            lambda r: r["redis"]["streams_100"]["words_per_second"] / r["memory"]["streams_100"]["words_per_second"],
        ),
        "redis_minus_memory_p50_ms_1": ratios(
            runs, lambda r: r["redis"]["one_stream"]["p50_ms"] - r["memory"]["one_stream"]["p50_ms"]
        ),
        "envoy_minus_redis_p50_ms_1": ratios(
            runs, lambda r: r["envoy"]["one_stream"]["p50_ms"] - r["redis"]["one_stream"]["p50_ms"]
        ),
        "cluster_over_redis_throughput_100": ratios(
            runs,
            lambda r: r["cluster"]["streams_100"]["words_per_second"] / r["redis"]["streams_100"]["words_per_second"],
        ),
        "cluster_minus_redis_p50_ms_1": ratios(
            runs, lambda r: r["cluster"]["one_stream"]["p50_ms"] - r["redis"]["one_stream"]["p50_ms"]
        ),
        "cluster_wait_over_cluster_throughput_100": ratios(
            runs,
            lambda r: (
                r["cluster-wait"]["streams_100"]["words_per_second"] / r["cluster"]["streams_100"]["words_per_second"]
            ),
        ),
        "cluster_wait_minus_cluster_p50_ms_1": ratios(
            runs, lambda r: r["cluster-wait"]["one_stream"]["p50_ms"] - r["cluster"]["one_stream"]["p50_ms"]
        ),
        "envoy_over_redis_throughput_100": ratios(
            runs,
            lambda r: r["envoy"]["streams_100"]["words_per_second"] / r["redis"]["streams_100"]["words_per_second"],
        ),
    }
    for setup in SETUPS:
        for load_name in ("one_stream", "streams_100"):
            for key in ("words_per_second", "p50_ms", "p99_ms"):
                out[f"{setup}.{load_name}.{key}"] = ratios(runs, fig(setup, load_name, key))
    # CPU per word of each component at 100 streams behind Envoy: replicas summed, Envoy, Redis.
    out["cpu_us_per_word"] = {
        "replica": ratios(
            runs,
            lambda r: sum(
                v for k, v in r["envoy"]["streams_100"]["cpu_us_per_word"].items() if k.startswith("replica")
            ),
        ),
        "envoy": ratios(runs, lambda r: r["envoy"]["streams_100"]["cpu_us_per_word"]["envoy"]),
        "redis": ratios(runs, lambda r: r["envoy"]["streams_100"]["cpu_us_per_word"]["redis"]),
        "replica_memory": ratios(runs, lambda r: r["memory"]["streams_100"]["cpu_us_per_word"]["replica1"]),
        "replica_redis": ratios(runs, lambda r: r["redis"]["streams_100"]["cpu_us_per_word"]["replica1"]),
        "redis_one_replica": ratios(runs, lambda r: r["redis"]["streams_100"]["cpu_us_per_word"]["redis"]),
        "replica_cluster": ratios(runs, lambda r: r["cluster"]["streams_100"]["cpu_us_per_word"]["replica1"]),
        "cluster_nodes": ratios(
            runs,
            lambda r: sum(
                v for k, v in r["cluster"]["streams_100"]["cpu_us_per_word"].items() if k.startswith("redis")
            ),
        ),
    }
    return out


def capacity(cpu: dict[str, Any]) -> dict[str, Any]:
    """Cores (and processes) per component for TYPISTS at WORDS_PER_TYPIST words/s, from CPU per word.

    A replica is one Python process: one core at most; Redis executes commands on one thread;
    Envoy uses a worker thread per core."""
    plan: dict[str, Any] = {}
    for typists in TYPISTS:
        words = typists * WORDS_PER_TYPIST
        # A replica's cost is the one replica's with the store at 100 streams: planned replicas run
        # that busy. (Two replicas sharing this 2-core machine's load batch less and cost more a word.)
        per_word = {"replica": cpu["replica_redis"], "envoy": cpu["envoy"], "redis": cpu["redis"]}
        cores = {name: words * value["median"] / 1e6 for name, value in per_word.items()}
        plan[str(typists)] = {
            "words_per_second": words,
            "cores": {k: round(v, 2) for k, v in cores.items()},
            "replicas": math.ceil(cores["replica"] / HEADROOM),
            "envoy_cores": math.ceil(cores["envoy"] / HEADROOM),
            "redis_shards": math.ceil(cores["redis"] / HEADROOM),
        }
    return plan


def markdown(result: dict[str, Any]) -> str:
    s = result["summary"]

    def f(key: str, unit: str = "", digits: int = 2) -> str:
        v = s[key]
        return f"{v['median']:.{digits}f}{unit} [{v['min']:.{digits}f}–{v['max']:.{digits}f}]"

    lines = [
        f"Measured {result['when']} with `{result['command']}` ({result['runs']} runs × {result['rounds']} rounds; "
        "median [range over all rounds]).",
        "",
        "| set-up | 1 stream p50 ms | 1 stream p99 ms | 100 streams words/s | 100 streams p50 ms "
        "| 100 streams p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    for setup in SETUPS:
        lines.append(
            f"| {setup} | {f(f'{setup}.one_stream.p50_ms')} | {f(f'{setup}.one_stream.p99_ms')} | "
            f"{f(f'{setup}.streams_100.words_per_second', digits=0)} | {f(f'{setup}.streams_100.p50_ms')} | "
            f"{f(f'{setup}.streams_100.p99_ms')} |"
        )
    goals = [
        ("Redis store: throughput at 100 streams, redis / memory", "redis_over_memory_throughput_100", "≥ 0.75"),
        ("Redis store: added p50 at one stream (ms)", "redis_minus_memory_p50_ms_1", "≤ 1.0"),
        ("Envoy: added p50 at one stream (ms)", "envoy_minus_redis_p50_ms_1", "≤ 0.3"),
        ("Redis Cluster: throughput at 100 streams, cluster / one Redis", "cluster_over_redis_throughput_100", "≥ 0.8"),
        ("Redis Cluster: added p50 at one stream over one Redis (ms)", "cluster_minus_redis_p50_ms_1", "≤ 0.5"),
        (
            "--store-replicas 1: throughput at 100 streams, with WAIT / without",
            "cluster_wait_over_cluster_throughput_100",
            "—",
        ),
        (
            "--store-replicas 1: added p50 at one stream over the cluster (ms)",
            "cluster_wait_minus_cluster_p50_ms_1",
            "—",
        ),
        ("two replicas behind Envoy / one replica direct, throughput at 100", "envoy_over_redis_throughput_100", "—"),
    ]
    lines += ["", "| goal | figure | target | met |", "|---|---|---|---|"]
    for text, key, target in goals:
        # Met only when the median of all rounds and the median of every run meet the target.
        values = [s[key]["median"], *s[key]["run_medians"]]
        met = {
            "≥ 0.75": all(v >= 0.75 for v in values),
            "≤ 1.0": all(v <= 1.0 for v in values),
            "≤ 0.3": all(v <= 0.3 for v in values),
            "≥ 0.8": all(v >= 0.8 for v in values),
            "≤ 0.5": all(v <= 0.5 for v in values),
        }.get(target)
        verdict = "—" if met is None else ("yes" if met else "**no**")
        medians = ", ".join(f"{m:.3f}" for m in s[key]["run_medians"])
        lines.append(f"| {text} | {f(key, digits=3)} (run medians {medians}) | {target} | {verdict} |")
    cpu = s["cpu_us_per_word"]
    lines += [
        "",
        "CPU per word answered, at 100 streams behind Envoy (µs, median [range]): "
        + ", ".join(f"{k} {v['median']:.0f} [{v['min']:.0f}–{v['max']:.0f}]" for k, v in cpu.items())
        + " (replica: both replicas' CPU per word behind Envoy; replica_memory and replica_redis: the one"
        " replica direct without and with the store; redis_one_replica: Redis's CPU per word then).",
        "",
        f"| typists at {WORDS_PER_TYPIST:g} words/s | words/s | replica cores | replicas | Envoy cores "
        "| Redis cores | Redis shards |",
        "|---|---|---|---|---|---|---|",
    ]
    for typists, plan in result["capacity"].items():
        c = plan["cores"]
        lines.append(
            f"| {int(typists):,} | {plan['words_per_second']:,.0f} | {c['replica']:.1f} | {plan['replicas']} | "
            f"{c['envoy']:.1f} → {plan['envoy_cores']} | {c['redis']:.1f} | {plan['redis_shards']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="models")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--words", type=int, default=100, help="words per stream at 100 streams")
    parser.add_argument(
        "--single-words", type=int, default=1000, help="words of the one stream (its p99 from 1,000 samples)"
    )
    parser.add_argument("--out", default=str(ROOT / "docs"), help="where SCALING.md and bench-runs/ are")
    parser.add_argument("--no-write", action="store_true", help="print the figures, write nothing")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="wordstream-scaling-") as tmp:
        texts_file = texts.write(Path(tmp) / "texts.txt")
        runs = []
        for n in range(args.runs):
            runs.append(run_once(args, texts_file, Path(tmp) / f"run{n}"))
            print(f"run {n + 1}/{args.runs} done", file=sys.stderr, flush=True)
    summary_ = summary(runs)
    command = "python -m bench.scaling" + ("" if argv is None else " " + " ".join(argv))
    result = {
        "command": command if argv else "python -m bench.scaling",
        "when": runs[-1]["when"],
        "runs": args.runs,
        "rounds": args.rounds,
        "summary": summary_,
        "capacity": capacity(summary_["cpu_us_per_word"]),
        "raw": runs,
    }
    if not args.no_write:
        write_figures(Path(args.out), "scaling", result, markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
