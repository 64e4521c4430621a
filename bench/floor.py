"""How far the service is from the floor: echo, floor (batched and inline) and service, side by side.

    python -m bench.floor                       # 2 runs x 3 rounds; rewrites docs/COST.md's marked part
    python -m bench.floor --runs 1 --rounds 1 --streams-words 10 20 --one-stream-words 50 --no-write

Per run: the echo (bench/echo_server.py), the floor (bench/floor_server.py: per word only the
state, one batched ONNX Runtime step of the real model and the answer's bytes), the floor with
each word's model call alone in its stream's task (``--inline``), and the service
(``python -m wordstream.server``, the test split's words). Per round, in a rotating order, each
takes the same load from bench.load: 100 streams typing 300 words each (2 load processes), then
one stream typing 2,000 words; the echo and the floor are sent the service's message sizes.
Each figure is a ratio to the echo of the same round (throughput, p50, server CPU per word from
/proc): median [range over every round] and each run's median.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench.run import message_sizes
from bench.servers import ROOT, Server, load, spread, start, start_echo, start_service, write_figures
from bench.texts import write as write_texts

SIDES = ("echo", "floor", "floor inline", "service")
FIGURES = (("throughput", "words_per_second"), ("p50", "p50_ms"), ("server CPU per word", "cpu_us"))


def start_sides(models: str) -> dict[str, Server]:
    model = str(Path(models).resolve() / "sentiment-lstm.onnx")
    floor = [sys.executable, "-m", "bench.floor_server", "--model", model]
    return {
        "echo": start_echo(),
        "floor": start("floor", floor),
        "floor inline": start("floor inline", floor + ["--inline"]),
        "service": start_service("service", models),
    }


def one_round(sides: dict[str, Server], order: list[str], loads: list[tuple[int, int]], texts: Path) -> dict[str, Any]:
    sizes = message_sizes(sides["service"].target)
    out: dict[str, Any] = {}
    for streams, words in loads:
        figures = {}
        for side in order:
            options: dict[str, Any] = (
                {"texts": texts} if side == "service" else {"request_bytes": sizes[0], "response_bytes": sizes[1]}
            )
            kind = "service" if side == "service" else "echo"
            r = load(sides[side], kind, streams, words, 1 if streams == 1 else 2, **options)
            cpu_us = 1e6 * r["server_cpu_s"] / r["words"]
            figures[side] = {"words_per_second": r["words_per_second"], "p50_ms": r["p50_ms"], "cpu_us": cpu_us}
        out[str(streams)] = figures
    return out


def ratio(value: float, echo: float) -> float:
    """``value`` / the echo's; NaN where the echo's figure is 0 (a load too short for /proc's CPU ticks)."""
    return value / echo if echo else float("nan")


def summary(runs: list[list[dict[str, Any]]], loads: list[tuple[int, int]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for streams, _ in loads:
        for side in SIDES:
            for _, key in FIGURES:
                per_run = [
                    [ratio(r[str(streams)][side][key], r[str(streams)]["echo"][key]) for r in run] for run in runs
                ]
                out[f"{streams}.{side}.{key}"] = spread(per_run)
                out[f"{streams}.{side}.{key}.value"] = spread(
                    [[r[str(streams)][side][key] for r in run] for run in runs]
                )
    return out


def markdown(report: dict[str, Any]) -> str:
    s = report["summary"]

    def f(key: str) -> str:
        v = s[key]
        medians = ", ".join(f"{m:.2f}" for m in v["run_medians"])
        return f"{v['median']:.2f} [{v['min']:.2f}–{v['max']:.2f}] (runs {medians})"

    lines = [
        f"Measured {report['when']} with `{report['command']}` ({report['runs']} runs × {report['rounds']} rounds; "
        "each figure a ratio to the echo of the same round: median [range over every round] (each run's median); "
        "server CPU per word in µs in the last column, median).",
        "",
        "| load | server | throughput / echo | p50 / echo | CPU per word / echo | CPU µs per word |",
        "|---|---|---|---|---|---|",
    ]
    for streams, _ in report["loads"]:
        for side in SIDES[1:]:
            cells = [f(f"{streams}.{side}.{key}") for _, key in FIGURES]
            cells.append(f"{s[f'{streams}.{side}.cpu_us.value']['median']:.0f}")
            load_name = f"{streams} stream{'s' if streams > 1 else ''}"
            lines.append(f"| {load_name} | {side} | " + " | ".join(cells) + " |")
        echo_us = s[f"{streams}.echo.cpu_us.value"]["median"]
        lines.append(f"| {streams} stream{'s' if streams > 1 else ''} | echo | 1 | 1 | 1 | {echo_us:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=str(ROOT / "models"))
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--streams-words", type=int, nargs=2, default=(100, 300), metavar=("STREAMS", "WORDS"))
    parser.add_argument("--one-stream-words", type=int, default=2000)
    parser.add_argument("--out", default=str(ROOT / "docs"), help="where COST.md and bench-runs/ are")
    parser.add_argument("--no-write", action="store_true", help="print the figures, write nothing")
    args = parser.parse_args(argv)
    loads = [tuple(args.streams_words), (1, args.one_stream_words)]
    texts = write_texts(Path(os.environ.get("TMPDIR", "/tmp")) / "wordstream-bench-texts.txt")
    runs = []
    for n in range(args.runs):
        sides = start_sides(args.models)
        try:
            rounds = []
            for k in range(args.rounds):
                order = list(SIDES[k % 4 :] + SIDES[: k % 4])
                rounds.append(one_round(sides, order, loads, texts))
        finally:
            for server in sides.values():
                server.stop()
        runs.append(rounds)
        print(f"run {n + 1}/{args.runs} done", file=sys.stderr, flush=True)
    report = {
        "command": "python -m bench.floor" + ("" if not argv else " " + " ".join(argv)),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "runs": args.runs,
        "rounds": args.rounds,
        "loads": loads,
        "summary": summary(runs, loads),
        "raw": runs,
    }
    text = markdown(report)
    if not args.no_write:
        write_figures(Path(args.out), "floor", report, text, doc="COST.md")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
