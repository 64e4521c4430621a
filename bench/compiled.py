"""The compiled hot path (setup.py, mypyc) against the pure one, side by side with the echo.

    python -m bench.compiled                     # 3 runs x 3 rounds; rewrites docs/COST.md's marked part
    python -m bench.compiled --runs 1 --rounds 1 --words 20 --single-words 50 --no-write   # the smoke test's

Three servers, started fresh per run: the bare grpc.aio echo (bench/echo_server.py, the service's
message sizes), the service from this checkout (pure Python) and the service from a wheel build of
it with WORDSTREAM_COMPILE=1 (installed into a temporary folder). In every round each takes its
turn, in an order that rotates, with the same loads as bench.run: one stream (p50, p99) and 100
streams (words/s, p50, p99); server CPU per word is the process's CPU seconds (/proc) over the
load, divided by the words answered. Ratios are per round; the report gives their median, range
and each run's median.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import texts
from bench.run import message_sizes
from bench.servers import ROOT, Server, install_copy, load, spread, start_echo, start_service, write_figures

SERVERS = ("echo", "pure", "compiled")


def build(target: Path) -> Path:
    """This checkout's package compiled into ``target``."""
    install_copy(target, WORDSTREAM_COMPILE="1")
    if not list(target.rglob("wordstream/server/answers*.so")):
        raise RuntimeError("the build compiled nothing (no C compiler?)")
    return target


def measure(server: Server, kind: str, streams: int, words: int, options: dict[str, Any]) -> dict[str, Any]:
    figures = load(server, kind, streams, words, 1 if streams == 1 else 2, **options)
    figures["cpu_us_per_word"] = 1e6 * figures.pop("server_cpu_s") / figures["messages"]
    return figures


def run_once(args: argparse.Namespace, texts_file: Path, package: Path) -> dict[str, Any]:
    servers = {
        "echo": start_echo(),
        "pure": start_service("pure", args.models),
        "compiled": start_service("compiled", args.models, package=package),
    }
    try:
        request, response = message_sizes(servers["pure"].target)
        options: dict[str, dict[str, Any]] = {
            "echo": {"request_bytes": request, "response_bytes": response},
            "pure": {"texts": texts_file},
            "compiled": {"texts": texts_file},
        }
        rounds = []
        for n in range(args.rounds):
            order = SERVERS[n % 3 :] + SERVERS[: n % 3]  # no server always first
            rounds.append(
                {
                    name: {
                        "one_stream": measure(
                            servers[name], "echo" if name == "echo" else "service", 1, args.single_words, options[name]
                        ),
                        "streams_100": measure(
                            servers[name], "echo" if name == "echo" else "service", 100, args.words, options[name]
                        ),
                    }
                    for name in order
                }
            )
    finally:
        for server in servers.values():
            server.stop()
    return {"rounds": rounds, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


PAIRS = (("pure", "echo"), ("compiled", "echo"), ("compiled", "pure"))
FIGURES = (  # (label, load, key)
    ("throughput at 100 streams", "streams_100", "words_per_second"),
    ("server CPU per word at 100 streams", "streams_100", "cpu_us_per_word"),
    ("p50 at one stream", "one_stream", "p50_ms"),
    ("p99 at one stream", "one_stream", "p99_ms"),
)


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for _, load_name, key in FIGURES:

        def value(r: dict[str, Any], name: str) -> float:
            return float(r[name][load_name][key])  # noqa: B023 (used at once, in this iteration)

        for name in SERVERS:
            out[f"{name}.{load_name}.{key}"] = spread([[value(r, name) for r in run["rounds"]] for run in runs])
        for ours, theirs in PAIRS:
            out[f"{ours}/{theirs}.{load_name}.{key}"] = spread(
                [[value(r, ours) / value(r, theirs) for r in run["rounds"]] for run in runs]
            )
    return out


def markdown(result: dict[str, Any]) -> str:
    s = result["summary"]

    def f(key: str, digits: int = 2) -> str:
        v = s[key]
        medians = ", ".join(f"{m:.{digits}f}" for m in v["run_medians"])
        return f"{v['median']:.{digits}f} [{v['min']:.{digits}f}–{v['max']:.{digits}f}] (runs {medians})"

    lines = [
        f"Measured {result['when']} with `{result['command']}` ({result['runs']} runs × {result['rounds']} rounds; "
        "median [range over all rounds] (each run's median)).",
        "",
        "| figure | echo | pure | compiled | pure / echo | compiled / echo | compiled / pure |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, load_name, key in FIGURES:
        absolute = [f"{s[f'{n}.{load_name}.{key}']['median']:.2f}" for n in SERVERS]
        ratio = [
            f(f"{a}/{b}.{load_name}.{key}") for a, b in (("pure", "echo"), ("compiled", "echo"), ("compiled", "pure"))
        ]
        lines.append(f"| {label} | " + " | ".join(absolute + ratio) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compiled", description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=str(ROOT / "models"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--words", type=int, default=100, help="words per stream at 100 streams")
    parser.add_argument("--single-words", type=int, default=1000, help="words of the one stream (p99 of 1,000)")
    parser.add_argument("--out", default=str(ROOT / "docs"), help="where COST.md and bench-runs/ are")
    parser.add_argument("--no-write", action="store_true", help="print the figures, write nothing")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="wordstream-compiled-") as tmp:
        package = build(Path(tmp) / "build")
        texts_file = texts.write(Path(tmp) / "texts.txt")
        runs = []
        for n in range(args.runs):
            runs.append(run_once(args, texts_file, package))
            print(f"run {n + 1}/{args.runs} done", file=sys.stderr, flush=True)
    result = {
        "command": "python -m bench.compiled" + ("" if not argv else " " + " ".join(argv)),
        "when": runs[-1]["when"],
        "runs": args.runs,
        "rounds": args.rounds,
        "summary": summary(runs),
        "raw": runs,
    }
    text = markdown(result)
    if not args.no_write:
        write_figures(Path(args.out), "compiled", result, text, doc="COST.md")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
