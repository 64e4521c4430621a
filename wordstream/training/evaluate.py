"""Evaluate an exported step model with ONNX Runtime only (this module never imports torch).

    python -m wordstream.training.evaluate models/sentiment-lstm.onnx [--data FILE] [--plot typing.png]
                                         [--report] [--vader]

Texts are fed the way the server feeds them: split on whitespace into words, each word
tokenized, one token per model call, the state carried. The last line printed is JSON:
``accuracy``, ``macro_f1`` and ``n`` at the end of the text, and ``typing``: the accuracy
after 25 %, 50 %, 75 % and 100 % of each text's words. ``--report`` adds per-class
precision, recall and F1 and the confusion table (rows: the true label, columns: the
predicted one), printed as a table before the JSON and under ``report`` in it. ``--vader``
adds the rule-based VADER analyzer's figures on the same texts, under ``vader`` (see
:func:`vader_baseline` for how its score becomes a label).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wordstream.modelfile import ModelError, ModelMetadata, StepModel, load_model
from wordstream.shared import macro_f1
from wordstream.textcodec import PAD_ID, TextCodec
from wordstream.training.data import DataError, Example, load_file, load_rotten_tomatoes, split_examples

TYPING_POINTS = (0.25, 0.5, 0.75, 1.0)


def word_token_ids(codec: TextCodec, text: str) -> list[list[int]]:
    """The token ids of each whitespace-separated word, as the server receives them."""
    return [codec.encode_ids(word) for word in text.split()]


def typing_probs(runner: StepModel, texts: Sequence[str], batch_size: int = 512) -> list[list[np.ndarray | None]]:
    """For each text, the probabilities after each of its words (None before any token was read)."""
    results: list[list[np.ndarray | None]] = []
    for start in range(0, len(texts), batch_size):
        words = [word_token_ids(runner.codec, t) for t in texts[start : start + batch_size]]
        flat = [[i for w in ws for i in w] for ws in words]
        steps = max(1, max(len(f) for f in flat))
        tokens = np.full((len(flat), steps), PAD_ID, np.int64)
        for row, ids in enumerate(flat):
            tokens[row, : len(ids)] = ids
        state = runner.initial_state(len(flat))
        per_step = []
        for t in range(steps):
            probs, state = runner.run(tokens[:, t], state)
            per_step.append(probs)
        for row, ws in enumerate(words):
            seen, after_word = 0, []
            for w in ws:
                seen += len(w)
                after_word.append(per_step[seen - 1][row] if seen else None)
            results.append(after_word)
    return results


def evaluate(runner: StepModel, examples: Sequence[Example]) -> dict[str, Any]:
    """Accuracy and macro-F1 at the end of each text, and accuracy while it is being typed."""
    index = {label: i for i, label in enumerate(runner.labels)}
    unknown = sorted({e.label for e in examples} - set(index))
    if unknown:
        raise DataError(f"labels {unknown} are not among the model's {list(runner.labels)}")
    gold = [index[e.label] for e in examples]
    trajectories = typing_probs(runner, [e.text for e in examples])
    typing: dict[str, float] = {}
    final_pred: list[int] = []
    for point in TYPING_POINTS:
        pred = []
        for trajectory in trajectories:
            k = max(1, math.ceil(point * len(trajectory))) if trajectory else 0
            probs = next((p for p in reversed(trajectory[:k]) if p is not None), None)
            pred.append(int(np.argmax(probs)) if probs is not None else 0)
        typing[f"{int(point * 100)}%"] = round(sum(p == g for p, g in zip(pred, gold)) / len(gold), 4)
        final_pred = pred
    return {
        "accuracy": typing["100%"],
        "macro_f1": round(macro_f1(gold, final_pred, range(len(runner.labels))), 4),
        "n": len(gold),
        "typing": typing,
        "report": report(gold, final_pred, runner.labels),
    }


def report(gold: Sequence[int], pred: Sequence[int], labels: Sequence[str]) -> dict[str, Any]:
    """Per-class precision, recall and F1, and the confusion table: confusion[true][predicted]."""
    confusion = [[0] * len(labels) for _ in labels]
    for g, p in zip(gold, pred):
        confusion[g][p] += 1
    classes = {}
    for i, label in enumerate(labels):
        predicted = sum(row[i] for row in confusion)
        actual = sum(confusion[i])
        precision = confusion[i][i] / predicted if predicted else 0.0
        recall = confusion[i][i] / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        classes[label] = {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
            "support": actual,
        }
    return {"classes": classes, "confusion": {label: dict(zip(labels, row)) for label, row in zip(labels, confusion)}}


def report_text(result: dict[str, Any]) -> str:
    """The report as a plain table for people."""
    labels = list(result["classes"])
    width = max(9, *(len(label) for label in labels))
    lines = [f"{'':{width}}  precision  recall      f1  support"]
    for label, figures in result["classes"].items():
        lines.append(
            f"{label:{width}}  {figures['precision']:9.4f}  {figures['recall']:6.4f}  {figures['f1']:6.4f}"
            f"  {figures['support']:7d}"
        )
    lines += ["", "confusion (rows: true label, columns: predicted)", f"{'':{width}}  " + "  ".join(labels)]
    for label, row in result["confusion"].items():
        lines.append(f"{label:{width}}  " + "  ".join(f"{row[p]:{len(p)}d}" for p in labels))
    return "\n".join(lines)


VADER_RULE = "compound >= 0 -> positive (a score of exactly 0 counts as positive), else negative"


def vader_baseline(examples: Sequence[Example], labels: Sequence[str]) -> dict[str, Any]:
    """VADER (the vadersentiment package) on the same texts: its compound score's sign is the label,
    for the labels negative and positive; a compound of exactly 0 is read as positive (VADER_RULE)."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    if set(labels) != {"negative", "positive"}:
        raise DataError(f"VADER reads negative/positive only, the data has {list(labels)}")
    analyzer = SentimentIntensityAnalyzer()
    index = {label: i for i, label in enumerate(labels)}
    gold = [index[e.label] for e in examples]
    scores = [analyzer.polarity_scores(e.text)["compound"] for e in examples]
    pred = [index["positive"] if score >= 0 else index["negative"] for score in scores]
    return {
        "accuracy": round(sum(p == g for p, g in zip(pred, gold)) / len(gold), 4),
        "macro_f1": round(macro_f1(gold, pred, range(len(labels))), 4),
        "n": len(gold),
        "zero_scores": sum(score == 0 for score in scores),
        "rule": VADER_RULE,
        "report": report(gold, pred, labels),
    }


def baselines(train: Sequence[Example], examples: Sequence[Example]) -> dict[str, float]:
    """What a model must beat: the training split's majority label, and each film's majority label in
    training (the majority label where a film has no training texts), scored on ``examples``."""
    overall = Counter(e.label for e in train).most_common(1)[0][0]
    by_film: dict[str, Counter[str]] = defaultdict(Counter)
    for e in train:
        by_film[e.group][e.label] += 1
    film_label = {film: _majority(counts, overall) for film, counts in by_film.items() if film}
    n = len(examples)
    return {
        "majority": round(sum(e.label == overall for e in examples) / n, 4),
        "film_prior": round(sum(e.label == film_label.get(e.group, overall) for e in examples) / n, 4),
        "films_seen_in_training": round(sum(e.group in film_label for e in examples) / n, 4),
    }


def _majority(counts: Counter[str], tie: str) -> str:
    """The most frequent label; a tie goes to ``tie`` when it is among the most frequent."""
    top = max(counts.values())
    best = sorted(label for label, count in counts.items() if count == top)
    return tie if tie in best else best[0]


SPLIT_NAMES = {"valid": "validation", "test": "TEST"}


def model_split(metadata: ModelMetadata, part: str = "valid") -> list[Example]:
    """The model's own validation or test part ("valid", "test"), rebuilt from its metadata and
    checked against its data hash."""
    from wordstream.textcodec import Tokenizer

    data = metadata.data
    if data.is_default_corpus:
        examples = load_rotten_tomatoes()
    else:
        examples = load_file(data.source, data.text_column, data.label_column, data.skip_bad)
    split = split_examples(
        examples,
        Tokenizer.from_settings(metadata.split_tokenizer),
        seed=metadata.split_seed,
        labels=metadata.labels,
        by=metadata.split_by,
    )
    if split.data_hash != metadata.data_hash:
        raise DataError(f"{data.source}: the data has changed since training (hash differs); pass --data FILE")
    return split.test if part == "test" else split.valid


def plot_typing(result: dict[str, Any], path: str | Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [int(k.rstrip("%")) for k in result["typing"]]
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
    ax.plot(xs, list(result["typing"].values()), marker="o")
    ax.set(xlabel="share of the text's words typed (%)", ylabel="accuracy", title=title, xticks=xs)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m wordstream.training.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("model", help="an exported .onnx step model")
    parser.add_argument("--data", help="a labelled CSV, TSV or JSONL file (default: the model's own --split)")
    parser.add_argument(
        "--split",
        choices=("valid", "test"),
        default="valid",
        help="which part of the model's own data to score without --data (default: valid; test only to report "
        "a shipped model, once)",
    )
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--label-column", default="label")
    parser.add_argument("--plot", help="draw the accuracy-while-typing curve to this PNG")
    parser.add_argument("--report", action="store_true", help="per-class precision/recall/F1 and the confusion table")
    parser.add_argument("--vader", action="store_true", help="VADER's figures on the same texts, for comparison")
    parser.add_argument(
        "--behaviour",
        nargs="?",
        const="",
        metavar="PART|FILE",
        help="the behavioural suite instead (its report part; the part named: report, development; or "
        "FILE): the table per category with VADER beside, and P(positive) after each word of every failure",
    )
    parser.add_argument(
        "--typing",
        nargs="+",
        metavar="TEXT",
        help="instead: P(positive) after each word of each TEXT, as the server reads it, and VADER's beside",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.typing:
        return typing_main(args.model, args.typing)
    if args.behaviour is not None:
        return behaviour_main(args.model, args.behaviour or None)
    try:
        runner = load_model(Path(args.model), threads=0)
        if args.data:
            examples = load_file(args.data, args.text_column, args.label_column)
        else:
            examples = model_split(runner.metadata, args.split)
            print(f"scoring the model's {SPLIT_NAMES[args.split]} split", file=sys.stderr)
        result = evaluate(runner, examples)
        if not args.data:
            result["split"] = args.split
        if args.vader:
            result["vader"] = vader_baseline(examples, runner.labels)
    except (DataError, ModelError, OSError, KeyError, ValueError) as e:
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return 1
    if args.plot:
        plot_typing(result, args.plot, Path(args.model).name)
    if args.report:
        print(report_text(result["report"]))
        if args.vader:
            print(f"\nVADER ({VADER_RULE}):\n" + report_text(result["vader"].pop("report")))
    else:
        result.pop("report")
        result.get("vader", {}).pop("report", None)
    print(json.dumps(result))
    return 0


def positive_reader(runner: StepModel) -> Callable[[Sequence[str]], list[list[float]]]:
    """P(positive) after each word of each text, as the server feeds the words (typing_probs)."""
    positive = list(runner.labels).index("positive")

    def read(texts: Sequence[str]) -> list[list[float]]:
        return [[0.5 if p is None else float(p[positive]) for p in row] for row in typing_probs(runner, texts)]

    return read


def typing_main(model: str, texts: Sequence[str]) -> int:
    """``--typing``: the typing view of each text, the model's line and VADER's under it."""
    from wordstream.training import behaviour

    try:
        runner = load_model(Path(model), threads=0)
        if "positive" not in runner.labels:
            raise ValueError(f"the model's labels {list(runner.labels)} have no 'positive'")
        ours = positive_reader(runner)(texts)
    except (ModelError, OSError, ValueError) as e:
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return 1
    name = Path(model).name
    for text, model_typing, vader_typing in zip(texts, ours, behaviour.vader_reader()(texts)):
        print(f"{name}: {behaviour.typing_line(text, model_typing)}")
        print(f"{'VADER':>{len(name)}}: {behaviour.typing_line(text, vader_typing)}")
    return 0


def behaviour_main(model: str, suite: str | None) -> int:
    """``--behaviour``: the model and VADER on the behavioural suite; the table, the failures, then JSON."""
    from wordstream.training import behaviour

    try:
        runner = load_model(Path(model), threads=0)
        cases = behaviour.load(suite)
        ours = behaviour.run(cases, positive_reader(runner))
        vader = behaviour.run(cases, behaviour.vader_reader())
    except (behaviour.SuiteError, ModelError, OSError, ValueError) as e:
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(behaviour.report(ours, vader))
    print(
        json.dumps(
            {"behaviour": behaviour.figures(ours), "vader": behaviour.figures(vader), "suite": suite or "report"}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
