"""``wordstream plot``: a session's state history as a heatmap, its output as a line."""

from __future__ import annotations

from pathlib import Path

from wordstream.client import errors
from wordstream.client.types import Step


def plot_history(history: list[Step], labels: list[str], out: str | Path, title: str = "") -> None:
    """Top: every state value (rows) after every step (columns). Bottom: each label's probability."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np
    except ImportError:
        raise errors.InvalidRequest("plot needs matplotlib: pip install matplotlib") from None
    if not history:
        raise errors.InvalidRequest("the session has no steps to plot")
    # (values, steps): the state tensors' layers stacked, e.g. h then c for an LSTM.
    rows = [np.concatenate([np.asarray(layer) for name in sorted(s.state) for layer in s.state[name]]) for s in history]
    matrix = np.stack(rows, axis=1)
    ticks = [s.token.text for s in history]
    width = min(2 + 0.35 * len(history), 24)
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(width, 6.5), dpi=110, sharex=True, gridspec_kw={"height_ratios": [3, 1.3]}
    )
    limit = float(np.abs(matrix).max()) or 1.0
    image = top.imshow(matrix, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
    names = " + ".join(
        f"{name} ({len(history[0].state[name])}x{len(history[0].state[name][0])})" for name in sorted(history[0].state)
    )
    top.set(ylabel=f"state values: {names}", title=title[:90])
    fig.colorbar(image, ax=top, fraction=0.025, pad=0.01)
    steps = range(len(history))
    for label in labels:
        bottom.plot(steps, [s.output.probabilities[label] for s in history], marker="o", label=label)
    bottom.set(ylim=(0, 1), ylabel="probability")
    bottom.legend(loc="upper left", fontsize=8)
    bottom.grid(alpha=0.3)
    bottom.set_xticks(list(steps), ticks, rotation=60, fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
