"""The benchmark suite: everything side by side, in rounds, over several full runs.

    python -m bench.run                  # 3 full runs (about 12 minutes each here), then the report
    python -m bench.run --runs 1         # one run
    python -m bench.run --smoke --out D  # tiny counts, seconds (the test suite runs this)
    python -m bench.report docs/bench-runs/2026-...-run*.json   # the report again, from kept runs

Servers: (a) a bare grpc.aio echo stream with the service's message sizes and gRPC options,
(b) the service with micro-batching, (c) the service with batching off, (d) the stateless
peer: a classifier endpoint sent the whole text so far, answered by one ONNX Runtime call
over it (bench/stateless_server.py); at the model level, (e) PyTorch eager against the ONNX
Runtime step; (f) the service as a wheel install builds it, its hot modules compiled (setup.py;
left out with --smoke or --no-compiled). At 100 sessions, besides a stream per session, the
same service is also driven through one Multiplex stream carrying all 100 sessions, each
message one word entry of every session ("multiplex", "compiled multiplex"). Every load
types the words of the test split's texts (bench/texts.py).

Within a run the servers take turns, round after round, and every figure is kept per round;
each run's JSON is kept in docs/bench-runs/ (never overwritten), and the report gives every
ratio as the median over all rounds of all runs, its range, and each run's median.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from bench import texts
from bench.profile import profile
from bench.servers import ENV, ROOT, Server, install_copy, load, start_echo, start_service, start_stateless
from wordstream.v1 import wordstream_pb2 as pb
from wordstream.v1 import wordstream_pb2_grpc as pb_grpc

HANDOFFS = 50  # thread round trips per timed sample
ONE_STREAM_WORDS = 1000  # words of the one-stream load per round and server: a p99 from 1,000 samples
STATELESS_METHOD = "/bench.Stateless/Classify"


def in_rounds(servers: list[Server], rounds: int, measure: Callable[[Server], dict[str, Any]]) -> list[dict[str, Any]]:
    """``measure(server)`` for every server, taking turns, ``rounds`` times: one dict per round,
    server name -> figures, so a slow spell of the shared machine falls on every side. The order
    rotates from round to round, so no side always goes first (or last)."""
    return [
        {server.name: measure(server) for server in servers[r % len(servers) :] + servers[: r % len(servers)]}
        for r in range(rounds)
    ]


async def open_filled(
    stub: pb_grpc.WordstreamStub, words: list[str], history: pb.HistoryMode = pb.HISTORY_MODE_DELTA
) -> Any:
    """A new session's stream that has read ``words`` in one paste (their answers read too)."""
    call = stub.Stream()
    await call.write(pb.StreamRequest(open=pb.Open(history=history)))
    await call.read()
    if words:
        await call.write(pb.StreamRequest(paste=pb.Paste(words=words)))
        for _ in words:
            await call.read()
    return call


async def timed_word(call: Any, word: str) -> float:
    begin = time.perf_counter()
    await call.write(pb.StreamRequest(word=word))
    await call.read()
    return time.perf_counter() - begin


def step_cost(target: str, words: list[str], early: int, late: int, blocks: int, pairs: int) -> dict[str, Any]:
    """Per-word latency at step ``early`` against step ``late``, measured in turns, in blocks.

    One session is filled to ``late`` words; fresh sessions are filled to ``early`` words.
    Then, pair after pair, one word goes to a fresh session (a new one every 20 pairs) and one
    to the long session, so both sides see the same moments of the shared machine. Each block
    of ``pairs`` pairs gives one ratio."""

    async def run() -> list[dict[str, float]]:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = pb_grpc.WordstreamStub(channel)
            long = await open_filled(stub, words[:late])
            out, short, cursor = [], None, late
            for _ in range(blocks):
                at_early, at_late = [], []
                for i in range(pairs):
                    if i % 20 == 0:
                        if short is not None:
                            await short.done_writing()
                        short = await open_filled(stub, words[cursor : cursor + early])
                        cursor += early
                    at_early.append(await timed_word(short, words[cursor % len(words)]))
                    at_late.append(await timed_word(long, words[(cursor + 1) % len(words)]))
                    cursor += 2
                out.append(
                    {"early_ms": 1000 * statistics.median(at_early), "late_ms": 1000 * statistics.median(at_late)}
                )
            await long.done_writing()
            if short is not None:
                await short.done_writing()
            return out

    return {"early_step": early, "late_step": late, "pairs_per_block": pairs, "blocks": asyncio.run(run())}


def stateless_pairs(
    service: str, stateless: str, words: list[str], steps: list[int], blocks: int, pairs: int
) -> dict[str, Any]:
    """The next word's answer at step N: the service (one word to a session that has read N words)
    against the stateless peer (the N + 1 words so far, one call), in turns, pair after pair.

    Each block starts a fresh session at another place in the texts and measures ``pairs``
    words (steps N to N + pairs - 1); each block gives one ratio per N."""

    async def run() -> dict[str, list[dict[str, float]]]:
        out: dict[str, list[dict[str, float]]] = {}
        async with grpc.aio.insecure_channel(service) as a, grpc.aio.insecure_channel(stateless) as b:
            stub, classify = pb_grpc.WordstreamStub(a), b.unary_unary(STATELESS_METHOD)
            for n in steps:
                out[str(n)] = []
                for block in range(blocks):
                    start = (block * 3571 + n * 7) % (len(words) - n - pairs - 1)
                    call = await open_filled(stub, words[start : start + n], pb.HISTORY_MODE_NONE)
                    ours, theirs = [], []
                    for k in range(pairs):
                        prefix = words[start : start + n + k + 1]
                        begin = time.perf_counter()
                        answer = pb.Output.FromString(await classify(pb.Paste(words=prefix).SerializeToString()))
                        theirs.append(time.perf_counter() - begin)
                        assert answer.label, "the stateless peer answered nothing"
                        ours.append(await timed_word(call, prefix[-1]))
                    await call.done_writing()
                    out[str(n)].append(
                        {"stateless_ms": 1000 * statistics.median(theirs), "service_ms": 1000 * statistics.median(ours)}
                    )
        return out

    return asyncio.run(run())


def message_sizes(target: str) -> tuple[int, int]:
    """Bytes of a typical word request and its answer (delta history, the default model)."""
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.WordstreamStub(channel)
        requests = [pb.StreamRequest(open=pb.Open()), pb.StreamRequest(word="wonderful")]
        responses = list(stub.Stream(iter(requests + [pb.StreamRequest(close=pb.Close())])))
        return len(requests[1].SerializeToString()), len(responses[1].SerializeToString())


def create_sessions(target: str, sessions: int) -> list[str]:
    """Open ``sessions`` sessions and leave them idle, streams ended; returns their ids."""

    async def one(stub: pb_grpc.WordstreamStub) -> str:
        call = stub.Stream()
        await call.write(pb.StreamRequest(open=pb.Open(history=pb.HISTORY_MODE_NONE)))
        opened = await call.read()
        await call.done_writing()
        await call.read()  # EOF: the stream ends, the session stays (detached)
        return str(opened.session_id)

    async def run() -> list[str]:
        ids: list[str] = []
        async with grpc.aio.insecure_channel(target) as channel:
            stub = pb_grpc.WordstreamStub(channel)
            for first in range(0, sessions, 100):
                ids += await asyncio.gather(*(one(stub) for _ in range(min(100, sessions - first))))
        return ids

    return asyncio.run(run())


def fill_sessions(target: str, ids: list[str], words: list[str], per_session: int, typed: bool) -> None:
    """Resume each session and give it ``per_session`` words, typed one by one or in one paste."""

    async def one(stub: pb_grpc.WordstreamStub, n: int, session_id: str) -> None:
        text = [words[(n * 997 + k) % len(words)] for k in range(per_session)]
        call = stub.Stream()
        await call.write(pb.StreamRequest(resume=pb.Resume(session_id=session_id)))
        await call.read()
        for request in (
            [pb.StreamRequest(word=w) for w in text] if typed else [pb.StreamRequest(paste=pb.Paste(words=text))]
        ):
            await call.write(request)
            for _ in range(1 if typed else len(text)):
                await call.read()
        await call.done_writing()
        await call.read()

    async def run() -> None:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = pb_grpc.WordstreamStub(channel)
            for first in range(0, len(ids), 100):
                await asyncio.gather(*(one(stub, n, ids[n]) for n in range(first, min(len(ids), first + 100))))

    asyncio.run(run())


def settle_rss(server: Server) -> int:
    time.sleep(1.0)
    return server.rss()


def memory(models: str, model_name: str, sessions: int, history_sessions: int, words: list[str], per_session: int,
           sizes: dict[str, int]) -> dict[str, Any]:  # fmt: skip
    """Resident memory per idle session, and per step of history filled by typing and by pasting."""
    from wordstream.modelfile import load_model

    model = load_model(Path(models) / f"{model_name}.onnx")
    steps = sum(len(model.encode(words[(n * 997 + k) % len(words)]).ids)
                for n in range(history_sessions) for k in range(per_session))  # fmt: skip
    out: dict[str, Any] = {"sessions": sessions, "history_sessions": history_sessions, "words_each": per_session}
    out["steps_each"] = steps / history_sessions
    server = start_service("memory: idle sessions", models)
    try:
        before = settle_rss(server)
        create_sessions(server.target, sessions)
        out["no_history_bytes_per_session"] = (settle_rss(server) - before) / sessions
    finally:
        server.stop()
    for fill in ("typed", "pasted"):
        server = start_service(f"memory: {fill}", models)
        try:  # the sessions first, then their words: only the histories differ
            ids = create_sessions(server.target, history_sessions)
            empty = settle_rss(server)
            fill_sessions(server.target, ids, words, per_session, typed=fill == "typed")
            out[f"history_bytes_per_step_{fill}"] = (settle_rss(server) - empty) / steps
        finally:
            server.stop()
        out[f"accounted_history_bytes_per_step_{fill}"] = (
            accounted_history_bytes(model, words, history_sessions, per_session, fill == "typed") / steps
        )
    state_bytes = sum(4 * s.layers * s.hidden for s in model.states)
    out["state_bytes"] = state_bytes
    out["raw_bytes_per_step"] = 8 + 4 + 4 * len(model.labels) + state_bytes
    out["accounted_bytes_per_session"] = accounted_session_bytes(model, sessions)
    out["beyond_state_bytes"] = out["accounted_bytes_per_session"] - state_bytes
    # What an open gRPC stream costs by itself: a fresh bare echo with open, idle streams.
    streams = min(sessions, 1000)
    echo = start_echo("echo (memory)")
    try:
        out["echo_stream_bytes"] = _stream_bytes(echo, streams, sizes)
    finally:
        echo.stop()
    out["echo_streams"] = streams
    return out


def _stream_bytes(echo: Server, streams: int, sizes: dict[str, int]) -> float:
    before = settle_rss(echo)
    command = [sys.executable, "-m", "bench.load", "--target", echo.target, "--kind", "echo", "--streams", str(streams)]
    command += ["--words", "0", "--hold", "5", "--request-bytes", str(sizes["request_bytes"])]
    command += ["--response-bytes", str(sizes["response_bytes"])]
    holder = subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, text=True)
    holder.stdout.readline() if holder.stdout else None  # the streams are open now
    per_stream = (settle_rss(echo) - before) / streams
    holder.communicate(timeout=300)
    return per_stream


def accounted_session_bytes(model: Any, sessions: int) -> float:
    """Bytes each new idle session allocates (Python objects and arrays, tracemalloc), its state slot
    and the state bank's spare capacity included: RSS alone is too coarse for a figure of ~1 KB."""
    import tracemalloc

    from wordstream.server.config import Settings
    from wordstream.server.history import HistoryMode
    from wordstream.server.store import SessionStore

    store = SessionStore(Settings())
    store.bank(model)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = [store.create(model, HistoryMode.DELTA) for _ in range(sessions)]
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(kept) == sessions
    return (after - before) / sessions


def accounted_history_bytes(model: Any, words: list[str], sessions: int, per_session: int, typed: bool) -> float:
    """Bytes the histories of ``sessions`` sessions allocate (tracemalloc) for ``per_session`` words
    each, read through the server's own code (Session.push_words, real model calls), typed word by
    word or in one paste."""
    import tracemalloc

    from wordstream.server.batching import Batcher
    from wordstream.server.config import Settings
    from wordstream.server.history import HistoryMode
    from wordstream.server.store import SessionStore

    store = SessionStore(Settings())
    batcher = Batcher(model, store.bank(model))
    made = [store.create(model, HistoryMode.NONE) for _ in range(sessions)]
    texts_of = [[words[(n * 997 + k) % len(words)] for k in range(per_session)] for n in range(sessions)]

    async def fill() -> None:
        for session, text in zip(made, texts_of):
            for group in [[w] for w in text] if typed else [text]:
                await session.push_words(group, batcher)

    for text in texts_of:  # the token cache is not the histories' cost
        for word in text:
            model.encode(word)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    asyncio.run(fill())
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return float(after - before)


def model_level(model_path: Path, words: list[str], repeats: int, rounds: int) -> dict[str, Any]:
    """(d) and (e) at the model level: the ORT step, the stateless peer's one sequence call over
    10, 100 and 500 tokens, PyTorch eager, and a thread hand-off. The measurements take turns,
    ``rounds`` times; each round keeps the median of its samples."""
    from bench.sequence import SequenceRunner
    from wordstream.modelfile import load_model

    model = load_model(model_path, threads=1)
    sequence = SequenceRunner.load(model_path)
    ids = [i for word in words[:600] for i in model.encode(word).ids]
    work: dict[str, tuple[Callable[[], Any], int]] = {}  # name -> (callable, samples per round)
    for batch in (1, 64):
        tokens, state = np.resize(np.array(ids, np.int64), batch), model.initial_state(batch)
        work[f"ort_step_b{batch}_us"] = (functools.partial(model.run, tokens, state), repeats * 2)
    for n in (10, 100, 500):
        work[f"ort_sequence_{n}_us"] = (functools.partial(sequence.run, [ids[:n]]), max(3, repeats // (1 + n // 100)))
    out: dict[str, Any] = {}
    try:
        import torch

        from wordstream.training.config import TrainConfig
        from wordstream.training.model import StepGraph, TextClassifier
    except ImportError:
        torch = None  # type: ignore[assignment]
        out["torch"] = "not installed (pip install torch==2.13.0)"
    if torch is not None:
        torch.set_num_threads(1)
        torch.set_grad_enabled(False)
        meta = model.metadata
        # Timing does not depend on the weights' values: the same architecture, initialised afresh.
        net = TextClassifier(
            TrainConfig.from_dict(meta.training),
            len(model.codec.vocab),
            len(model.labels),
            meta.learned_vocab_size,
            len(meta.lexicon_features),
        ).eval()
        step = StepGraph(net)
        for batch in (1, 64):
            tokens_t, state_t = torch.from_numpy(np.resize(np.array(ids, np.int64), batch)), net.init_state(batch)
            work[f"torch_step_b{batch}_us"] = (functools.partial(step, tokens_t, *state_t), repeats * 2)

    # What a model call on a worker thread would add: one round trip from the event loop to a
    # thread and back, doing nothing (server/batching.py runs model calls on the loop instead).
    loop = asyncio.new_event_loop()
    pool = ThreadPoolExecutor(1)

    async def handoffs() -> None:
        for _ in range(HANDOFFS):
            await loop.run_in_executor(pool, int)

    work["thread_handoff_us"] = (lambda: loop.run_until_complete(handoffs()), repeats)
    per_round: list[dict[str, float]] = []
    for _ in range(rounds):
        figures = {}
        for name, (fn, samples) in work.items():
            times = []
            for _ in range(samples):
                begin = time.perf_counter()
                fn()
                times.append(time.perf_counter() - begin)
            figures[name] = 1e6 * statistics.median(times) / (HANDOFFS if name == "thread_handoff_us" else 1)
        per_round.append(figures)
    pool.shutdown()
    loop.close()
    out["rounds"] = per_round
    return out


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
        "commit": checkout_commit(),
    }


def checkout_commit() -> str:
    """The commit the run measured ("+ changes" when the checkout differs from it; "" outside git)."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", "wordstream", "bench"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return ""
    return head.stdout.strip() + (" + changes" if status.stdout.strip() else "")


MULTIPLEXED = 100  # sessions on the one Multiplex stream: one word entry of each per message


def on_multiplex(server: Server, name: str) -> Server:
    """The same server process, driven through one Multiplex stream (a name of its own in the rounds)."""
    return Server(name, server.process, server.port, server.metrics_port)


def run_once(args: argparse.Namespace, texts_file: Path, compiled_package: Path | None) -> dict[str, Any]:
    """One full run of every scenario."""
    smoke = args.smoke
    model_path = Path(args.models) / f"{args.model}.onnx"
    words = texts.read_words(texts_file)
    results: dict[str, Any] = {"machine": machine(), "command": " ".join(["python -m bench.run", *sys.argv[1:]])}
    results["texts"] = {"texts": len(texts.texts()), "words": len(words), "distinct_words": len(set(words))}
    echo = start_echo()
    batched = start_service("batching", args.models)
    unbatched = start_service("no batching", args.models, batching=False)
    stateless = start_stateless(model_path)
    servers = [echo, batched, unbatched]
    multiplexed = [on_multiplex(batched, "multiplex")]
    if compiled_package is not None:
        compiled = start_service("compiled", args.models, package=compiled_package)
        servers.append(compiled)
        multiplexed.append(on_multiplex(compiled, "compiled multiplex"))
    try:
        request_bytes, response_bytes = message_sizes(batched.target)
        results["message_bytes"] = {"request": request_bytes, "response": response_bytes}
        sizes = {"request_bytes": request_bytes, "response_bytes": response_bytes}

        def run_load(server: Server, streams: int, per_stream: int, processes: int, **extra: Any) -> dict[str, Any]:
            if server is echo:
                return load(server, "echo", streams, per_stream, processes, False, **sizes, **extra)
            if server in multiplexed:  # one stream of all the sessions: as many words as their streams send
                return load(server, "multiplex", 1, per_stream, 1, texts=texts_file, entries=streams)
            return load(server, "service", streams, per_stream, processes, texts=texts_file, **extra)

        def concurrent_load(streams: int, per_stream: int, processes: int, server: Server) -> dict[str, Any]:
            return run_load(server, streams, per_stream, processes)

        rounds = 1 if smoke else 3
        results["one_stream"] = {
            # At least 1,000 words a round: its p99 is read from 1,000 samples, not interpolated from a few.
            "rounds": in_rounds(servers, rounds, lambda s: run_load(s, 1, 30 if smoke else ONE_STREAM_WORDS, 1))
        }
        results["concurrency"] = {}
        for c in [1, 10] if smoke else [1, 10, 100, 1000]:
            # About 10,000 words a round; 40,000 at 1,000 sessions, so each stream sends 40 words.
            per_stream = max(5, min(400, (300 if smoke else 10000) // c)) if c < 1000 else 40
            processes = 1 if c < 100 else 2
            sides = servers + multiplexed if c == (10 if smoke else MULTIPLEXED) else servers
            results["concurrency"][str(c)] = {
                "rounds": in_rounds(sides, rounds, functools.partial(concurrent_load, c, per_stream, processes))
            }
        # Cost per word against session length: one long session's every word (the plot), and
        # step 10 against step 1,000 measured in turns (the ratio).
        length = 60 if smoke else 1000
        long = load(batched, "service", 1, length, 1, keep_latencies=True, texts=texts_file)
        results["session_length"] = {
            "per_word_ms": [1000 * x for x in long["latencies"][0]],
            **step_cost(batched.target, words, 10, length, 1 if smoke else 5, 20 if smoke else 80),
        }
        # The stateless peer against the service at steps 10, 100 and 500.
        results["stateless"] = stateless_pairs(
            batched.target, stateless.target, words, [10, 20] if smoke else [10, 100, 500], 1 if smoke else 5, 10
        )
        paste = 10 if smoke else 100
        results["paste"] = {
            "words_per_message": paste,
            "rounds": in_rounds([batched], rounds, lambda s: run_load(s, 1, 5 if smoke else 40, 1, paste=paste)),
        }
        hits, misses = (batched.metric(f"wordstream_token_cache_{k}_total") for k in ("hits", "misses"))
        results["token_cache"] = {"hits": hits, "misses": misses, "hit_rate": hits / max(1.0, hits + misses)}
    finally:
        for server in [*servers, stateless]:
            server.stop()
    results["memory"] = memory(
        args.models, args.model, 200 if smoke else 10000, 100 if smoke else 2000, words, 20, sizes
    )
    results["model_level"] = model_level(model_path, words, 5 if smoke else 50, 2 if smoke else 5)
    # Where the time goes at 100 sessions (py-spy), the service and the echo under the same load.
    results["profile"] = profile(
        args.models, args.model, 10 if smoke else 100, 30 if smoke else 300, texts_file, (request_bytes, response_bytes)
    )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny counts, for the tests")
    parser.add_argument("--runs", type=int, default=3, help="full runs, one after another (default 3)")
    parser.add_argument("--models", default="models")
    parser.add_argument("--model", default="sentiment-lstm")
    parser.add_argument("--out", help="folder for BENCHMARKS.md, the plots and bench-runs/ (default: docs/)")
    parser.add_argument("--no-compiled", action="store_true", help="leave out the compiled build (no C compiler)")
    args = parser.parse_args()
    from bench.report import summary, write_report

    out = Path(args.out) if args.out else (None if args.smoke else ROOT / "docs")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    runs, paths = [], []
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        texts_file = texts.write(Path(tmp) / "texts.txt")
        package = None
        if not (args.smoke or args.no_compiled):
            package = install_copy(Path(tmp) / "compiled", WORDSTREAM_COMPILE="1")
            if not list(package.rglob("*.so")):
                raise SystemExit("the compiled build compiled nothing (no C compiler?); use --no-compiled")
        for i in range(1, args.runs + 1):
            print(f"run {i} of {args.runs}", file=sys.stderr, flush=True)
            run = run_once(args, texts_file, package)
            run["run"] = i
            runs.append(run)
            if out is not None:  # each run is kept as it ends, so an interrupted series keeps what it measured
                folder = out / "bench-runs"
                folder.mkdir(parents=True, exist_ok=True)
                paths.append(folder / f"{stamp}-run{i}.json")
                paths[-1].write_text(json.dumps(run, indent=1, default=float))
    if out is not None:
        write_report(runs, out, [str(p.relative_to(out)) for p in paths])
    print(json.dumps(summary(runs), default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
