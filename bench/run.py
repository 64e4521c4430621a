"""The benchmark suite, everything side by side in one run (issue 5).

    python -m bench.run                  # full run, about 6 minutes here; writes the files below
    python -m bench.run --smoke          # tiny counts, seconds (the test suite runs this)

Servers: (a) a bare grpc.aio echo stream with the service's message sizes, (b) the
service with micro-batching, (c) the service with batching off. Baselines: (d) the
stateless way, re-running the whole prefix for every word, end to end over gRPC and at
the model level; (e) a PyTorch eager step against the ONNX Runtime step. Then a py-spy
profile of the service under load (bench/profile.py) says where its time goes.

The servers take turns, three rounds per comparison, merged per server. Writes
docs/bench-results.json, docs/BENCHMARKS.md and docs/bench-*.png (not with --smoke,
unless --out is given).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from bench.load import VOCABULARY
from bench.profile import cpu_seconds, profile
from wordstream.v1 import wordstream_pb2 as pb
from wordstream.v1 import wordstream_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parent.parent
HANDOFFS = 50  # thread round trips per timed sample
ENV = {**os.environ, "GRPC_VERBOSITY": "ERROR", "PYTHONPATH": str(ROOT)}


@dataclass
class Server:
    name: str
    process: subprocess.Popen[str]
    port: int

    @property
    def target(self) -> str:
        return f"localhost:{self.port}"

    def rss(self) -> int:
        """Resident memory in bytes."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) * 1024  # type: ignore[union-attr]

    def cpu(self) -> float:
        """User + system CPU seconds so far."""
        return cpu_seconds(self.process.pid)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start(name: str, command: list[str]) -> Server:
    process = subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = process.stdout.readline() if process.stdout else ""
    match = re.search(r"port (\d+)", line)
    if not match:
        process.kill()
        raise RuntimeError(f"{name} did not start: {line!r}")
    return Server(name, process, int(match.group(1)))


def start_service(name: str, models: str, batching: bool, extra: list[str] | None = None) -> Server:
    return start(
        name,
        [
            sys.executable,
            "-m",
            "server",
            "--host",
            "localhost",
            "--port",
            "0",
            "--models",
            models,
            "--batching",
            str(batching).lower(),
            "--log-level",
            "WARNING",
            *(extra or []),
        ],
    )


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def load(server: Server, kind: str, streams: int, words: int, processes: int, **options: Any) -> dict[str, Any]:
    """Run ``processes`` load generators at once (streams split between them) and merge their figures."""
    processes = max(1, min(processes, streams))
    start_at = time.time() + 1.5 + streams / 400  # after every generator has opened its streams
    command = [
        sys.executable,
        "-m",
        "bench.load",
        "--target",
        server.target,
        "--kind",
        kind,
        "--words",
        str(words),
        "--start-at",
        str(start_at),
    ]
    for key, value in options.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    shares = [streams // processes + (i < streams % processes) for i in range(processes)]
    cpu_before = server.cpu()
    children = [
        subprocess.Popen(command + ["--streams", str(n)], cwd=ROOT, env=ENV, stdout=subprocess.PIPE, text=True)
        for n in shares
    ]
    results = [json.loads(child.communicate(timeout=900)[0]) for child in children]
    latencies = [x for r in results for stream in r["latencies"] for x in stream]
    wall = max(r["wall"] for r in results)
    per_message = max(1, options.get("paste", 0) or 1)
    return {
        "streams": streams,
        "processes": processes,
        "words_per_second": len(latencies) * per_message / wall,
        "p50_ms": 1000 * percentile(latencies, 50),
        "p99_ms": 1000 * percentile(latencies, 99),
        "server_cpu_s": server.cpu() - cpu_before,
        "client_cpu_s": sum(r["cpu"] for r in results),
        "wall_s": wall,
        "messages": len(latencies),
        "per_stream": [r["latencies"] for r in results],
    }


def in_rounds(servers: list[Server], rounds: int, measure: Any) -> dict[str, dict[str, Any]]:
    """``measure(server)`` for every server, taking turns over ``rounds`` rounds, merged per server:
    a slow spell of the shared machine falls on every side, not on one."""
    runs: dict[str, list[dict[str, Any]]] = {s.name: [] for s in servers}
    for _ in range(rounds):
        for server in servers:
            runs[server.name].append(measure(server))
    return {name: merge(parts) for name, parts in runs.items()}


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One result from several runs of the same load: latencies pooled, times and CPU added up."""
    latencies = [x for part in parts for process in part["per_stream"] for stream in process for x in stream]
    wall = sum(p["wall_s"] for p in parts)
    return {
        "streams": parts[0]["streams"],
        "processes": parts[0]["processes"],
        "rounds": len(parts),
        "words_per_second": sum(p["words_per_second"] * p["wall_s"] for p in parts) / wall,
        "p50_ms": 1000 * percentile(latencies, 50),
        "p99_ms": 1000 * percentile(latencies, 99),
        "server_cpu_s": sum(p["server_cpu_s"] for p in parts),
        "client_cpu_s": sum(p["client_cpu_s"] for p in parts),
        "wall_s": wall,
        "messages": len(latencies),
    }


async def open_filled(stub: pb_grpc.WordstreamStub, words: int, history: int = pb.HISTORY_MODE_DELTA) -> Any:
    """A new session's stream that has read ``words`` words in one paste (their answers read too)."""
    call = stub.Stream()
    await call.write(pb.StreamRequest(open=pb.Open(history=history)))
    await call.read()
    if words:
        await call.write(pb.StreamRequest(paste=pb.Paste(words=[VOCABULARY[i % 30] for i in range(words)])))
        for _ in range(words):
            await call.read()
    return call


def step_cost(target: str, early: int, late: int, pairs: int) -> dict[str, float]:
    """Per-word latency at step ``early`` against step ``late``, measured in turns.

    One session is filled to ``late`` words; fresh sessions are filled to ``early`` words.
    Then, pair after pair, one word goes to a fresh session (its words early..early+19) and
    one to the long session, so both sides see the same moments of the shared machine.
    """

    async def timed(call: Any, i: int) -> float:
        begin = time.perf_counter()
        await call.write(pb.StreamRequest(word=VOCABULARY[i % 30]))
        await call.read()
        return time.perf_counter() - begin

    async def run() -> tuple[list[float], list[float]]:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = pb_grpc.WordstreamStub(channel)
            long = await open_filled(stub, late)
            short, at_early, at_late = None, [], []
            for i in range(pairs):
                if i % 20 == 0:
                    if short is not None:
                        await short.done_writing()
                    short = await open_filled(stub, early)
                at_early.append(await timed(short, i))
                at_late.append(await timed(long, i))
            await long.done_writing()
            if short is not None:
                await short.done_writing()
            return at_early, at_late

    at_early, at_late = asyncio.run(run())
    return {
        "early_step": early,
        "late_step": late,
        "pairs": pairs,
        "early_ms": 1000 * statistics.median(at_early),
        "late_ms": 1000 * statistics.median(at_late),
    }


def message_sizes(target: str) -> tuple[int, int]:
    """Bytes of a typical word request and its answer (delta history, the default model)."""
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.WordstreamStub(channel)
        requests = [pb.StreamRequest(open=pb.Open()), pb.StreamRequest(word="wonderful")]
        responses = list(stub.Stream(iter(requests + [pb.StreamRequest(close=pb.Close())])))
        return len(requests[1].SerializeToString()), len(responses[1].SerializeToString())


def create_sessions(target: str, sessions: int, words: int) -> None:
    """Open ``sessions`` sessions (each reading ``words`` words) and leave them idle, streams ended."""

    async def one(stub: pb_grpc.WordstreamStub) -> None:
        call = await open_filled(stub, words, pb.HISTORY_MODE_NONE)
        await call.done_writing()
        await call.read()  # EOF: the stream ends, the session stays (detached)

    async def run() -> None:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = pb_grpc.WordstreamStub(channel)
            for start_index in range(0, sessions, 100):
                await asyncio.gather(*(one(stub) for _ in range(min(100, sessions - start_index))))

    asyncio.run(run())


def settle_rss(server: Server) -> int:
    time.sleep(1.0)
    return server.rss()


def model_level(model_path: Path, prefix: int, repeats: int, rounds: int = 5) -> dict[str, Any]:
    """(d) at the model level and (e): ONNX Runtime steps, a prefix re-run, PyTorch eager.

    The measurements take turns over ``rounds`` rounds and each figure is the median of its
    rounds' medians, so a slow spell of the shared machine does not fall on one side only.
    """
    from server.inference import load_model

    model = load_model(model_path, threads=1)
    ids = [model.codec.encode_ids(w)[0] for w in (VOCABULARY * 40)[:prefix]]
    work: dict[str, tuple[Any, int]] = {}  # name -> (callable, samples per round)
    for batch in (1, 64):
        tokens, state = np.resize(np.array(ids, np.int64), batch), model.initial_state(batch)
        work[f"ort_step_b{batch}_us"] = (lambda t=tokens, s=state: model.run(t, s), repeats * 2)

    def prefix_rerun() -> None:
        state = model.initial_state(1)
        for token in ids:
            _, state = model.run(np.array([token], np.int64), state)

    work["ort_prefix_rerun_us"] = (prefix_rerun, max(2, repeats // 25))
    out: dict[str, Any] = {}
    try:
        import torch

        from export.config import TrainConfig
        from export.model import StepModel, TextClassifier
    except ImportError:
        torch = None  # type: ignore[assignment]
        out["torch"] = "not installed (pip install torch==2.13.0)"
    if torch is not None:
        torch.set_num_threads(1)
        torch.set_grad_enabled(False)
        meta = model.metadata
        # Timing does not depend on the weights' values: the same architecture, initialised afresh.
        net = TextClassifier(
            TrainConfig.from_dict(meta["training"]),
            len(model.codec.vocab),
            len(model.labels),
            meta["model"].get("learned_vocab_size"),
            len(meta["model"].get("lexicon_features", [])),
        ).eval()
        step = StepModel(net)
        for batch in (1, 64):
            tokens_t, state_t = torch.from_numpy(np.resize(np.array(ids, np.int64), batch)), net.init_state(batch)
            work[f"torch_step_b{batch}_us"] = (lambda t=tokens_t, s=state_t: step(t, *s), repeats * 2)
        sequence = torch.tensor([ids])
        work["torch_full_sequence_us"] = (lambda: net(sequence, net.init_state(1)), max(2, repeats // 10))

    # What a model call on a worker thread would add: one round trip from the event loop to a
    # thread and back, doing nothing (server/batching.py runs model calls on the loop instead).
    loop = asyncio.new_event_loop()
    pool = ThreadPoolExecutor(1)

    async def handoffs() -> None:
        for _ in range(HANDOFFS):
            await loop.run_in_executor(pool, int)

    work["thread_handoff_us"] = (lambda: loop.run_until_complete(handoffs()), repeats)
    per_round: dict[str, list[float]] = {name: [] for name in work}
    for _ in range(rounds):
        for name, (fn, samples) in work.items():
            times = []
            for _ in range(samples):
                begin = time.perf_counter()
                fn()
                times.append(time.perf_counter() - begin)
            per_round[name].append(statistics.median(times))
    out.update({name: 1e6 * statistics.median(values) for name, values in per_round.items()})
    out["thread_handoff_us"] /= HANDOFFS  # per round trip
    pool.shutdown()
    loop.close()
    return out


def stateless_over_grpc(target: str, prefix: int, repeats: int) -> float:
    """Seconds to get the output after word ``prefix`` statelessly: send the whole prefix to a new session."""

    async def once(stub: pb_grpc.WordstreamStub) -> float:
        begin = time.perf_counter()
        call = await open_filled(stub, prefix, pb.HISTORY_MODE_NONE)
        await call.write(pb.StreamRequest(close=pb.Close()))
        await call.read()
        await call.done_writing()
        return time.perf_counter() - begin

    async def run() -> list[float]:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = pb_grpc.WordstreamStub(channel)
            return [await once(stub) for _ in range(repeats)]

    return statistics.median(asyncio.run(run()))


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    smoke = args.smoke
    models = args.models
    model_path = Path(models) / f"{args.model}.onnx"
    concurrency = [1, 10] if smoke else [1, 10, 100, 1000]
    results: dict[str, Any] = {"machine": machine(), "command": " ".join(["python -m bench.run", *sys.argv[1:]])}
    echo = start("echo", [sys.executable, "-m", "bench.echo_server"])
    batched = start_service("batching", models, True)
    unbatched = start_service("no batching", models, False)
    servers = [echo, batched, unbatched]
    try:
        request_bytes, response_bytes = message_sizes(batched.target)
        results["message_bytes"] = {"request": request_bytes, "response": response_bytes}
        sizes = {"request_bytes": request_bytes, "response_bytes": response_bytes}

        def run_load(server: Server, streams: int, words: int, processes: int, **extra: Any) -> dict[str, Any]:
            if server is echo:
                return load(server, "echo", streams, words, processes, **sizes, **extra)
            return load(server, "service", streams, words, processes, **extra)

        # One stream, ping-pong: latency. Every comparison takes turns over the servers.
        rounds = 1 if smoke else 3
        words = 30 if smoke else 700
        results["one_stream"] = in_rounds(servers, rounds, lambda s: run_load(s, 1, words, 1))
        # Concurrency: throughput and latency.
        results["concurrency"] = {}
        for c in concurrency:
            per_stream = max(5, min(400, (300 if smoke else 10000) // c))
            processes = 1 if c < 100 else 2
            results["concurrency"][str(c)] = in_rounds(
                servers, rounds, lambda s, c=c, n=per_stream, p=processes: run_load(s, c, n, p)
            )
        # Cost per word against session length: one long session's every word (the plot), and
        # step 10 against step 1,000 measured in turns (the ratio).
        length = 60 if smoke else 1000
        long = run_load(batched, 1, length, 1)
        per_word = long["per_stream"][0][0]
        results["session_length"] = {
            "per_word_ms": [1000 * x for x in per_word],
            "end_step": length,
            **step_cost(batched.target, 10, length, 20 if smoke else 400),
        }
        # Stateless baseline at step `prefix`, end to end, against the service's cost per word there.
        prefix = 20 if smoke else 500
        window = 5 if smoke else 20
        stateless = stateless_over_grpc(batched.target, prefix, 3 if smoke else 10)
        around = per_word[max(0, prefix - window) : prefix + window]
        results["stateless"] = {
            "prefix": prefix,
            "stateless_ms": 1000 * stateless,
            "service_ms": 1000 * statistics.median(around),
        }
        # Paste throughput.
        paste = 10 if smoke else 100
        results["paste"] = {
            "words_per_message": paste,
            **strip(run_load(batched, 1, 5 if smoke else 40, 1, paste=paste)),
        }
        # Memory per idle session, and per open stream of the bare echo.
        sessions = 200 if smoke else 10000
        results["memory"] = memory(models, sessions, 2 if smoke else 20, sizes)
    finally:
        for server in servers:
            server.stop()
    results["model_level"] = model_level(model_path, 20 if smoke else 500, 5 if smoke else 50)
    # Where the service's time goes at 100 sessions (py-spy), beside the echo's CPU per message there.
    results["profile"] = profile(models, args.model, 10 if smoke else 100, 30 if smoke else 300)
    return results


def memory(models: str, sessions: int, words: int, sizes: dict[str, int]) -> dict[str, Any]:
    from server.inference import load_model

    out: dict[str, Any] = {"sessions": sessions, "words_each": words}
    for label, count in (("no_history", 0), ("history", words)):
        server = start_service(f"memory {label}", models, True)
        try:
            before = settle_rss(server)
            create_sessions(server.target, sessions, count)
            after = settle_rss(server)
            out[f"{label}_bytes_per_session"] = (after - before) / sessions
        finally:
            server.stop()
    model = load_model(Path(models) / "sentiment-lstm.onnx")
    state_bytes = sum(4 * s.layers * s.hidden for s in model.states)
    step_bytes = 8 + 4 + 4 * len(model.labels) + state_bytes
    out["state_bytes"] = state_bytes
    out["rss_beyond_state_bytes"] = out["no_history_bytes_per_session"] - state_bytes
    out["accounted_bytes_per_session"] = accounted_session_bytes(model, sessions)
    out["beyond_state_bytes"] = out["accounted_bytes_per_session"] - state_bytes
    out["history_bytes_per_step"] = (out["history_bytes_per_session"] - out["no_history_bytes_per_session"]) / words
    out["raw_bytes_per_step"] = step_bytes
    # What an open gRPC stream costs by itself: a fresh bare echo (no heap left over from the
    # load runs for new streams to reuse) with open, idle streams.
    streams = min(sessions, 1000)
    echo = start("echo (memory)", [sys.executable, "-m", "bench.echo_server"])
    try:
        out["echo_stream_bytes"] = _stream_bytes(echo, streams, sizes)
    finally:
        echo.stop()
    out["echo_streams"] = streams
    return out


def _stream_bytes(echo: Server, streams: int, sizes: dict[str, int]) -> float:
    before = settle_rss(echo)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.load",
            "--target",
            echo.target,
            "--kind",
            "echo",
            "--streams",
            str(streams),
            "--words",
            "0",
            "--hold",
            "5",
            "--request-bytes",
            str(sizes["request_bytes"]),
            "--response-bytes",
            str(sizes["response_bytes"]),
        ],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        text=True,
    )
    holder.stdout.readline() if holder.stdout else None  # the streams are open now
    per_stream = (settle_rss(echo) - before) / streams
    holder.communicate(timeout=300)
    return per_stream


def accounted_session_bytes(model: Any, sessions: int) -> float:
    """Bytes each new idle session allocates (Python objects and arrays, tracemalloc), its state slot
    and the state bank's spare capacity included: RSS alone is too coarse for a figure of ~1 KB."""
    import tracemalloc

    from server.config import Settings
    from server.sessions import HistoryMode, SessionStore

    store = SessionStore(Settings())
    store.bank(model)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = [store.create(model, HistoryMode.DELTA) for _ in range(sessions)]
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(kept) == sessions
    return (after - before) / sessions


def strip(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k != "per_stream"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny counts, for the tests")
    parser.add_argument("--models", default="models")
    parser.add_argument("--model", default="sentiment-lstm")
    parser.add_argument("--out", help="folder for results.json, BENCHMARKS.md and the plots (default: docs/)")
    args = parser.parse_args()
    results = run(args)
    from bench.report import write_report

    out = Path(args.out) if args.out else (None if args.smoke else ROOT / "docs")
    if out is not None:
        write_report(results, out)
    print(json.dumps(results, default=float)[:2000] if args.smoke else json.dumps(summary(results)))
    return 0


def summary(results: dict[str, Any]) -> dict[str, Any]:
    from bench.report import ratios

    return ratios(results)


if __name__ == "__main__":
    sys.exit(main())
