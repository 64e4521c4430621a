"""The behavioural suite: short chat-like texts that test what a sentiment model must get right.

Cases live in package data beside this file (``report.jsonl``), one JSON object a line:

- ``{"category", "text", "label"}``: the final label of the whole text must be ``label``
  (categories: negated positive, negated negative, emoticons and emoji, intensity, contrast,
  chat idioms);
- ``{"category": "invariance", "text", "variant", "label"}``: a mention, a link, a hashtag, a
  name or a typo must not flip the label: both texts must read ``label``;
- ``{"category": "directional", "text", "variant", "label", "expect"}``: ``expect`` is
  ``"not weaker"`` (adding "!!!" or "really" must not lower P(label) after the last word by
  more than ``TOLERANCE``) or ``"more positive"`` ("not" before a negative word must raise
  P(positive)).

``report.jsonl`` is the report part: written by hand before any generator existed, sharing no
template or word list with training (data/README.md says who wrote and checked it). Its
figures are hints, like the development sets'. ``development.jsonl`` is the development part,
written from templates over the lexicons by ``python -m wordstream.training.behaviour.development
--write`` (development.py), for choosing between models. ``evaluate MODEL --behaviour [FILE]`` scores a
model (evaluate.py reads it word by word, as the server does) and VADER on it (:func:`run`),
with the typing view of every failure (:func:`report`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

LABELED = (
    "negated positive",
    "negated negative",
    "emoticons and emoji",
    "intensity",
    "contrast",
    "chat idioms",
)
CATEGORIES = (*LABELED, "invariance", "directional")
EXPECTATIONS = ("not weaker", "more positive")
TOLERANCE = 0.02  # how far "not weaker" may move P(label) the wrong way
LABELS = ("negative", "positive")


@dataclass(frozen=True)
class Case:
    category: str
    text: str
    label: str
    variant: str = ""
    expect: str = ""


class SuiteError(ValueError):
    """A suite file that is not one this module reads; the message names the line."""


PARTS = ("report", "development")  # the package's own parts, by name


def load(path: str | Path | None = None) -> list[Case]:
    """The cases of ``path``, or of the package's own part of that name (PARTS), or of its report part."""
    if path is None or path in PARTS:
        name = f"{path or 'report'}.jsonl"
        text = resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
    else:
        text, name = Path(path).read_text(encoding="utf-8"), str(path)
    cases = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as e:
            raise SuiteError(f"{name}:{number}: not JSON ({e})") from None
        cases.append(_case(raw, f"{name}:{number}"))
    if not cases:
        raise SuiteError(f"{name}: no cases")
    return cases


def _case(raw: Any, where: str) -> Case:
    if not isinstance(raw, dict) or not all(isinstance(raw.get(k), str) for k in ("category", "text", "label")):
        raise SuiteError(f"{where}: a case needs the strings category, text and label")
    category, label = raw["category"], raw["label"]
    if category not in CATEGORIES:
        raise SuiteError(f"{where}: unknown category {category!r}; one of {', '.join(CATEGORIES)}")
    if label not in LABELS:
        raise SuiteError(f"{where}: label must be negative or positive, got {label!r}")
    if not raw["text"].split():
        raise SuiteError(f"{where}: empty text")
    variant, expect = raw.get("variant", ""), raw.get("expect", "")
    if category in ("invariance", "directional") and not (isinstance(variant, str) and variant.split()):
        raise SuiteError(f"{where}: an {category} case needs a variant text")
    if category == "directional" and expect not in EXPECTATIONS:
        raise SuiteError(f"{where}: expect must be one of {', '.join(EXPECTATIONS)}, got {expect!r}")
    return Case(category, raw["text"], label, variant, expect)


Reader = Callable[[Sequence[str]], list[list[float]]]  # texts -> P(positive) after each word of each


@dataclass(frozen=True)
class Outcome:
    case: Case
    passed: bool
    typing: list[float]  # P(positive) after each word of the text
    variant_typing: list[float]  # ... of the variant (empty without one)


def judge(case: Case, typing: list[float], variant_typing: list[float]) -> bool:
    """Whether a reader's P(positive) after each word passes ``case``."""

    def label_of(p: float) -> str:
        return "positive" if p >= 0.5 else "negative"

    last = typing[-1]
    if case.category in LABELED:
        return label_of(last) == case.label
    other = variant_typing[-1]
    if case.category == "invariance":
        return label_of(last) == label_of(other) == case.label
    if case.expect == "more positive":
        return other > last
    sign = 1.0 if case.label == "positive" else -1.0  # P(label) = P(positive) or 1 - P(positive)
    return sign * (other - last) >= -TOLERANCE


def run(cases: Sequence[Case], read: Reader) -> list[Outcome]:
    texts = [c.text for c in cases]
    variants = [c.variant for c in cases if c.variant]
    typed = read(texts + variants)
    by_variant = iter(typed[len(texts) :])
    outcomes = []
    for case, typing in zip(cases, typed[: len(texts)]):
        variant_typing = next(by_variant) if case.variant else []
        outcomes.append(Outcome(case, judge(case, typing, variant_typing), typing, variant_typing))
    return outcomes


def table(outcomes: Sequence[Outcome]) -> dict[str, tuple[int, int]]:
    """Per category (and "all"): (passed, cases)."""
    out = {}
    for category in CATEGORIES:
        mine = [o for o in outcomes if o.case.category == category]
        if mine:
            out[category] = (sum(o.passed for o in mine), len(mine))
    out["all"] = (sum(o.passed for o in outcomes), len(outcomes))
    return out


def vader_reader() -> Reader:
    """VADER's reading of each prefix: (compound + 1) / 2 as P(positive), compound >= 0 positive
    (evaluate.VADER_RULE)."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()

    def read(texts: Sequence[str]) -> list[list[float]]:
        out = []
        for text in texts:
            words = text.split()
            out.append(
                [(analyzer.polarity_scores(" ".join(words[: n + 1]))["compound"] + 1) / 2 for n in range(len(words))]
            )
        return out

    return read


def report(model: Sequence[Outcome], vader: Sequence[Outcome]) -> str:
    """The table per category with VADER beside, then the typing view of each of the model's failures."""
    ours, theirs = table(model), table(vader)
    lines = ["category              model      VADER", "-" * 38]
    for category, (passed, n) in ours.items():
        v_passed, v_n = theirs[category]
        lines.append(f"{category:20}  {passed:>3}/{n:<3}   {v_passed:>3}/{v_n:<3}")
    failures = [o for o in model if not o.passed]
    if failures:
        lines += ["", f"failures ({len(failures)}): P(positive) after each word"]
    for o in failures:
        what = o.case.expect or f"expected {o.case.label}"
        lines.append(f"[{o.case.category}] {what}")
        lines.append("  " + typing_line(o.case.text, o.typing))
        if o.case.variant:
            lines.append("  " + typing_line(o.case.variant, o.variant_typing))
    return "\n".join(lines)


def typing_line(text: str, typing: Sequence[float]) -> str:
    """The typing view of a text: each word with P(positive) after it, ``not(0.42) bad(0.81)``."""
    return " ".join(f"{word}({p:.2f})" for word, p in zip(text.split(), typing))


def figures(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """The JSON of a scoring: per category passed, cases and share."""
    return {
        category: {"passed": passed, "cases": n, "share": round(passed / n, 4)}
        for category, (passed, n) in table(outcomes).items()
    }
