"""The processes of a benchmark: the servers under test, their peers, and the load generators."""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.profile import cpu_seconds
from deploy.cluster import free_port

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "GRPC_VERBOSITY": "ERROR", "PYTHONPATH": str(ROOT)}


@dataclass
class Server:
    name: str
    process: subprocess.Popen[str]
    port: int
    metrics_port: int | None = None

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

    def metric(self, name: str) -> float:
        """One sample of the server's Prometheus endpoint (the service only)."""
        if self.metrics_port is None:
            raise ValueError(f"{self.name} has no metrics endpoint")
        body = urllib.request.urlopen(f"http://localhost:{self.metrics_port}/metrics", timeout=10).read().decode()
        match = re.search(rf"^{re.escape(name)} (\S+)$", body, re.M)
        if not match:
            raise ValueError(f"{self.name}: no metric {name}")
        return float(match.group(1))

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start(
    name: str,
    command: list[str],
    metrics_port: int | None = None,
    package: Path | None = None,
    port: str = r"port (\d+)",
) -> Server:
    """Start ``command`` and read its port from its first line (the regular expression ``port``);
    ``package``: a folder holding an installed wordstream (a compiled build) that the process
    imports instead of the checkout's."""
    cwd, env = (ROOT, ENV) if package is None else (package, {**ENV, "PYTHONPATH": f"{package}:{ROOT}"})
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = process.stdout.readline() if process.stdout else ""
    match = re.search(port, line)
    if not match:
        process.kill()
        raise RuntimeError(f"{name} did not start: {line!r}")
    return Server(name, process, int(match.group(1)), metrics_port)


def start_service(
    name: str, models: str, batching: bool = True, extra: list[str] | None = None, package: Path | None = None
) -> Server:
    """``python -m wordstream.server`` with its defaults (and its metrics endpoint on a free port);
    ``package``: run an installed build (bench.compiled) instead of the checkout."""
    metrics = free_port()
    models = str(Path(models).resolve())
    command = [sys.executable, "-m", "wordstream.server", "--host", "localhost", "--port", "0", "--models", models]
    command += ["--batching", str(batching).lower(), "--log-level", "WARNING", "--metrics-port", str(metrics)]
    return start(name, command + (extra or []), metrics, package)


def start_echo(name: str = "echo") -> Server:
    return start(name, [sys.executable, "-m", "bench.echo_server"])


def start_stateless(model_path: Path, name: str = "stateless") -> Server:
    return start(name, [sys.executable, "-m", "bench.stateless_server", "--model", str(model_path)])


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def load(
    server: Server, kind: str, streams: int, words: int, processes: int, keep_latencies: bool = False, **options: Any
) -> dict[str, Any]:
    """Run ``processes`` load generators at once (streams split between them) and merge their figures;
    ``keep_latencies`` keeps every stream's latencies (seconds) too. ``options`` are bench.load's flags."""
    processes = max(1, min(processes, streams))
    start_at = time.time() + 1.5 + streams / 400  # after every generator has opened its streams
    command = [sys.executable, "-m", "bench.load", "--target", server.target, "--kind", kind]
    command += ["--words", str(words), "--start-at", str(start_at)]
    for key, value in options.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    shares = [streams // processes + (i < streams % processes) for i in range(processes)]
    firsts = [sum(shares[:i]) for i in range(processes)]
    cpu_before = server.cpu()
    children = [
        subprocess.Popen(
            command + ["--streams", str(n), "--first-stream", str(first)], cwd=ROOT, env=ENV, stdout=subprocess.PIPE
        )
        for n, first in zip(shares, firsts)
    ]
    results = [json.loads(child.communicate(timeout=900)[0]) for child in children]
    latencies = [x for r in results for stream in r["latencies"] for x in stream]
    wall = max(r["wall"] for r in results)
    per_message = max(1, options.get("paste", 0) or 1) * (options.get("entries", 1) if kind == "multiplex" else 1)
    return {
        **({"latencies": [stream for r in results for stream in r["latencies"]]} if keep_latencies else {}),
        "streams": streams,
        "processes": processes,
        "words_per_second": len(latencies) * per_message / wall,
        "p50_ms": 1000 * percentile(latencies, 50),
        "p99_ms": 1000 * percentile(latencies, 99),
        "server_cpu_s": server.cpu() - cpu_before,
        "client_cpu_s": sum(r["cpu"] for r in results),
        "wall_s": wall,
        "messages": len(latencies),
        "words": len(latencies) * per_message,
    }


def spread(per_run: list[list[float]]) -> dict[str, Any]:
    """A per-round figure over runs: its median and range over every round, and each run's median."""
    every = [v for values in per_run for v in values]
    return {
        "median": statistics.median(every),
        "min": min(every),
        "max": max(every),
        "run_medians": [statistics.median(v) for v in per_run],
    }


def kept_name(bench: str, report: dict[str, Any]) -> str:
    """The name a run's figures are kept under in bench-runs/."""
    return f"{bench}-{report['when'].replace('-', '').replace(':', '')}.json"


def section(bench: str, report: dict[str, Any], text: str) -> str:
    """What goes between a bench's markers in SCALING.md: its text, then a link to the kept run
    (tests/test_docs.py renders the text again from that file and compares)."""
    name = kept_name(bench, report)
    return f"{text}\nEvery figure, every round and process: [bench-runs/{name}](bench-runs/{name}).\n"


def write_figures(out: Path, bench: str, report: dict[str, Any], text: str, doc: str = "SCALING.md") -> None:
    """Keep a run's figures (``out``/bench-runs/<bench>-<time>.json) and put ``section(...)``
    between the ``<!-- bench.<bench>: begin -->`` and ``end`` markers of ``out``/``doc``."""
    (out / "bench-runs").mkdir(parents=True, exist_ok=True)
    (out / "bench-runs" / kept_name(bench, report)).write_text(json.dumps(report, indent=1))
    begin, end = f"<!-- bench.{bench}: begin -->", f"<!-- bench.{bench}: end -->"
    head, rest = (out / doc).read_text().split(begin, 1)
    _, tail = rest.split(end, 1)
    (out / doc).write_text(f"{head}{begin}\n{section(bench, report, text)}{end}{tail}")


def install_copy(target: Path, **env: str) -> Path:
    """A copy of this checkout's package installed into ``target`` as a wheel build does (no
    editable finder; built outside the checkout, so no build/ of it is reused); ``env``: the build's."""
    source = target.parent / f"{target.name}-source"
    shutil.copytree(ROOT / "wordstream", source / "wordstream", ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    command = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--target", str(target)]
    result = subprocess.run(
        [*command, str(source)], capture_output=True, text=True, timeout=600, env={**os.environ, **env}
    )
    if result.returncode != 0:
        raise RuntimeError(f"pip could not install the package: {result.stderr[-3000:]}")
    return target
