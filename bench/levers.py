"""Before and after: issue 22's goals over two kept series of ``python -m bench.run``.

    python -m bench.levers --before docs/bench-runs/20261126T142831Z-run*.json \\
                           --after docs/bench-runs/20261205T114148Z-run*.json \\
                           [--between RUN... --between-label HEADING]

Rewrites the part of docs/COST.md between ``<!-- bench.levers: begin -->`` and ``end`` with one
row per goal (and a column for an optional series between the two): each series' median over all
its rounds, its range and each run's median (bench.report's ratios), and the target; the series
are the runs' own files, kept in docs/bench-runs/ and named in the kept record, so
tests/test_docs.py renders the table again.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench.report import ratios
from bench.servers import ROOT, write_figures

GOALS = (
    "one stream: service p50 / echo p50",
    "100 sessions: service throughput / echo",
    "100 sessions: server CPU per word / echo's per message",
    "compiled, one stream: service p50 / echo p50",
    "compiled, 100 sessions: service throughput / echo",
    "compiled, 100 sessions: server CPU per word / echo's per message",
    "Multiplex, 100 sessions on one stream: words/s / echo's messages/s at 100 streams",
    "Multiplex: server CPU per word / echo's per message",
    "compiled Multiplex: words/s / echo's messages/s at 100 streams",
    "compiled Multiplex: server CPU per word / echo's per message",
)
RUNS = ROOT / "docs" / "bench-runs"


def _cell(figure: dict[str, Any]) -> str:
    if "not_measured" in figure:
        return "not measured"
    runs = ", ".join(f"{v:.2f}" for v in figure["per_run"])
    met = "" if figure["met"] is None else (" (met)" if figure["met"] else " (**not met**)")
    return f"{figure['median']:.2f} [{figure['min']:.2f}–{figure['max']:.2f}] (runs {runs}){met}"


def markdown(record: dict[str, Any]) -> str:
    sides = [side for side in ("before", "between", "after") if record.get(side)]
    labels = {"before": "before", "between": record.get("between_label", "between"), "after": "after"}
    series = {side: ratios([json.loads((RUNS / name).read_text()) for name in record[side]]) for side in sides}
    lines = [
        f"Rendered {record['when']} with `{record['command']}` from the kept runs of `python -m bench.run`: "
        + "; ".join(labels[side] + " " + ", ".join(f"[{n}](bench-runs/{n})" for n in record[side]) for side in sides)
        + ". Median [range over all rounds] (each run's median).",
        "",
        "| goal | " + " | ".join(labels[side] for side in sides) + " | target |",
        "|---|" + "---|" * len(sides) + "---|",
    ]
    for goal in GOALS:
        cells = " | ".join(_cell(series[side][goal]) for side in sides)
        lines.append(f"| {goal} | {cells} | {series['after'][goal]['target']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.levers", description=__doc__.split("\n")[0])
    parser.add_argument("--before", nargs="+", required=True, help="the kept runs of the 'before' series")
    parser.add_argument("--after", nargs="+", required=True, help="the kept runs of the 'after' series")
    parser.add_argument("--between", nargs="+", default=[], help="the kept runs of a series between the two")
    parser.add_argument("--between-label", default="between", help="the heading of the 'between' column")
    parser.add_argument("--out", default=str(ROOT / "docs"), help="where COST.md and bench-runs/ are")
    args = parser.parse_args(argv)
    record = {
        "command": "python -m bench.levers" + ("" if not argv else " " + " ".join(argv)),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "before": [Path(p).name for p in args.before],
        "after": [Path(p).name for p in args.after],
    }
    if args.between:
        record.update(between=[Path(p).name for p in args.between], between_label=args.between_label)
    text = markdown(record)
    write_figures(Path(args.out), "levers", record, text, doc="COST.md")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
