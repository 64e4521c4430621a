"""The benchmark suite and the soak script run end to end with tiny counts (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_bench_smoke_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--runs", "2", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    kept = sorted((out / "bench-runs").glob("*.json"))
    assert len(kept) == 2, "each run's figures are kept"
    figures = json.loads(kept[0].read_text())
    assert set(figures["one_stream"]["rounds"][0]) == {"echo", "batching", "no batching"}
    assert set(figures["concurrency"]) == {"1", "10"}
    assert figures["texts"]["distinct_words"] > 3000  # realistic text, not a 30-word loop
    assert 0 < figures["token_cache"]["hit_rate"] < 1 and figures["token_cache"]["misses"] > 0
    assert set(figures["stateless"]) == {"10", "20"} and figures["stateless"]["20"][0]["stateless_ms"] > 0
    for fill in ("typed", "pasted"):
        assert figures["memory"][f"history_bytes_per_step_{fill}"] > 0
        assert figures["memory"][f"accounted_history_bytes_per_step_{fill}"] > 0
    rounds = figures["model_level"]["rounds"]
    assert len(rounds) == 2 and rounds[0]["ort_step_b1_us"] > 0 and rounds[0]["ort_sequence_500_us"] > 0
    assert figures["session_length"]["blocks"][0]["early_ms"] > 0
    report = (out / "BENCHMARKS.md").read_text()
    assert "python -m bench.run --smoke" in report
    assert "| ratio | median | range over rounds (n) | median of each run | target | met |" in report
    from bench.report import TARGETS, ratios

    runs = [json.loads(path.read_text()) for path in kept]
    computed = ratios(runs)
    assert set(computed) == {t.name for t in TARGETS}  # every target has a row
    for name in ("1,000 sessions: service throughput / echo", "cost per word, step 1,000 / step 10"):
        assert "not_measured" in computed[name] and f"| {name} | not measured:" in report
    for name in (
        "one stream: service p50 / echo p50",
        "step 10, end to end: stateless peer / service",
        "500 tokens, model level: one sequence call / one step",
        "history bytes per step / raw bytes, typed word by word",
        "batch 1: PyTorch eager step / ONNX Runtime step",
        "token cache hit rate over the run",
    ):
        assert computed[name]["median"] > 0 and len(computed[name]["per_run"]) == 2, name
    for plot in ("bench-concurrency.png", "bench-session-length.png"):
        assert (out / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for side in ("service", "echo"):
        profile = figures["profile"][side]
        assert profile["samples"] > 0 and abs(sum(profile["shares"].values()) - 1) < 1e-9
        assert profile["server_cpu_us_per_message"] > 0
    assert "## Where the time goes" in report and "| gRPC and the event loop |" in report


def test_the_stateless_peer_reads_a_prefix_as_the_step_model_does(tiny_models: dict[str, Path]) -> None:
    """The sequence graph made from a step model gives the step model's output after the last token."""
    import numpy as np

    from bench.sequence import SequenceRunner
    from wordstream.modelfile import load_model

    for path in tiny_models.values():
        step, sequence = load_model(path), SequenceRunner.load(path)
        rng = np.random.default_rng(7)
        for length in (1, 3, 40):
            ids = rng.integers(1, len(step.codec.vocab), size=length).tolist()
            state = step.initial_state(1)
            for token in ids:
                probs, state = step.run(np.array([token], np.int64), state)
            np.testing.assert_allclose(sequence.run([ids])[0], probs[0], atol=1e-6)


def test_profile_parts_follow_the_innermost_frame_of_ours() -> None:
    from bench.profile import TRANSPORT, part_of, summarise

    source = (ROOT / "wordstream/server/transport.py").read_text().splitlines()
    iteration = next(i for i, line in enumerate(source, 1) if "async for request in requests" in line)
    outer = ["<module> (server/__main__.py:34)", "Handle._run (asyncio/events.py:80)"]
    stream = f"WordstreamServicer.Stream (server/transport.py:{iteration})"
    encode = "WordAnswers.word (server/answers.py:120)"
    model = "Session.run (onnxruntime/capi/onnxruntime_inference_collection.py:406)"
    assert part_of(outer) == TRANSPORT
    assert part_of([*outer, stream]) == TRANSPORT  # awaiting grpc's next message
    assert part_of([*outer, f"WordstreamServicer.Stream (server/transport.py:{iteration + 3})"]).startswith("servicer")
    assert part_of([*outer, stream, encode]).startswith("answers")
    assert part_of([*outer, "Batcher._drain (server/batching.py:190)", model]).startswith("model calls")
    raw = f"{';'.join([*outer, stream, encode])} 3\n{';'.join(outer)} 1\n"
    assert summarise(raw) == {"samples": 4, "shares": {"answers (server/answers.py)": 0.75, TRANSPORT: 0.25}}


@pytest.mark.slow
def test_soak_short_variant_loses_no_session() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--seconds", "4", "--sessions", "20"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["sessions_lost"] == 0 and report["words_served"] > 0
    assert not [kind for kind in report["errors"] if "INTERNAL" in kind or kind == "bad accepted"]
    assert report["errors"].get("bad rejected (INVALID_ARGUMENT)", 0) > 0  # the bad messages were sent and refused
    assert set(report["rss_mb"]) == {"start", "peak", "end"}


@pytest.mark.slow
def test_scaling_bench_measures_every_setup_and_writes_the_doc(tmp_path: Path) -> None:
    """`python -m bench.scaling`, one short round: every set-up, every goal and the capacity model."""
    import shutil

    from bench import scaling

    shutil.copy(Path(__file__).resolve().parent.parent / "docs" / "SCALING.md", tmp_path / "SCALING.md")
    code = scaling.main(
        ["--runs", "1", "--rounds", "1", "--words", "5", "--single-words", "20", "--out", str(tmp_path)]
    )
    assert code == 0
    (run_file,) = (tmp_path / "bench-runs").glob("scaling-*.json")
    result = json.loads(run_file.read_text())
    (run,) = result["raw"]
    assert set(run["rounds"][0]) == set(scaling.SETUPS)
    assert run["redis_keys_left"] == 0  # every session closed: nothing left in the store
    envoy_cpu = run["rounds"][0]["envoy"]["streams_100"]["cpu_us_per_word"]
    assert set(envoy_cpu) == {"replica1", "replica2", "envoy", "redis"} and all(v > 0 for v in envoy_cpu.values())
    cluster_cpu = run["rounds"][0]["cluster"]["streams_100"]["cpu_us_per_word"]
    assert set(cluster_cpu) == {"replica1", *(f"redis-node{i}" for i in range(1, 7))}
    assert set(result["capacity"]) == {"10000", "100000"}
    doc = (tmp_path / "SCALING.md").read_text()
    assert "| Envoy: added p50 at one stream (ms) |" in doc and "| 100,000 | 300,000 |" in doc


@pytest.mark.slow
def test_failover_bench_kills_three_primaries_and_loses_nothing(tmp_path: Path) -> None:
    """`python -m bench.failover`, short: three primary kills under load (shard A, B, A again),
    the time to the first answer after each, and nothing lost; the doc's marked part rewritten."""
    import shutil

    from bench import failover

    shutil.copy(Path(__file__).resolve().parent.parent / "docs" / "SCALING.md", tmp_path / "SCALING.md")
    assert failover.main(["--sessions", "12", "--between", "1", "--out", str(tmp_path)]) == 0
    (run_file,) = (tmp_path / "bench-runs").glob("failover-*.json")
    report = json.loads(run_file.read_text())
    assert [k["kill"] for k in report["kills"]] == ["shard A", "shard B", "shard A again"]
    assert all(0 < k["first_answer_s"] < 30 for k in report["kills"])
    assert report["sessions_with_words_lost"] == 0 and report["sessions_with_wrong_outputs"] == 0
    doc = (tmp_path / "SCALING.md").read_text()
    assert (
        "| shard A again |" in doc.split("<!-- bench.failover: begin -->")[1].split("<!-- bench.failover: end -->")[0]
    )


@pytest.mark.slow
def test_storage_bench_measures_redis_memory_per_word(tmp_path: Path) -> None:
    """`python -m bench.storage`, short: Redis's memory per stored word against the raw step bytes."""
    import shutil

    from bench import storage

    shutil.copy(Path(__file__).resolve().parent.parent / "docs" / "SCALING.md", tmp_path / "SCALING.md")
    assert storage.main(["--sessions", "5", "--words", "4", "--out", str(tmp_path)]) == 0
    (run_file,) = (tmp_path / "bench-runs").glob("storage-*.json")
    report = json.loads(run_file.read_text())
    assert report["words"] == 20 and report["steps"] >= 20 and report["used_memory_added"] > 0
    assert abs(report["ratio"] - report["bytes_per_word"] / report["raw_bytes_per_word"]) < 0.01
    assert "bytes per stored word" in (tmp_path / "SCALING.md").read_text()


@pytest.mark.slow
def test_groupcommit_bench_measures_per_node_against_per_slot(tmp_path: Path) -> None:
    """`python -m bench.groupcommit`, short: both groupings write every word (a refused write fails
    the bench), each round measures both, the verdict names the faster, the doc is rewritten."""
    import shutil

    from bench import groupcommit

    shutil.copy(Path(__file__).resolve().parent.parent / "docs" / "SCALING.md", tmp_path / "SCALING.md")
    assert (
        groupcommit.main(["--runs", "1", "--rounds", "2", "--sessions", "20", "--writes", "5", "--out", str(tmp_path)])
        == 0
    )
    (run_file,) = (tmp_path / "bench-runs").glob("groupcommit-*.json")
    report = json.loads(run_file.read_text())
    (run,) = report["raw"]
    assert len(run["rounds"]) == 2 and all(
        r[v]["writes"] == 100 for r in run["rounds"] for v in ("per_node", "per_slot")
    )
    doc = (tmp_path / "SCALING.md").read_text().split("<!-- bench.groupcommit: begin -->")[1]
    assert "| writes/s |" in doc and "Faster:" in doc


@pytest.mark.slow
def test_compiled_bench_measures_echo_pure_and_compiled_side_by_side(tmp_path: Path) -> None:
    """`python -m bench.compiled`, short: a compiled build is made and served, every round
    measures the three servers in a rotating order, and COST.md's marked part is rewritten."""
    import shutil

    from bench import compiled

    shutil.copy(Path(__file__).resolve().parent.parent / "docs" / "COST.md", tmp_path / "COST.md")
    argv = ["--runs", "1", "--rounds", "2", "--words", "10", "--single-words", "30", "--out", str(tmp_path)]
    assert compiled.main(argv) == 0
    (run_file,) = (tmp_path / "bench-runs").glob("compiled-*.json")
    (run,) = json.loads(run_file.read_text())["raw"]
    assert [list(r) for r in run["rounds"]] == [["echo", "pure", "compiled"], ["pure", "compiled", "echo"]]
    assert all(r[n]["streams_100"]["messages"] == 1000 for r in run["rounds"] for n in compiled.SERVERS)
    doc = (tmp_path / "COST.md").read_text().split("<!-- bench.compiled: begin -->")[1]
    assert "| server CPU per word at 100 streams |" in doc and f"bench-runs/{run_file.name}" in doc


@pytest.mark.slow
def test_gateway_bench_measures_pages_through_the_gateway_and_straight(tmp_path: Path) -> None:
    """`python -m bench.gateway`, short: pages type through two real gateways (a stream per session,
    Multiplex) and straight to the server, in turns; each gateway is profiled; COST.md's marked part
    is rewritten."""
    import shutil

    from bench import gateway

    shutil.copy(ROOT / "docs" / "COST.md", tmp_path / "COST.md")
    argv = ["--pages", "5", "--words", "8", "--runs", "1", "--rounds", "2", "--multiplex-streams", "2"]
    assert gateway.main(argv + ["--out", str(tmp_path)]) == 0
    (run_file,) = (tmp_path / "bench-runs").glob("gateway-*.json")
    (run,) = json.loads(run_file.read_text())["raw"]
    orders = [list(r) for r in run["rounds"]]
    assert orders == [["gateway", "multiplex", "direct"], ["multiplex", "direct", "gateway"]]
    for r in run["rounds"]:
        assert r["gateway"]["gateway_us_per_word"] > 0 and r["multiplex"]["gateway_us_per_word"] > 0
        assert r["direct"]["server_us_per_word"] > 0
    assert all(abs(sum(shares.values()) - 1) < 1e-9 for shares in run["profile"].values())
    doc = (tmp_path / "COST.md").read_text().split("<!-- bench.gateway: begin -->")[1]
    assert "gateway, 2 Multiplex streams" in doc
    assert "| gateway CPU µs per word |" in doc and f"bench-runs/{run_file.name}" in doc


@pytest.mark.slow
def test_floor_bench_runs_echo_floor_and_service_side_by_side(tmp_path: Path) -> None:
    """`python -m bench.floor`, short: the echo, the floor (batched and inline) and the service take
    the same loads; every figure is there for each, and COST.md's marked part is rewritten."""
    import shutil

    from bench import floor

    shutil.copy(ROOT / "docs" / "COST.md", tmp_path / "COST.md")
    argv = ["--runs", "1", "--rounds", "1", "--streams-words", "5", "40", "--one-stream-words", "100"]
    assert floor.main(argv + ["--out", str(tmp_path)]) == 0
    (run_file,) = (tmp_path / "bench-runs").glob("floor-*.json")
    ((figures,),) = json.loads(run_file.read_text())["raw"]
    assert set(figures) == {"5", "1"}
    for load in figures.values():
        assert set(load) == {"echo", "floor", "floor inline", "service"}
        # /proc counts CPU in 10 ms ticks: a short load may read 0 for the echo (its ratios are then NaN)
        assert all(side["cpu_us"] >= 0 and side["words_per_second"] > 0 for side in load.values())
    doc = (tmp_path / "COST.md").read_text().split("<!-- bench.floor: begin -->")[1]
    assert "| 5 streams | floor |" in doc and f"bench-runs/{run_file.name}" in doc
