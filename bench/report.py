"""Turn benchmark runs into ratios against the targets, a Markdown report and plots.

    python -m bench.report docs/bench-runs/RUN1.json [RUN2.json ...] [--out docs]

Every ratio is computed per round (the servers took turns within a round, so a round's
sides saw the same moments of the machine), then summarised over all rounds of all runs:
the median, the range, and each run's median. A target is met only when the median of all
rounds meets it and so does the median of every run.
Every target has a row; one that a run could not measure says "not measured" and why.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Run = dict[str, Any]


class NotMeasured(Exception):
    """A figure this run does not have; the message says why."""


def need(run: Run, *path: str) -> Any:
    value: Any = run
    for key in path:
        if not isinstance(value, dict) or key not in value:
            raise NotMeasured(f"this run has no {'/'.join(path)}")
        value = value[key]
    return value


def per_round(run: Run, section: tuple[str, ...], ours: tuple[str, str], theirs: tuple[str, str]) -> list[float]:
    """ours[0]'s ours[1] over theirs[0]'s theirs[1], one value per round of ``section``."""
    return [r[ours[0]][ours[1]] / r[theirs[0]][theirs[1]] for r in need(run, *section, "rounds")]


def concurrency(level: str, ours: tuple[str, str], theirs: tuple[str, str]) -> Callable[[Run], list[float]]:
    return lambda run: per_round(run, ("concurrency", level), ours, theirs)


def cpu_per_word(level: str, ours: str = "batching") -> Callable[[Run], list[float]]:
    """``ours``' server CPU seconds per word (from /proc, no profiler) over the echo's per message, per round."""

    def values(run: Run) -> list[float]:
        rounds = need(run, "concurrency", level, "rounds")
        if ours not in rounds[0]:
            raise NotMeasured(f"this run has no {ours!r} side at {level} sessions")

        def per_word(figures: dict[str, Any]) -> float:
            return float(figures["server_cpu_s"]) / figures.get("words", figures["messages"])

        return [per_word(r[ours]) / per_word(r["echo"]) for r in rounds]

    return values


def side(level: str, ours: str, key: str) -> Callable[[Run], list[float]]:
    """``ours``' ``key`` over the echo's at ``level`` sessions, per round (a side some runs lack)."""

    def values(run: Run) -> list[float]:
        rounds = need(run, "concurrency", level, "rounds")
        if ours not in rounds[0]:
            raise NotMeasured(f"this run has no {ours!r} side at {level} sessions")
        return [r[ours][key] / r["echo"][key] for r in rounds]

    return values


def one_stream(ours: str) -> Callable[[Run], list[float]]:
    def values(run: Run) -> list[float]:
        rounds = need(run, "one_stream", "rounds")
        if ours not in rounds[0]:
            raise NotMeasured(f"this run has no {ours!r} side")
        return [r[ours]["p50_ms"] / r["echo"]["p50_ms"] for r in rounds]

    return values


def step_cost(run: Run) -> list[float]:
    cost = need(run, "session_length")
    if cost["late_step"] != 1000:
        raise NotMeasured(f"this run's long session stops at step {cost['late_step']}")
    return [b["late_ms"] / b["early_ms"] for b in cost["blocks"]]


def stateless(step: int) -> Callable[[Run], list[float]]:
    return lambda run: [b["stateless_ms"] / b["service_ms"] for b in need(run, "stateless", str(step))]


def model_ratio(ours: str, theirs: str) -> Callable[[Run], list[float]]:
    def values(run: Run) -> list[float]:
        level = need(run, "model_level")
        if ours.startswith("torch") and "torch" in level:
            raise NotMeasured(f"PyTorch {level['torch']}")
        return [r[ours] / r[theirs] for r in level["rounds"]]

    return values


def memory(key: str, over: str | None = None) -> Callable[[Run], list[float]]:
    def values(run: Run) -> list[float]:
        mem = need(run, "memory")
        return [mem[key] / mem[over] if over else mem[key]]

    return values


@dataclass(frozen=True)
class Target:
    name: str
    values: Callable[[Run], list[float]]
    op: str = ""  # "<=" or ">="; empty: reported, no target
    target: float = 0.0


TARGETS = [
    Target("one stream: service p50 / echo p50", lambda r: per_round(r, ("one_stream",), ("batching", "p50_ms"), ("echo", "p50_ms")), "<=", 1.15),  # noqa: E501
    Target("100 sessions: service throughput / echo", concurrency("100", ("batching", "words_per_second"), ("echo", "words_per_second")), ">=", 0.85),  # noqa: E501
    Target("100 sessions: service p99 / echo p99", concurrency("100", ("batching", "p99_ms"), ("echo", "p99_ms")), "<=", 1.5),  # noqa: E501
    Target("100 sessions: server CPU per word / echo's per message", cpu_per_word("100"), "<=", 1.4),
    Target("compiled, one stream: service p50 / echo p50", one_stream("compiled"), "<=", 1.4),
    Target("compiled, 100 sessions: service throughput / echo", side("100", "compiled", "words_per_second"), ">=", 0.75),  # noqa: E501
    Target("compiled, 100 sessions: server CPU per word / echo's per message", cpu_per_word("100", "compiled"), "<=", 1.4),  # noqa: E501
    Target("Multiplex, 100 sessions on one stream: words/s / echo's messages/s at 100 streams", side("100", "multiplex", "words_per_second"), ">=", 2.0),  # noqa: E501
    Target("Multiplex: server CPU per word / echo's per message", cpu_per_word("100", "multiplex"), "<=", 0.5),
    Target("compiled Multiplex: words/s / echo's messages/s at 100 streams", side("100", "compiled multiplex", "words_per_second"), ">=", 2.0),  # noqa: E501
    Target("compiled Multiplex: server CPU per word / echo's per message", cpu_per_word("100", "compiled multiplex"), "<=", 0.5),  # noqa: E501
    Target("1,000 sessions: service throughput / echo", concurrency("1000", ("batching", "words_per_second"), ("echo", "words_per_second")), ">=", 0.85),  # noqa: E501
    Target("1,000 sessions: service p99 / echo p99", concurrency("1000", ("batching", "p99_ms"), ("echo", "p99_ms")), "<=", 1.5),  # noqa: E501
    Target("cost per word, step 1,000 / step 10", step_cost, "<=", 1.10),
    Target("step 10, end to end: stateless peer / service", stateless(10)),
    Target("step 100, end to end: stateless peer / service", stateless(100)),
    Target("step 500, end to end: stateless peer / service", stateless(500), ">=", 10.0),
    Target("10 tokens, model level: one sequence call / one step", model_ratio("ort_sequence_10_us", "ort_step_b1_us")),  # noqa: E501
    Target("100 tokens, model level: one sequence call / one step", model_ratio("ort_sequence_100_us", "ort_step_b1_us")),  # noqa: E501
    Target("500 tokens, model level: one sequence call / one step", model_ratio("ort_sequence_500_us", "ort_step_b1_us"), ">=", 40.0),  # noqa: E501
    Target("1,000 sessions: batching on / off throughput", concurrency("1000", ("batching", "words_per_second"), ("no batching", "words_per_second")), ">=", 1.4),  # noqa: E501
    Target("memory beyond the state tensors, bytes per session", memory("beyond_state_bytes"), "<=", 4096),
    Target("history bytes per step / raw bytes, typed word by word", memory("history_bytes_per_step_typed", "raw_bytes_per_step"), "<=", 1.5),  # noqa: E501
    Target("history bytes per step / raw bytes, pasted", memory("history_bytes_per_step_pasted", "raw_bytes_per_step"), "<=", 1.5),  # noqa: E501
    Target("batch 1: PyTorch eager step / ONNX Runtime step", model_ratio("torch_step_b1_us", "ort_step_b1_us"), ">=", 5.0),  # noqa: E501
    Target("token cache hit rate over the run", lambda r: [need(r, "token_cache", "hit_rate")]),
]  # fmt: skip


def ratios(runs: list[Run]) -> dict[str, dict[str, Any]]:
    """Every target: median, range and each run's median over the rounds of every run, or why not."""
    out: dict[str, dict[str, Any]] = {}
    for t in TARGETS:
        goal = f"{t.op} {t.target:g}" if t.op else "-"
        try:
            per_run = [t.values(run) for run in runs]
        except (NotMeasured, ZeroDivisionError) as e:
            out[t.name] = {"not_measured": str(e) or "a baseline was zero", "target": goal}
            continue
        values = [v for run in per_run for v in run]
        median = statistics.median(values)
        run_medians = [statistics.median(v) for v in per_run]

        def meets(value: float, t: Target = t) -> bool:
            return value <= t.target if t.op == "<=" else value >= t.target

        met = None if not t.op else meets(median) and all(meets(m) for m in run_medians)
        out[t.name] = {
            "median": median,
            "min": min(values),
            "max": max(values),
            "rounds": len(values),
            "per_run": run_medians,
            "target": goal,
            "met": met,
        }
    return out


def summary(runs: list[Run]) -> dict[str, Any]:
    return {name: r.get("not_measured") or round(r["median"], 3) for name, r in ratios(runs).items()}


def pooled(runs: list[Run], section: tuple[str, ...], server: str, key: str) -> float:
    """The median of a figure over every round of every run."""
    return statistics.median(r[server][key] for run in runs for r in need(run, *section, "rounds"))


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"


def write_report(runs: list[Run], out: Path, kept: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    first = runs[0]
    m = first["machine"]
    lines = [
        "# Benchmarks",
        "",
        f"Produced by `{first['command']}`: {len(runs)} full run(s) starting {m['date']}, on {m['cpu']}, "
        f"{m['cores']} cores, Python {m['python']}, grpcio {m['grpcio']}. Servers and load generators shared the "
        "machine's cores (the CPU columns say how much each side used). Within a run the servers took turns, "
        "round after round; every ratio is computed per round, then given as the median over all rounds of all "
        "runs, its range, and each run's median. Each run's figures are kept: "
        + ", ".join(f"[{Path(k).name}]({k})" for k in kept)
        + ".",
        "",
        f"Load: every stream types the words of the default corpus's test split ({first['texts']['texts']:,} texts, "
        f"{first['texts']['words']:,} words, {first['texts']['distinct_words']:,} distinct), each stream from its "
        f"own place in them. A word request is {first['message_bytes']['request']} bytes, its answer "
        f"{first['message_bytes']['response']} bytes (delta history, the default LSTM model); the echo baseline "
        "sends and answers those sizes with the service's gRPC server options.",
        "",
        "How these targets moved, lever by lever (the kept runs before and after each), and what the gateway "
        "costs: [COST.md](COST.md).",
        "",
        "## Against the targets",
        "",
        "| ratio | median | range over rounds (n) | median of each run | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in ratios(runs).items():
        if "not_measured" in r:
            lines.append(f"| {name} | not measured: {r['not_measured']} | | | {r['target']} | - |")
            continue
        met = "-" if r["met"] is None else ("yes" if r["met"] else "**no**")
        lines.append(
            f"| {name} | {_fmt(r['median'])} | {_fmt(r['min'])} – {_fmt(r['max'])} ({r['rounds']}) | "
            f"{', '.join(_fmt(v) for v in r['per_run'])} | {r['target']} | {met} |"
        )
    lines += _absolute(runs)
    plots = _plots(runs, out)
    lines += [f"![{name}]({path.name})" for name, path in plots]
    (out / "BENCHMARKS.md").write_text("\n".join(lines) + "\n")


def _absolute(runs: list[Run]) -> list[str]:
    """The absolute figures behind the ratios: medians over every round of every run."""
    first = runs[0]
    servers = list(first["one_stream"]["rounds"][0])
    lines = [
        "",
        "## One stream, ping-pong (medians over rounds)",
        "",
        "| server | p50 ms | p99 ms | words/s | server CPU s | client CPU s |",
        "|---|---|---|---|---|---|",
    ]
    figures = ("p50_ms", "p99_ms", "words_per_second", "server_cpu_s", "client_cpu_s")
    for server in servers:
        values = [pooled(runs, ("one_stream",), server, k) for k in figures]
        lines.append(f"| {server} | " + " | ".join(_fmt(v) for v in values) + " |")
    lines += [
        "",
        "## Concurrent sessions (medians over rounds)",
        "",
        "Multiplex sides: one stream carries every session, each message one word entry of each; p50 and p99 "
        "are per message.",
        "",
        "| sessions | server | words/s | p50 ms | p99 ms | server CPU s | client CPU s (processes) |",
        "|---|---|---|---|---|---|---|",
    ]
    for level in first["concurrency"]:
        for server in first["concurrency"][level]["rounds"][0]:  # at 100 sessions: the Multiplex sides too
            section = ("concurrency", level)
            values = [
                pooled(runs, section, server, k) for k in ("words_per_second", "p50_ms", "p99_ms", "server_cpu_s")
            ]
            client = pooled(runs, section, server, "client_cpu_s")
            processes = first["concurrency"][level]["rounds"][0][server]["processes"]
            lines.append(
                f"| {level} | {server} | " + " | ".join(_fmt(v) for v in values) + f" | {_fmt(client)} ({processes}) |"
            )
    cost = first["session_length"]
    early = statistics.median(b["early_ms"] for run in runs for b in run["session_length"]["blocks"])
    late = statistics.median(b["late_ms"] for run in runs for b in run["session_length"]["blocks"])
    lines += [
        "",
        "## Cost per word against session length",
        "",
        f"Measured in turns, blocks of {cost['pairs_per_block']} pairs: one word to a session at step "
        f"{cost['early_step']} (fresh sessions, each used for 20 words), one to a session that had read "
        f"{cost['late_step']} words: median {early:.3f} ms against {late:.3f} ms. The plot shows every word of one "
        f"session of {len(cost['per_word_ms'])} words (the first run).",
        "",
        "## The stateless peer",
        "",
        "A classifier endpoint without server-side state (bench/stateless_server.py), sent the whole text so far "
        "and answering with one ONNX Runtime call over it (the same weights as a sequence graph, "
        "bench/sequence.py), against the service's answer to the next word of a session at that step; in turns, "
        "pair by pair.",
        "",
        "| step | stateless peer ms | service ms |",
        "|---|---|---|",
    ]
    for step in first["stateless"]:
        theirs = statistics.median(b["stateless_ms"] for run in runs for b in run["stateless"][step])
        ours = statistics.median(b["service_ms"] for run in runs for b in run["stateless"][step])
        lines.append(f"| {step} | {theirs:.3f} | {ours:.3f} |")
    paste = first["paste"]
    paste_rate = pooled(runs, ("paste",), "batching", "words_per_second")
    one = pooled(runs, ("one_stream",), "batching", "words_per_second")
    lines += [
        "",
        "## Paste",
        "",
        f"One stream, {paste['words_per_message']} words per message: {paste_rate:,.0f} words/s (ping-pong, one "
        f"word per message: {one:,.0f} words/s).",
    ]
    lines += _memory(runs)
    cache = [run["token_cache"] for run in runs]
    lines += [
        "",
        "## Token cache",
        "",
        "The service remembers the tokens of 8,192 distinct words per model. Over each run's loads it answered "
        + ", ".join(f"{100 * c['hit_rate']:.1f} %" for c in cache)
        + " of its word look-ups from the cache ("
        + ", ".join(f"{c['hits']:,.0f} hits, {c['misses']:,.0f} misses" for c in cache)
        + ").",
        "",
        "## Model level (medians over rounds, µs)",
        "",
        "| measurement | median µs | range |",
        "|---|---|---|",
    ]
    for key in first["model_level"]["rounds"][0]:
        values = [r[key] for run in runs for r in run["model_level"]["rounds"]]
        lines.append(f"| {key} | {statistics.median(values):.1f} | {min(values):.1f} – {max(values):.1f} |")
    if "torch" in first["model_level"]:
        lines.append(f"| PyTorch | {first['model_level']['torch']} | |")
    lines += [
        "",
        "ort_sequence_N_us is the stateless peer's model call over N tokens. PyTorch eager is timed on the same "
        "architecture with fresh weights (timing does not depend on the values); one thread for both runtimes. "
        "thread_handoff_us is one round trip from the event loop to a worker thread and back, doing nothing: "
        "what each model call would add if it ran on a thread (the server runs them on the loop).",
        "",
    ]
    return lines + _profile(runs)


def _memory(runs: list[Run]) -> list[str]:
    def med(key: str) -> float:
        return statistics.median(run["memory"][key] for run in runs)

    mem = runs[0]["memory"]
    raw = mem["raw_bytes_per_step"]
    rows = [
        "",
        "## Memory (medians over runs)",
        "",
        f"{mem['sessions']:,} idle sessions (streams ended, sessions kept) raised the server's resident memory by "
        f"{med('no_history_bytes_per_session'):,.0f} bytes per session (resident memory is coarse at this size). "
        "Counted exactly (tracemalloc, the same sessions created in-process): "
        f"{med('accounted_bytes_per_session'):,.0f} bytes per session, of which {mem['state_bytes']:,} are the "
        "state tensors. An open, idle stream of the bare "
        f"echo server costs {med('echo_stream_bytes'):,.0f} bytes by itself ({mem['echo_streams']:,} streams).",
        "",
        f"History: {mem['history_sessions']:,} sessions given {mem['words_each']} words each "
        f"({mem['steps_each']:.1f} steps), typed word by word or pasted in one message; a step's raw bytes are {raw:,}"
        " (token id, word index, probabilities, state).",
        "",
        "| fill | resident bytes per step | / raw | allocated bytes per step (tracemalloc) | / raw |",
        "|---|---|---|---|---|",
    ]
    for fill in ("typed", "pasted"):
        rss, exact = med(f"history_bytes_per_step_{fill}"), med(f"accounted_history_bytes_per_step_{fill}")
        rows.append(f"| {fill} | {rss:,.0f} | {rss / raw:.3f} | {exact:,.0f} | {exact / raw:.3f} |")
    return rows


def _profile(runs: list[Run]) -> list[str]:
    prof = runs[0].get("profile")
    if not prof:
        return []
    service = statistics.median(run["profile"]["service"]["server_cpu_us_per_message"] for run in runs)
    echo = statistics.median(run["profile"]["echo"]["server_cpu_us_per_message"] for run in runs)
    parts = list(prof["service"]["shares"])
    lines = [
        "## Where the time goes",
        "",
        f"`{prof['command']}`: the service and the bare echo, each under py-spy and the same {prof['streams']} "
        f"ping-pong streams: {service:.0f} µs of server CPU per word against {echo:.0f} µs per message for the "
        "echo (medians over runs). py-spy sampled the service's Python while it held the GIL; each sample goes to "
        "the part of the code it is in. gRPC's machinery and the event loop are the work the echo does too.",
        "",
        "| part | share of the GIL-holding samples (median over runs) |",
        "|---|---|",
    ]
    for part in parts:
        share = statistics.median(run["profile"]["service"]["shares"].get(part, 0.0) for run in runs)
        lines.append(f"| {part} | {100 * share:.1f} % |")
    return lines + [""]


def _plots(runs: list[Run], out: Path) -> list[tuple[str, Path]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    first = runs[0]
    levels = list(first["concurrency"])
    servers = list(first["concurrency"][levels[0]]["rounds"][0])
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8), dpi=110)
    xs = [int(c) for c in levels]
    for server in servers:
        rates = [pooled(runs, ("concurrency", c), server, "words_per_second") for c in levels]
        p99 = [pooled(runs, ("concurrency", c), server, "p99_ms") for c in levels]
        left.plot(xs, rates, marker="o", label=server)
        right.plot(xs, p99, marker="o", label=server)
    for ax, label in ((left, "words per second"), (right, "p99 latency (ms)")):
        ax.set(xscale="log", xlabel="concurrent sessions", ylabel=label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path = out / "bench-concurrency.png"
    fig.savefig(path)
    plt.close(fig)
    made.append(("throughput and p99 against concurrency (medians over rounds)", path))

    per_word = first["session_length"]["per_word_ms"]
    fig, ax = plt.subplots(figsize=(8, 3.2), dpi=110)
    ax.plot(range(1, len(per_word) + 1), per_word, lw=0.6, alpha=0.5, label="each word")
    window = 25
    smooth = [
        sum(per_word[max(0, i - window) : i + 1]) / len(per_word[max(0, i - window) : i + 1])
        for i in range(len(per_word))
    ]
    ax.plot(range(1, len(per_word) + 1), smooth, lw=1.5, label=f"mean of the last {window}")
    ax.set(xlabel="step (word) in the session", ylabel="latency (ms)", title="cost per word against session length")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = out / "bench-session-length.png"
    fig.savefig(path)
    plt.close(fig)
    made.append(("cost per word against session length", path))
    return made


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="kept runs (docs/bench-runs/*.json)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "docs")
    args = parser.parse_args()
    runs = [json.loads(path.read_text()) for path in args.runs]
    kept = [str(path.resolve().relative_to(args.out.resolve())) for path in args.runs]
    write_report(runs, args.out, kept)
    print(json.dumps(summary(runs), default=float))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
