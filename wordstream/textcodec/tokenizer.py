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

With ``chat=True`` (tokenizer version 2; models trained on chat-like text use it), before
lower-casing: URLs become ``<url>``, @mentions ``<user>``, and a hashtag is read as its
words (``#SoGood`` -> ``so`` ``good``, ``#great`` -> ``great``); then, besides the rules
above: emoticons are one token each (``:)`` ``:-(`` ``<3`` ``:d`` ``;p`` ``^_^``),
a letter repeated three times or more is cut to two (``sooo`` -> ``soo``, ``goooood`` ->
``good``) and a run of the same punctuation to three (``!!!!!`` -> ``!!!``).

The tokenizer is configured by a small JSON-able dict (:meth:`Tokenizer.settings`),
stored in every model file so that serving tokenizes exactly as training did.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

TOKENIZER_VERSION = 2
SUPPORTED_VERSIONS = (1, 2)  # version 1: the rules without chat (every model file from before)

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

# Chat rules (chat=True). Emoticons: eyes, an optional nose, a mouth (and the mirrored
# forms), hearts and a few kaomoji; bounded repetition only, so no input backtracks badly.
_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"]{1,2000}", re.IGNORECASE)
_MENTION = re.compile(r"(?<![\w@])@\w{1,64}")
_HASHTAG = re.compile(r"(?<![\w#])#([^\W_][\w]{0,99})")
_CAMEL = re.compile(r"[A-Z]{2,}(?=[A-Z][a-z]|\b|\d)|[A-Z]?[a-z]+|[A-Z]+|\d+")
_EMOTICON = r"""
    (?<![\w:;=])
    (?: [<>]?[:;=8][\-o'^]?[)\](\[dpo/\\|*@$3}{]{1,3}(?![\w])
      | [)\](\[/\\|][\-o'^]?[:;=8](?![\w])
      | <3{1,3} | </3
      | \^[_.\-]?\^ | -_- | o_o | t_t | ;_; | x[dp](?![\w]) )
"""
_PLACEHOLDER = r"<url>|<user>"
_CHAT_TOKEN = re.compile(rf"{_PLACEHOLDER}|{_EMOTICON}|{_TOKEN.pattern}", re.VERBOSE)
_LETTER_RUN = re.compile(r"([^\W\d_])\1{2,}")
_PUNCT_RUN = re.compile(r"([^\w\s])\1{3,}")

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u201c": '"', "\u201d": '"'})


@dataclass(frozen=True)
class Tokenizer:
    """Splits text into tokens. Pure Python, no dependencies, deterministic."""

    lowercase: bool = True
    split_contractions: bool = True
    chat: bool = False
    version: int = TOKENIZER_VERSION

    def normalize(self, text: str) -> str:
        text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES)
        # Control characters separate tokens; format characters (zero-width joiners, soft
        # hyphens) and emoji variation selectors are invisible and are dropped.
        text = "".join(_clean(ch) for ch in text)
        if self.chat:
            text = _URL.sub(" <url> ", text)
            text = _MENTION.sub(" <user> ", text)
            text = _HASHTAG.sub(lambda m: " " + " ".join(_CAMEL.findall(m.group(1)) or [m.group(1)]) + " ", text)
        text = text.lower() if self.lowercase else text
        if self.chat:
            text = _PUNCT_RUN.sub(r"\1\1\1", _LETTER_RUN.sub(r"\1\1", text))
        return text

    def tokenize(self, text: str) -> list[str]:
        """All tokens of ``text`` in order; ``[]`` for text with no tokens."""
        tokens: list[str] = []
        pattern = _CHAT_TOKEN if self.chat else _TOKEN
        for match in pattern.finditer(self.normalize(text)):
            token = match.group(0)
            if self.chat and (token in ("<url>", "<user>") or _is_emoticon(token)):
                tokens.append(token)
            elif self.split_contractions and "'" in token[1:]:
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
        if version not in SUPPORTED_VERSIONS:
            raise ValueError(
                f"tokenizer version {version} is not supported (this code reads versions "
                f"{', '.join(map(str, SUPPORTED_VERSIONS))})"
            )
        known = {"lowercase", "split_contractions", "version"} | ({"chat"} if version >= 2 else set())
        unknown = set(settings) - known
        if unknown:
            raise ValueError(f"unknown tokenizer settings for version {version}: {sorted(unknown)}")
        # A version-1 file tokenizes by the version-1 rules; it is read as the same settings.
        return cls(**{**settings, "version": TOKENIZER_VERSION})


def unelongated(token: str) -> Iterator[str]:
    """``token`` with one letter of a doubled pair dropped, for each such pair in order ("soo" ->
    "so"): where the chat rules look an elongated word up when it is not known as it stands."""
    for i in range(1, len(token)):
        if token[i] == token[i - 1] and token[i].isalpha():
            yield token[:i] + token[i + 1 :]


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


_EMOTICON_ONLY = re.compile(rf"(?:{_EMOTICON})\Z", re.VERBOSE)


def _is_emoticon(token: str) -> bool:
    return _EMOTICON_ONLY.match(token) is not None


def _is_symbol_run(token: str) -> bool:
    return not (token[0].isalnum() or token[0] in "'_")


def _is_punct(ch: str) -> bool:
    return unicodedata.category(ch).startswith("P")
