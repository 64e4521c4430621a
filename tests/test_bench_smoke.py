"""The benchmark suite and the soak script run end to end with tiny counts (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_smoke_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads((out / "bench-results.json").read_text())
    assert set(figures["one_stream"]) == {"echo", "batching", "no batching"}
    assert set(figures["concurrency"]) == {"1", "10"}
    for name in ("session_length", "stateless", "paste", "memory", "model_level"):
        assert figures[name], name
    assert figures["model_level"]["ort_step_b1_us"] > 0 and figures["model_level"]["thread_handoff_us"] > 0
    assert figures["session_length"]["early_ms"] > 0 and figures["session_length"]["late_ms"] > 0
    report = (out / "BENCHMARKS.md").read_text()
    assert "python -m bench.run --smoke" in report and "| ratio | measured | target | met |" in report
    for plot in ("bench-concurrency.png", "bench-session-length.png"):
        assert (out / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    profile = figures["profile"]
    assert profile["samples"] > 0 and abs(sum(profile["shares"].values()) - 1) < 1e-9
    assert "## Where the time goes" in report and "| gRPC and the event loop |" in report


def test_profile_parts_follow_the_innermost_frame_of_ours() -> None:
    from bench.profile import TRANSPORT, part_of, summarise

    source = (ROOT / "server/transport.py").read_text().splitlines()
    iteration = next(i for i, line in enumerate(source, 1) if "async for request in request_iterator" in line)
    outer = ["<module> (server/__main__.py:34)", "Handle._run (asyncio/events.py:80)"]
    stream = f"WordstreamServicer.Stream (server/transport.py:{iteration})"
    encode = "WordAnswers.answer (server/wire.py:120)"
    model = "Session.run (onnxruntime/capi/onnxruntime_inference_collection.py:406)"
    assert part_of(outer) == TRANSPORT
    assert part_of([*outer, stream]) == TRANSPORT  # awaiting grpc's next message
    assert part_of([*outer, f"WordstreamServicer.Stream (server/transport.py:{iteration + 3})"]).startswith("servicer")
    assert part_of([*outer, stream, encode]).startswith("answer encoding")
    assert part_of([*outer, "Batcher._drain (server/batching.py:190)", model]).startswith("model calls")
    raw = f"{';'.join([*outer, stream, encode])} 3\n{';'.join(outer)} 1\n"
    assert summarise(raw) == {"samples": 4, "shares": {"answer encoding (server/wire.py)": 0.75, TRANSPORT: 0.25}}


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
