"""The behavioural suite's development part: cases written from templates, for choosing between models.

    python -m wordstream.training.behaviour.development          # the cases, one JSON line each
    python -m wordstream.training.behaviour.development --write  # ... into development.jsonl beside

Each template below is a frame with slots and the label every case made from it takes; each was
read once more, by a second reader, before use (data/README.md). The slots are filled from the
lexicons, never from the report part:

- ``{pos}`` / ``{neg}``: a sentiment adjective (synthetic.sentiment_words: VADER and AFINN agree)
  that is common: a whole word of MiniLM's vocabulary (:func:`common_words`);
- ``{pos_emoji}`` / ``{neg_emoji}``: an emoji VADER reads clearly (synthetic.emoji_words);
- ``{pos_emoticon}`` / ``{neg_emoticon}``: an emoticon of AFINN's emoticon list;
- ``{subject}``, ``{noun}``, ``{neutral}``: the short lists below, which training does not use.

The frames differ from the ones training writes from (synthetic.py), so the part measures whether
a model learned what a negator, a contrast or an emoji does, not whether it learned the frames.
Chat idioms are written out whole (no lexicon has them) and never trained on. Figures on this part
are hints, like the report part's: a set written and tuned on is a development set.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Sequence
from dataclasses import replace
from importlib import resources
from pathlib import Path

from wordstream.training.behaviour import Case
from wordstream.training.synthetic import Lexicon, lexicon

PER_TEMPLATE = 6  # cases drawn from each template (fewer where the slots allow fewer)
SEED = 23

SUBJECTS = (
    "the movie", "the concert", "the pizza", "that lecture", "the new update", "the drive home",
    "the interview", "our dinner", "his speech", "the tour", "the sequel", "the workshop",
)  # fmt: skip
NOUNS = ("moment", "minute", "surprise", "scene", "detail", "second")
NEUTRAL = (
    "heading home now", "the meeting moved to friday", "just read your message", "the package came today",
    "call me later", "on the train", "back at my desk", "see you at eight", "dinner is at mine",
    "picked up the keys",
)  # fmt: skip
MENTIONS = ("@sam_k", "#throwback", "https://t.co/x7Yq2", "@team", "#mondays")

# (category, template, label); for invariance and directional: (category, template, label, variant
# template, expectation). A template's cases all take its label.
Template = tuple[str, str, str] | tuple[str, str, str, str, str]
TEMPLATES: tuple[Template, ...] = (
    ("negated positive", "{subject} was far from {pos}", "negative"),
    ("negated positive", "i wouldn't call {subject} {pos}", "negative"),
    ("negated positive", "{subject} wasn't {pos} in the slightest", "negative"),
    ("negated positive", "nobody found {subject} {pos}", "negative"),
    ("negated positive", "{subject} was never {pos}, not once", "negative"),
    ("negated negative", "there was nothing {neg} about {subject}", "positive"),
    ("negated negative", "not a single {neg} {noun} in {subject}", "positive"),
    ("negated negative", "i don't think {subject} was {neg} at all", "positive"),
    ("negated negative", "{subject} was anything but {neg}", "positive"),
    ("negated negative", "never once felt {neg} during {subject}", "positive"),
    ("emoticons and emoji", "{neutral} {pos_emoji}", "positive"),
    ("emoticons and emoji", "{neutral} {neg_emoji}", "negative"),
    ("emoticons and emoji", "{neutral} {pos_emoticon}", "positive"),
    ("emoticons and emoji", "{neutral} {neg_emoticon}", "negative"),
    ("intensity", "{subject} was {pos_long}!!!", "positive"),
    ("intensity", "{subject} was {NEG}", "negative"),
    ("intensity", "{pos} {pos} {pos}", "positive"),
    ("intensity", "SO {NEG} omg", "negative"),
    ("contrast", "{subject} was {pos}, but honestly the rest was {neg}", "negative"),
    ("contrast", "although {subject} was {neg}, the ending was {pos}", "positive"),
    ("contrast", "{pos} at first, then {neg}", "negative"),
    ("contrast", "{neg} start but {a_pos} finish", "positive"),
    ("invariance", "{subject} was {pos}", "positive", "{mention} {subject} was {pos}", ""),
    ("invariance", "{subject} was {neg}", "negative", "{subject} was {neg} {mention}", ""),
    ("invariance", "{subject} was {pos}", "positive", "{subject} was {pos_typo}", ""),
    ("directional", "{subject} was {pos}", "positive", "{subject} was really {pos}", "not weaker"),
    ("directional", "{subject} was {neg}", "negative", "{subject} was so {neg}", "not weaker"),
    ("directional", "{subject} was {pos}", "positive", "{subject} was {pos}!!!", "not weaker"),
    ("directional", "{subject} was {neg}", "negative", "{subject} was not {neg}", "more positive"),
    # The same words turned to the other sign: an intensifier strengthens either (added after the
    # first four had only tried "really" and "!!!" on positive words and "so" on negative ones).
    ("directional", "{subject} was {neg}", "negative", "{subject} was really {neg}", "not weaker"),
    ("directional", "{subject} was {pos}", "positive", "{subject} was so {pos}", "not weaker"),
    ("directional", "{subject} was {neg}", "negative", "{subject} was {neg}!!!", "not weaker"),
)
IDIOMS = (  # chat idioms, written out whole: (text, label)
    ("that set was fire", "positive"),
    ("this song hits different", "positive"),
    ("ngl that was a vibe", "positive"),
    ("he absolutely nailed it", "positive"),
    ("we crushed it today", "positive"),
    ("no cap best burger in town", "positive"),
    ("it's a whole mood", "positive"),
    ("she's an absolute icon", "positive"),
    ("chef's kiss", "positive"),
    ("low key obsessed with this", "positive"),
    ("big yikes", "negative"),
    ("this ain't it", "negative"),
    ("the update is mid", "negative"),
    ("nope, not for me", "negative"),
    ("what a flop", "negative"),
    ("so over this week", "negative"),
    ("ugh, not this again", "negative"),
    ("total dumpster fire", "negative"),
    ("that was cringe", "negative"),
    ("over it tbh", "negative"),
)


def write(words: Lexicon, per_template: int = PER_TEMPLATE, seed: int = SEED) -> list[Case]:
    """The development cases: ``per_template`` from each template (no text twice), then the idioms."""
    rng = random.Random(seed)
    cases: list[Case] = []
    for template in TEMPLATES:
        category, text, label = template[:3]
        variant, expect = (template[3], template[4]) if len(template) == 5 else ("", "")
        seen: set[str] = set()
        for _ in range(per_template * 20):
            if len(seen) == per_template:
                break
            values = _values(rng, words)
            filled = text.format(**values)
            if filled not in seen:
                seen.add(filled)
                cases.append(Case(category, filled, label, variant.format(**values), expect))
    cases += [Case("chat idioms", text, label) for text, label in IDIOMS]
    return cases


def _values(rng: random.Random, words: Lexicon) -> dict[str, str]:
    pos, neg = rng.choice(words.positive), rng.choice(words.negative)
    at = rng.randrange(1, len(pos))
    return {
        "pos": pos,
        "neg": neg,
        "a_pos": ("an " if pos[0] in "aeiou" else "a ") + pos,
        "NEG": neg.upper(),
        "pos_long": pos + pos[-1] * 3,  # "great" -> "greatttt"
        "pos_typo": pos[:at] + pos[at + 1 :] if len(pos) > 4 else pos + pos[-1],  # one letter dropped
        "pos_emoji": rng.choice(words.positive_emoji),
        "neg_emoji": rng.choice(words.negative_emoji),
        "pos_emoticon": rng.choice(words.positive_emoticons),
        "neg_emoticon": rng.choice(words.negative_emoticons),
        "subject": rng.choice(SUBJECTS),
        "noun": rng.choice(NOUNS),
        "neutral": rng.choice(NEUTRAL),
        "mention": rng.choice(MENTIONS),
    }


def common_words(words: Lexicon) -> Lexicon:
    """``words`` without the rare adjectives: those MiniLM's word-piece vocabulary does not hold whole."""
    from wordstream.training.features.pretrained import minilm_words

    known = set(minilm_words())
    return replace(
        words,
        positive=[w for w in words.positive if w in known],
        negative=[w for w in words.negative if w in known],
    )


def to_jsonl(cases: Sequence[Case]) -> str:
    lines = []
    for c in cases:
        raw = {"category": c.category, "text": c.text, "label": c.label}
        if c.variant:
            raw["variant"] = c.variant
        if c.expect:
            raw["expect"] = c.expect
        lines.append(json.dumps(raw, ensure_ascii=False))
    return "\n".join(lines) + "\n"


def shipped_path() -> Path:
    return Path(str(resources.files("wordstream.training.behaviour").joinpath("development.jsonl")))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wordstream.training.behaviour.development", description=__doc__)
    parser.add_argument("--write", action="store_true", help=f"write {shipped_path().name} beside this module")
    args = parser.parse_args(argv)
    text = to_jsonl(write(common_words(lexicon())))
    if args.write:
        shipped_path().write_text(text, encoding="utf-8")
        print(f"wrote {shipped_path()} ({text.count(chr(10))} cases)", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
