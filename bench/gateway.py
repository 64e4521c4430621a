"""What a word costs behind the gateway: pages typing over WebSockets, gateway and server CPU per word.

    python -m bench.gateway --pages 100          # 3 runs x 3 rounds; rewrites docs/COST.md's marked part
    python -m bench.gateway --pages 10 --runs 1 --rounds 1 --words 10 --no-write   # the smoke test's

Processes: the service (``python -m wordstream.server``), two gateways in front of it
(``python -m wordstream.gateway``, their per-address caps raised: every page here comes from
127.0.0.1): one carrying each session on its own gRPC stream (``--multiplex-streams 0``), one
carrying them on ``--multiplex-streams`` Multiplex streams; and this process as the pages:
``--pages`` WebSockets, each opening a session and typing the test split's words one at a time,
the next word sent once the last is answered (as a person types). Per round and side: words/s,
and the CPU seconds (from /proc) of the gateway and of the server per word. The peer in the same
round: the same number of sessions typing the same words straight to the server over gRPC
(bench.load), so "gateway + server / server alone" is what a gateway costs. The sides take turns
in a rotating order. With ``--profile`` (py-spy) one more round per gateway samples it and splits
its time by part: the JSON of the answers (most of it the state tensors), the gRPC client, the
WebSocket server, the rest.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench import texts
from bench.servers import ROOT, Server, load, spread, start, start_service, write_figures

PARTS = (  # (part, a substring of a sampled frame that puts the sample in it), the first that matches
    # a frame reads "function:path:line)"; the answers' JSON is these functions of gateway/app.py and json's
    ("JSON of the answers", ("word_text:", "step_text:", "state_text:", "floats_text:", "json/encoder")),
    ("gRPC client", ("wordstream/client", "grpc")),
    ("WebSocket server", ("uvicorn", "websockets", "starlette")),
)


def start_gateway(server: Server, pages: int, multiplex_streams: int = 0, extra: list[str] | None = None) -> Server:
    """A gateway in front of ``server``, its per-address caps raised (every page is 127.0.0.1)."""
    command = [sys.executable, "-m", "wordstream.gateway", "--port", "0", "--server", server.target]
    command += ["--multiplex-streams", str(multiplex_streams), *(extra or [])]
    for flag in ("max-sockets-per-client", "max-sessions-per-client", "words-burst"):
        command += [f"--{flag}", str(10 * pages)]
    command += ["--words-per-second", "100000"]
    return start("gateway", command, port=r"localhost:(\d+)/")


async def pages_typing(port: int, pages: int, words: list[str], per_page: int) -> dict[str, Any]:
    """``pages`` sockets, each opening a session and typing ``per_page`` words; wall and latencies."""
    from websockets.asyncio.client import connect

    origin = f"http://localhost:{port}"
    sockets = [await connect(f"ws://localhost:{port}/ws", origin=origin, max_size=2**24) for _ in range(pages)]  # type: ignore[arg-type]
    for socket in sockets:
        await socket.send(json.dumps({"open": {}}))
        if "opened" not in json.loads(await socket.recv()):
            raise RuntimeError("a page could not open a session")
    latencies: list[float] = []

    async def page(n: int, socket: Any) -> None:
        for i in range(per_page):
            sent = time.perf_counter()
            await socket.send(json.dumps({"word": words[(n * 7919 + i) % len(words)]}))
            answer = json.loads(await socket.recv())
            if "word" not in answer:
                raise RuntimeError(f"unexpected answer: {str(answer)[:200]}")
            latencies.append(time.perf_counter() - sent)

    began = time.perf_counter()
    await asyncio.gather(*(page(n, s) for n, s in enumerate(sockets)))
    wall = time.perf_counter() - began
    for socket in sockets:
        await socket.send(json.dumps({"close": {}}))
        await socket.recv()
        await socket.close()
    return {"wall": wall, "latencies": latencies}


def through_gateway(server: Server, gateway: Server, pages: int, words: list[str], per_page: int) -> dict[str, Any]:
    server_before, gateway_before = server.cpu(), gateway.cpu()
    typed = asyncio.run(pages_typing(gateway.port, pages, words, per_page))
    count = len(typed["latencies"])
    server_us = 1e6 * (server.cpu() - server_before) / count
    gateway_us = 1e6 * (gateway.cpu() - gateway_before) / count
    latencies = sorted(typed["latencies"])
    return {
        "words_per_second": count / typed["wall"],
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "server_us_per_word": server_us,
        "gateway_us_per_word": gateway_us,
        "total_us_per_word": server_us + gateway_us,
    }


def direct(server: Server, pages: int, per_page: int, texts_file: Path) -> dict[str, Any]:
    """The peer: as many sessions straight to the server (bench.load, one stream each)."""
    figures = load(server, "service", pages, per_page, 1 if pages < 100 else 2, texts=texts_file)
    server_us = 1e6 * figures["server_cpu_s"] / figures["words"]
    return {
        "words_per_second": figures["words_per_second"],
        "p50_ms": figures["p50_ms"],
        "server_us_per_word": server_us,
    }


def profile_gateway(gateway: Server, pages: int, words: list[str], per_page: int) -> dict[str, float]:
    """Shares of the gateway's samples holding the GIL (its Python's bottleneck) by part (PARTS),
    py-spy on the gateway during one round."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "samples.txt"
        command = [spy, "record", "--pid", str(gateway.process.pid), "--gil", "--nonblocking", "-r", "250", "-f", "raw"]
        recorder = subprocess.Popen(command + ["-o", str(raw)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        asyncio.run(pages_typing(gateway.port, pages, words, per_page))
        recorder.send_signal(signal.SIGINT)  # py-spy writes what it sampled
        recorder.wait(timeout=60)
        shares: Counter[str] = Counter()
        for line in raw.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack:
                continue
            frames = stack.replace(" (", ":").split(";")
            part = next((name for name, keys in PARTS if any(k in f for f in frames for k in keys)), "the rest")
            shares[part] += int(count)
    total = sum(shares.values()) or 1
    return {name: shares[name] / total for name in [p for p, _ in PARTS] + ["the rest"]}


SIDES = ("gateway", "multiplex", "direct")  # a stream per session, Multiplex streams, no gateway


def run_once(args: argparse.Namespace, texts_file: Path, words: list[str]) -> dict[str, Any]:
    server = start_service("service", args.models)
    gateways = {
        "gateway": start_gateway(server, args.pages, 0, args.gateway_flags),
        "multiplex": start_gateway(server, args.pages, args.multiplex_streams, args.gateway_flags),
    }
    try:
        rounds = []
        for n in range(args.rounds):
            figures = {}
            for side in SIDES[n % 3 :] + SIDES[: n % 3]:  # each side goes first in turn
                if side == "direct":
                    figures[side] = direct(server, args.pages, args.words, texts_file)
                else:
                    figures[side] = through_gateway(server, gateways[side], args.pages, words, args.words)
            rounds.append(figures)
        split = (
            {side: profile_gateway(gateway, args.pages, words, args.words) for side, gateway in gateways.items()}
            if args.profile
            else None
        )
    finally:
        for gateway in gateways.values():
            gateway.stop()
        server.stop()
    return {"rounds": rounds, "profile": split, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


FIGURES = (
    ("words/s", "words_per_second"),
    ("p50 ms", "p50_ms"),
    ("server CPU µs per word", "server_us_per_word"),
    ("gateway CPU µs per word", "gateway_us_per_word"),
)


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}

    def ratio(side: str, key: str, of: str, other_key: str) -> dict[str, Any]:
        return spread([[r[side][key] / r[of][other_key] for r in run["rounds"]] for run in runs])

    for side in SIDES:
        for _, key in FIGURES:
            if key in runs[0]["rounds"][0][side]:
                out[f"{side}.{key}"] = spread([[r[side][key] for r in run["rounds"]] for run in runs])
    for side in ("gateway", "multiplex"):
        out[f"{side}.total/direct"] = ratio(side, "total_us_per_word", "direct", "server_us_per_word")
        out[f"{side}.throughput/direct"] = ratio(side, "words_per_second", "direct", "words_per_second")
    out["multiplex/gateway total"] = ratio("multiplex", "total_us_per_word", "gateway", "total_us_per_word")
    out["multiplex/gateway throughput"] = ratio("multiplex", "words_per_second", "gateway", "words_per_second")
    return out


def markdown(result: dict[str, Any]) -> str:
    s = result["summary"]

    def f(key: str) -> str:
        v = s[key]
        medians = ", ".join(f"{m:.2f}" for m in v["run_medians"])
        return f"{v['median']:.2f} [{v['min']:.2f}–{v['max']:.2f}] (runs {medians})"

    k = result["multiplex_streams"]
    lines = [
        f"Measured {result['when']} with `{result['command']}` ({result['runs']} runs × {result['rounds']} rounds, "
        f"{result['pages']} pages; median [range over all rounds] (each run's median)).",
        "",
        f"| figure | gateway, a stream per session | gateway, {k} Multiplex streams | straight to the server |",
        "|---|---|---|---|",
    ]
    for label, key in FIGURES:
        cells = [f(f"{side}.{key}") if f"{side}.{key}" in s else "-" for side in SIDES]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| ratio | a stream per session | Multiplex |",
        "|---|---|---|",
        f"| gateway + server CPU per word / the server's alone | {f('gateway.total/direct')} | "
        f"{f('multiplex.total/direct')} |",
        f"| throughput through the gateway / straight | {f('gateway.throughput/direct')} | "
        f"{f('multiplex.throughput/direct')} |",
        "",
        f"Multiplex against a stream per session, in the same rounds: gateway + server CPU per word "
        f"{f('multiplex/gateway total')}, throughput {f('multiplex/gateway throughput')}.",
    ]
    profiles = [run["profile"] for run in result["raw"] if run["profile"]]
    if profiles:
        lines += ["", "Where each gateway's busy samples go (py-spy, one round per run and gateway):", ""]
        heads = [f"{name} run {i + 1}" for name in ("streams", "Multiplex") for i in range(len(profiles))]
        lines += ["| part | " + " | ".join(heads) + " |", "|---|" + "---|" * len(heads)]
        for part in profiles[0]["gateway"]:
            cells = [f"{100 * p[side][part]:.0f} %" for side in ("gateway", "multiplex") for p in profiles]
            lines.append(f"| {part} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway", description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=str(ROOT / "models"))
    parser.add_argument("--pages", type=int, default=100)
    parser.add_argument("--words", type=int, default=60, help="words each page types per round")
    parser.add_argument(
        "--gateway-flag",
        dest="gateway_flags",
        action="append",
        default=[],
        help="a flag for both gateways, as one argument (--gateway-flag=--no-ws-compression); again for more",
    )
    parser.add_argument(
        "--multiplex-streams", type=int, default=4, help="the Multiplex gateway's --multiplex-streams (default 4)"
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action=argparse.BooleanOptionalAction, default=True, help="py-spy the gateway")
    parser.add_argument("--out", default=str(ROOT / "docs"), help="where COST.md and bench-runs/ are")
    parser.add_argument("--no-write", action="store_true", help="print the figures, write nothing")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="wordstream-gateway-") as tmp:
        texts_file = texts.write(Path(tmp) / "texts.txt")
        words = texts.read_words(texts_file)
        runs = []
        for n in range(args.runs):
            runs.append(run_once(args, texts_file, words))
            print(f"run {n + 1}/{args.runs} done", file=sys.stderr, flush=True)
    result = {
        "command": "python -m bench.gateway" + ("" if not argv else " " + " ".join(argv)),
        "when": runs[-1]["when"],
        "runs": args.runs,
        "rounds": args.rounds,
        "pages": args.pages,
        "multiplex_streams": args.multiplex_streams,
        "summary": summary(runs),
        "raw": runs,
    }
    text = markdown(result)
    if not args.no_write:
        write_figures(Path(args.out), "gateway", result, text, doc="COST.md")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
