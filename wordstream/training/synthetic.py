"""Short texts written by rule, to teach what a negator or a "but" does to a sentiment word.

Film reviews rarely say "not bad", so a model trained on them reads every negative word as
negative. These templates put the sentiment words of VADER's and AFINN's lexicons (those both
lists know, with the same sign) behind subjects, verbs, negators and contrasts:

    the food was awful            -> negative     the food was not awful       -> positive
    the food wasn't awful at all  -> positive     not awful                    -> positive
    it was dull but the cast was lovely -> positive

The label is the rule's (the word's sign, turned by a negator; after "but", the second
clause's); a second teacher that knows the rules, VADER, reads each prefix
(:func:`vader_prefixes`), and train.py mixes the two the way it mixes the MiniLM teacher with
the gold label. No text equal to a case of the behavioural suite's report part is kept (the
report part stays apart from anything trained on: wordstream/training/behaviour).
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SUBJECTS = (
    "it", "this", "that", "the film", "the food", "the place", "the service", "the book", "the game",
    "the trip", "the party", "my day", "the weather", "the show", "the new one", "the ending", "the hotel",
    "the class", "the app", "the song", "the meal", "her talk", "his idea", "the match", "our visit",
)  # fmt: skip
VERBS = (  # (plain, negated by contraction)
    ("is", "isn't"),
    ("was", "wasn't"),
    ("looks", "doesn't look"),
    ("seems", "doesn't seem"),
    ("felt", "didn't feel"),
    ("sounds", "doesn't sound"),
)
TAILS = ("", "", "", " at all", " tbh", " honestly", "!", "!!", " to be fair", " lol")
ADJECTIVE_ENDINGS = ("ful", "ous", "ive", "able", "ible", "ic", "y", "ed", "ing", "ent", "less", "some")
PLAIN = frozenset(
    "good bad great nice fine cool sad fun dull poor cute evil vile weak kind rude calm glad warm ugly lame mean "
    "best worst wise safe fair free sweet smart brave proud bold clean dirty rich".split()
)  # short adjectives without a telling ending
STRONG = 1.5  # VADER valence from which a word counts (its scale: -4..4)


@dataclass(frozen=True)
class Written:
    text: str
    label: str  # "positive" or "negative"


def sentiment_words(vader: dict[str, float], afinn: dict[str, float]) -> tuple[list[str], list[str]]:
    """(positive, negative) words both lexicons know with the same sign, VADER's valence at least
    STRONG in size, that read as adjectives (their ending, or one of PLAIN)."""
    positive: list[str] = []
    negative: list[str] = []
    for word, value in sorted(vader.items()):
        other = afinn.get(word)
        if other is None or not word.isalpha() or abs(value) < STRONG or (value > 0) != (other > 0):
            continue
        if not (word.endswith(ADJECTIVE_ENDINGS) or word in PLAIN):
            continue
        (positive if value > 0 else negative).append(word)
    return positive, negative


def write(count: int, seed: int, positive: Sequence[str], negative: Sequence[str], exclude: set[str]) -> list[Written]:
    """``count`` texts from the templates, each label by rule, none in ``exclude`` (lower case)."""
    rng = random.Random(seed)
    flip = {"positive": "negative", "negative": "positive"}
    out: list[Written] = []
    seen = set(exclude)
    while len(out) < count:
        label = rng.choice(("positive", "negative"))
        word = rng.choice(positive if label == "positive" else negative)
        subject, (verb, negated) = rng.choice(SUBJECTS), rng.choice(VERBS)
        tail = rng.choice(TAILS)
        form = rng.randrange(6)
        if form == 0:
            text, truth = f"{subject} {verb} {word}{tail}", label
        elif form == 1:
            text, truth = f"{subject} {negated} {word}{tail}", flip[label]
        elif form == 2:
            text, truth = f"{subject} {verb} not {word}{tail}", flip[label]
        elif form == 3:
            text, truth = f"not {word}{tail}", flip[label]
        elif form == 4:
            text, truth = f"never {word}{tail}", flip[label]
        else:  # a contrast: the clause after "but" decides
            other = rng.choice(negative if label == "positive" else positive)
            second, (verb2, _) = rng.choice(SUBJECTS), rng.choice(VERBS)
            text, truth = f"{subject} {verb} {other} but {second} {verb2} {word}{tail}", label
        if text.lower() not in seen:
            seen.add(text.lower())
            out.append(Written(text, truth))
    return out


def vader_prefixes(text: str) -> list[float]:
    """VADER's P(positive) after each word: (compound + 1) / 2 of the prefix."""
    analyzer = _vader()
    words = text.split()
    return [(analyzer.polarity_scores(" ".join(words[: n + 1]))["compound"] + 1) / 2 for n in range(len(words))]


@functools.cache
def _vader() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def lexicons() -> tuple[dict[str, float], dict[str, float]]:
    """VADER's valences (-4..4) and AFINN-165's scores (-5..5), word -> value (first listing wins)."""
    from wordstream.training.features.lexicon import _package_dir

    vader: dict[str, float] = {}
    for line in (_package_dir("vaderSentiment") / "vader_lexicon.txt").read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) >= 2:
            vader.setdefault(parts[0].lower(), float(parts[1]))
    afinn: dict[str, float] = {}
    for line in (_package_dir("afinn") / "data" / "AFINN-en-165.txt").read_text(encoding="utf-8").splitlines():
        word, _, value = line.rpartition("\t")
        if word:
            afinn.setdefault(word.lower(), float(value))
    return vader, afinn
