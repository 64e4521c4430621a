"""Text to tokens: the one tokenizer used by training, evaluation and the server.

Rules, applied in order to any piece of text (a whole review or one typed word):

1. Unicode NFKC normalisation (full-width letters, ligatures and compatibility
   forms fold to their plain equivalents), then lower-casing (if enabled).
2. Curly apostrophes and quotes become straight ones.
3. Tokens, left to right:
   - numbers, with inner separators kept: ``3.5``, ``1,000``, ``'70s`` -> ``'70s``;
   - words (letters, digits, marks, underscores), with inner hyphens kept:
     ``cringe-inducing`` is one token;
   - contractions are split the Penn Treebank way, and only that way:
     ``don't`` -> ``do`` ``n't``; ``it's`` -> ``it`` ``'s``; ``we'll`` -> ``we`` ``'ll``;
     any other inner apostrophe keeps the word whole (``o'brien``);
   - emoji and other symbols: one token per character (``🙂``, ``$``);
   - punctuation: a run of the same character is one token (``...``, ``!!``),
     otherwise each character is its own token (``?!`` -> ``?`` ``!``).
4. Whitespace and control characters separate tokens and are never tokens.

The tokenizer is configured by a small JSON-able dict (:meth:`Tokenizer.settings`),
stored in every model file so that serving tokenizes exactly as training did.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass
from typing import Any

TOKENIZER_VERSION = 1

# Contraction suffixes split off a word, Penn Treebank style ("n't" before "'t").
_CONTRACTION = re.compile(r"^(.+?)(n't|'s|'re|'ve|'ll|'d|'m)$")

_TOKEN = re.compile(
    r"""
    (?<!\w)'?\d+(?:[.,:/]\d+)*(?:'?s)?(?![^\W\d_])  # numbers: 3.5  1,000  10:30  '70s  1990s
    | [^\W_](?:[\w]|['\-](?=\w))*             # words, with inner apostrophes and hyphens
    | ([^\w\s]|_)\1*                          # a run of one symbol or punctuation char
    """,
    re.VERBOSE,
)

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u201c": '"', "\u201d": '"'})


@dataclass(frozen=True)
class Tokenizer:
    """Splits text into tokens. Pure Python, no dependencies, deterministic."""

    lowercase: bool = True
    split_contractions: bool = True
    version: int = TOKENIZER_VERSION

    def normalize(self, text: str) -> str:
        text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES)
        # Control characters separate tokens; format characters (zero-width joiners, soft
        # hyphens) and emoji variation selectors are invisible and are dropped.
        text = "".join(_clean(ch) for ch in text)
        return text.lower() if self.lowercase else text

    def tokenize(self, text: str) -> list[str]:
        """All tokens of ``text`` in order; ``[]`` for text with no tokens."""
        tokens: list[str] = []
        for match in _TOKEN.finditer(self.normalize(text)):
            token = match.group(0)
            if self.split_contractions and "'" in token[1:]:
                tokens.extend(_split_contraction(token))
            elif _is_symbol_run(token) and not _is_punct(token[0]):
                tokens.extend(token)  # emoji and symbols: one token per character
            else:
                tokens.append(token)
        return tokens

    def settings(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> Tokenizer:
        version = settings.get("version", TOKENIZER_VERSION)
        if version != TOKENIZER_VERSION:
            raise ValueError(f"tokenizer version {version} is not supported (this code is version {TOKENIZER_VERSION})")
        unknown = set(settings) - {"lowercase", "split_contractions", "version"}
        if unknown:
            raise ValueError(f"unknown tokenizer settings: {sorted(unknown)}")
        return cls(**settings)


def _clean(ch: str) -> str:
    category = unicodedata.category(ch)
    if category == "Cc":
        return " "
    if category == "Cf" or "\ufe00" <= ch <= "\ufe0f":
        return ""
    return ch


def _split_contraction(token: str) -> list[str]:
    match = _CONTRACTION.match(token)
    if match is None:
        return [token]
    return [match.group(1), match.group(2)]


def _is_symbol_run(token: str) -> bool:
    return not (token[0].isalnum() or token[0] in "'_")


def _is_punct(ch: str) -> bool:
    return unicodedata.category(ch).startswith("P")
