"""Where the service's time goes under load: py-spy samples of the server, summed by part.

    python -m bench.profile                        # 100 streams x 300 words against the LSTM
    python -m bench.profile --streams 1000 --words 30

The server runs under ``py-spy record --gil`` (py-spy is its parent, so no ptrace rights
beyond the usual are needed); one load-generator process drives it (bench/load.py). The bare
echo server runs the same way under the same load, so the two CPU figures compare like with like. Only
samples in which the server's Python holds the GIL count: one thread at a time runs Python,
so that is the server's bottleneck, and ONNX Runtime's own work (which releases the GIL)
is not in it. Each sample goes to the part of the code it is in, looking from the innermost
frame outwards; what is in none of ours is gRPC's machinery and the event loop, the work
the bare echo server does too. Prints one JSON object; ``bench.run`` puts it in the report.
"""

from __future__ import annotations

import argparse
import json
import linecache
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TRANSPORT = "gRPC and the event loop"
# (part, test on one frame "function (file:line)"); the first part whose test matches a frame wins.
PARTS: list[tuple[str, tuple[str, ...]]] = [
    ("model calls (ONNX Runtime's Python side)", ("onnxruntime/", "StepModel.run ")),
    ("answers (server/answers.py)", ("server/answers.py",)),
    ("tokenizer (textcodec/)", ("textcodec/",)),
    (
        "sessions and history (server/sessions.py, history.py, store.py)",
        ("server/sessions.py", "server/history.py", "server/store.py"),
    ),
    ("batching (server/batching.py)", ("server/batching.py",)),
    ("service (server/service.py)", ("server/service.py",)),
    ("metrics (server/metrics.py)", ("server/metrics.py", "prometheus_client/")),
    ("servicer (server/transport.py)", ("server/transport.py",)),
]


def part_of(stack: list[str]) -> str:
    """The part a sample belongs to; ``stack`` is outermost frame first, as py-spy writes it."""
    for frame in reversed(stack):
        if frame.endswith(")") and _is_request_iteration(frame):
            return TRANSPORT  # the servicer awaiting grpc's next message: grpc's reading and parsing
        for part, needles in PARTS:
            if any(needle in frame for needle in needles):
                return part
    return TRANSPORT


TRANSPORT_FILE = ROOT / "wordstream" / "server" / "transport.py"


def _is_request_iteration(frame: str) -> bool:
    location = frame[frame.rfind("(") + 1 : -1]
    path, _, line = location.rpartition(":")
    if not path.endswith("server/transport.py") or not line.isdigit():
        return False
    return "async for request in requests" in linecache.getline(str(TRANSPORT_FILE), int(line))


def summarise(raw: str) -> dict[str, Any]:
    """Parts' shares of the samples in a py-spy ``--format raw`` file."""
    counts: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, n = line.rpartition(" ")
        if stack and n.isdigit():
            counts[part_of(stack.split(";"))] += int(n)
    total = sum(counts.values())
    return {
        "samples": total,
        "shares": {part: n / total for part, n in counts.most_common()} if total else {},
    }


def profile(
    models: str,
    model: str,
    streams: int,
    words: int,
    texts: Path | None = None,
    sizes: tuple[int, int] = (16, 1200),
    rate: int = 200,
) -> dict[str, Any]:
    """The service and the bare echo, each under py-spy and the same load: samples by part, and
    server CPU per message, taken under the same conditions. ``sizes``: the echo's request and
    answer bytes (the service's); ``texts``: the file whose words the service streams type."""
    service = [sys.executable, "-m", "wordstream.server", "--host", "localhost", "--port", "0", "--models", models]
    service += ["--default-model", model, "--log-level", "WARNING"]
    service_load = ["--kind", "service"] + (["--texts", str(texts)] if texts else [])
    echo_load = ["--kind", "echo", "--request-bytes", str(sizes[0]), "--response-bytes", str(sizes[1])]
    command = ["python -m bench.profile", "--streams", str(streams), "--words", str(words)]
    return {
        "command": " ".join(command),
        "streams": streams,
        "service": _profile_one(service, service_load, streams, words, rate),
        "echo": _profile_one([sys.executable, "-m", "bench.echo_server"], echo_load, streams, words, rate),
    }


def _profile_one(server_command: list[str], load: list[str], streams: int, words: int, rate: int) -> dict[str, Any]:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        raise SystemExit("py-spy is not installed: pip install py-spy")
    env = {**os.environ, "GRPC_VERBOSITY": "ERROR", "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "samples.txt"
        recorder = subprocess.Popen(
            [spy, "record", "--gil", "--nonblocking", "-r", str(rate), "-f", "raw", "-o", str(out), "--"]
            + server_command,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            port = _port_from(recorder)
            server_pid = _child_of(recorder.pid)
            cpu_before = cpu_seconds(server_pid)
            measured = subprocess.run(
                [sys.executable, "-m", "bench.load", "--target", f"localhost:{port}", *load]
                + ["--streams", str(streams), "--words", str(words)],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                check=True,
                timeout=900,
            )
            cpu = cpu_seconds(server_pid) - cpu_before
            os.kill(server_pid, signal.SIGTERM)
            recorder.wait(timeout=60)
        finally:
            if recorder.poll() is None:
                recorder.kill()
        result = summarise(out.read_text())
    done = streams * (words + 1)  # and one warm-up message per stream
    result.update(
        {
            "messages": done,
            "messages_per_second": streams * words / json.loads(measured.stdout)["wall"],
            "server_cpu_us_per_message": 1e6 * cpu / done,
        }
    )
    return result


def _port_from(recorder: subprocess.Popen[str]) -> int:
    """The port in the server's start-up line (py-spy prints a line of its own first)."""
    for line in recorder.stdout or ():
        match = re.search(r"\bport (\d+)", line)  # the service's "... on port N", the echo's "port N"
        if match:
            return int(match.group(1))
    raise RuntimeError("the server did not start under py-spy")


def _child_of(pid: int, timeout: float = 10.0) -> int:
    """The process py-spy started (its only child)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.05)
    raise RuntimeError("py-spy started no server")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="models")
    parser.add_argument("--model", default="sentiment-lstm")
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--words", type=int, default=300, help="words per stream")
    args = parser.parse_args()
    from bench import texts

    with tempfile.TemporaryDirectory() as tmp:
        texts_file = texts.write(Path(tmp) / "texts.txt")
        print(json.dumps(profile(args.models, args.model, args.streams, args.words, texts_file), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
