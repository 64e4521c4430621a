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
    assert figures["model_level"]["ort_step_b1_us"] > 0
    report = (out / "BENCHMARKS.md").read_text()
    assert "python -m bench.run --smoke" in report and "| ratio | measured | target | met |" in report
    for plot in ("bench-concurrency.png", "bench-session-length.png"):
        assert (out / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


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
