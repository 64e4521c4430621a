"""Turn a benchmark run into ratios against the targets, a Markdown table and plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# (name, the ratio's value from the results, comparison, target)
TARGETS = [
    (
        "one stream: service p50 / echo p50",
        lambda r: r["one_stream"]["batching"]["p50_ms"] / r["one_stream"]["echo"]["p50_ms"],
        "<=",
        1.15,
    ),
    (
        "100 sessions: service throughput / echo",
        lambda r: _c(r, "100", "batching", "words_per_second") / _c(r, "100", "echo", "words_per_second"),
        ">=",
        0.85,
    ),
    (
        "100 sessions: service p99 / echo p99",
        lambda r: _c(r, "100", "batching", "p99_ms") / _c(r, "100", "echo", "p99_ms"),
        "<=",
        1.5,
    ),
    (
        "1,000 sessions: service throughput / echo",
        lambda r: _c(r, "1000", "batching", "words_per_second") / _c(r, "1000", "echo", "words_per_second"),
        ">=",
        0.85,
    ),
    (
        "1,000 sessions: service p99 / echo p99",
        lambda r: _c(r, "1000", "batching", "p99_ms") / _c(r, "1000", "echo", "p99_ms"),
        "<=",
        1.5,
    ),
    (
        "cost per word, step 1,000 / step 10",
        lambda r: r["session_length"]["late_ms"] / r["session_length"]["early_ms"],
        "<=",
        1.10,
    ),
    (
        "step 500, end to end: stateless / service",
        lambda r: r["stateless"]["stateless_ms"] / r["stateless"]["service_ms"],
        ">=",
        10.0,
    ),
    (
        "step 500, model level: prefix re-run / one step",
        lambda r: r["model_level"]["ort_prefix_rerun_us"] / r["model_level"]["ort_step_b1_us"],
        ">=",
        40.0,
    ),
    (
        "1,000 sessions: batching on / off throughput",
        lambda r: _c(r, "1000", "batching", "words_per_second") / _c(r, "1000", "no batching", "words_per_second"),
        ">=",
        1.4,
    ),
    ("memory beyond the state tensors, bytes per session", lambda r: r["memory"]["beyond_state_bytes"], "<=", 4096),
    (
        "history bytes per step / raw bytes",
        lambda r: r["memory"]["history_bytes_per_step"] / r["memory"]["raw_bytes_per_step"],
        "<=",
        1.5,
    ),
    (
        "batch 1: PyTorch eager step / ONNX Runtime step",
        lambda r: r["model_level"]["torch_step_b1_us"] / r["model_level"]["ort_step_b1_us"],
        ">=",
        5.0,
    ),
]


def _c(results: dict[str, Any], concurrency: str, server: str, key: str) -> float:
    return float(results["concurrency"][concurrency][server][key])


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, value, op, target in TARGETS:
        try:
            v = float(value(results))
        except (KeyError, ZeroDivisionError, TypeError):
            continue
        met = v <= target if op == "<=" else v >= target
        out[name] = {"value": round(v, 3), "target": f"{op} {target}", "met": met}
    return out


def write_report(results: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench-results.json").write_text(json.dumps(results, indent=1, default=float))
    plots = _plots(results, out)
    m = results["machine"]
    lines = [
        "# Benchmarks",
        "",
        f"Produced by `{results['command']}` on {m['date']}: {m['cpu']}, {m['cores']} cores, Python {m['python']}, "
        f"grpcio {m['grpcio']}. Every figure below comes from that one run; servers and load generators shared the "
        "machine's two cores (the CPU columns say how much each side used). The servers took turns, "
        f"{_rounds(results)} round(s) each, and each row merges its rounds, so that a slow spell of the shared "
        "machine falls on every side. The raw figures are in [bench-results.json](bench-results.json).",
        "",
        f"Messages: a word request is {results['message_bytes']['request']} bytes, its answer "
        f"{results['message_bytes']['response']} bytes (delta history, the default LSTM model); the echo baseline "
        "sends and answers the same sizes.",
        "",
        "## Against the targets (issue 5)",
        "",
        "| ratio | measured | target | met |",
        "|---|---|---|---|",
    ]
    for name, r in ratios(results).items():
        lines.append(f"| {name} | {r['value']} | {r['target']} | {'yes' if r['met'] else '**no**'} |")
    lines += [
        "",
        "## One stream, ping-pong",
        "",
        "| server | p50 ms | p99 ms | words/s | server CPU s | client CPU s |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results["one_stream"].items():
        lines.append(
            f"| {name} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {r['words_per_second']:.0f} | "
            f"{r['server_cpu_s']:.1f} | {r['client_cpu_s']:.1f} |"
        )
    lines += [
        "",
        "## Concurrent sessions",
        "",
        "| sessions | server | words/s | p50 ms | p99 ms | server CPU s | client CPU s (processes) |",
        "|---|---|---|---|---|---|---|",
    ]
    for c, by_server in results["concurrency"].items():
        for name, r in by_server.items():
            lines.append(
                f"| {c} | {name} | {r['words_per_second']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                f"{r['server_cpu_s']:.1f} | {r['client_cpu_s']:.1f} ({r['processes']}) |"
            )
    s, st, p, mem, ml = (
        results["session_length"],
        results["stateless"],
        results["paste"],
        results["memory"],
        results["model_level"],
    )
    lines += [
        "",
        "## Cost per word against session length",
        "",
        f"Measured in turns, {s['pairs']} pairs: one word to a session at step {s['early_step']} (fresh sessions, "
        f"each used for 20 words), one to a session that had read {s['late_step']} words: median "
        f"{s['early_ms']:.3f} ms against {s['late_ms']:.3f} ms. The plot shows every word of one session of "
        f"{s['end_step']} words.",
        "",
        f"Stateless baseline at step {st['prefix']} (a new session fed the whole prefix, as a client without "
        f"server-side state would): {st['stateless_ms']:.1f} ms per word, against {st['service_ms']:.3f} ms for "
        "the service's next word at that point.",
        "",
        "## Paste",
        "",
        f"One stream, {p['words_per_message']} words per message: {p['words_per_second']:.0f} words/s "
        f"(ping-pong one word per message: {results['one_stream']['batching']['words_per_second']:.0f} words/s).",
        "",
        "## Memory",
        "",
        f"{mem['sessions']} idle sessions (streams ended, sessions kept) raised the server's resident memory by "
        f"{mem['no_history_bytes_per_session']:.0f} bytes per session without history (resident memory is coarse "
        "at this size: the allocator reuses pages it already holds). Counted exactly (tracemalloc, the same "
        f"sessions created in-process): {mem.get('accounted_bytes_per_session', float('nan')):.0f} bytes per "
        f"session, of which {mem['state_bytes']} are the state tensors and {mem['beyond_state_bytes']:.0f} the "
        "rest (the state bank's spare slots included). With "
        f"{mem['words_each']} words each, {mem['history_bytes_per_step']:.0f} bytes per step of history against "
        f"{mem['raw_bytes_per_step']} raw bytes (token id, word index, probabilities, state). An open, idle stream "
        f"of the bare echo server costs {mem['echo_stream_bytes']:.0f} bytes by itself "
        f"({mem['echo_streams']} streams).",
        "",
        "## Model level",
        "",
        "| measurement | median µs |",
        "|---|---|",
    ]
    for key, value in ml.items():
        lines.append(f"| {key} | {value if isinstance(value, str) else f'{value:.1f}'} |")
    lines += [
        "",
        "PyTorch eager is timed on the same architecture with fresh weights (timing does not depend "
        "on the values); one thread for both runtimes. thread_handoff_us is one round trip from the event loop "
        "to a worker thread and back, doing nothing: what each model call would add if it ran on a thread "
        "(the server runs them on the loop, server/batching.py).",
        "",
    ]
    lines += _profile_section(results)
    lines += [f"![{name}]({path.name})" for name, path in plots]
    (out / "BENCHMARKS.md").write_text("\n".join(lines) + "\n")


def _rounds(results: dict[str, Any]) -> int:
    return int(next(iter(results["one_stream"].values())).get("rounds", 1))


def _profile_section(results: dict[str, Any]) -> list[str]:
    prof = results.get("profile")
    if not prof:
        return []
    echo = results["concurrency"].get(str(prof["streams"]), {}).get("echo")
    echo_cpu = f"{1e6 * echo['server_cpu_s'] / echo['messages']:.0f}" if echo else "?"
    lines = [
        "## Where the time goes",
        "",
        f"`{prof['command']}`: the service under {prof['streams']} ping-pong streams ({prof['words']} words, "
        f"{prof['words_per_second']:.0f} words/s while profiled) costs {prof['server_cpu_us_per_word']:.0f} us of "
        f"server CPU per word; the bare echo above cost {echo_cpu} us per message at the same concurrency. "
        f"py-spy sampled the server's Python while it held the GIL ({prof['samples']} samples); each sample goes "
        "to the part of the code it is in. gRPC's machinery and the event loop are the work the echo does too.",
        "",
        "| part | share of the GIL-holding samples |",
        "|---|---|",
    ]
    lines += [f"| {part} | {100 * share:.1f} % |" for part, share in prof["shares"].items()]
    return lines + [""]


def _plots(results: dict[str, Any], out: Path) -> list[tuple[str, Path]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    levels = list(results["concurrency"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8), dpi=110)
    for server in results["concurrency"][levels[0]]:
        xs = [int(c) for c in levels]
        left.plot(xs, [results["concurrency"][c][server]["words_per_second"] for c in levels], marker="o", label=server)
        right.plot(xs, [results["concurrency"][c][server]["p99_ms"] for c in levels], marker="o", label=server)
    for ax, label in ((left, "words per second"), (right, "p99 latency (ms)")):
        ax.set(xscale="log", xlabel="concurrent sessions", ylabel=label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path = out / "bench-concurrency.png"
    fig.savefig(path)
    plt.close(fig)
    made.append(("throughput and p99 against concurrency", path))

    per_word = results["session_length"]["per_word_ms"]
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
