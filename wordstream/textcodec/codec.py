"""The text codec: tokenizer plus vocabulary, serialisable into a model's metadata."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wordstream.textcodec.tokenizer import Tokenizer, unelongated
from wordstream.textcodec.vocab import UNK_ID, Vocabulary


@dataclass(frozen=True)
class Encoded:
    """One piece of text as tokens. ``unknown[i]`` is true where ``tokens[i]`` is out of vocabulary."""

    tokens: tuple[str, ...]
    ids: tuple[int, ...]

    @property
    def unknown(self) -> tuple[bool, ...]:
        return tuple(i == UNK_ID for i in self.ids)


@dataclass(frozen=True)
class TextCodec:
    tokenizer: Tokenizer
    vocab: Vocabulary

    def encode(self, text: str) -> Encoded:
        """A typed word (or any text) as 0..n tokens and their ids."""
        tokens = self.tokenizer.tokenize(text)
        return Encoded(tuple(tokens), tuple(self._ids(tokens)))

    def encode_ids(self, text: str) -> list[int]:
        return self._ids(self.tokenizer.tokenize(text))

    def _ids(self, tokens: list[str]) -> list[int]:
        ids = self.vocab.ids(tokens)
        if self.tokenizer.chat:  # an elongated word the vocabulary lacks: "soo" reads as "so"
            ids = [self._unelongated(t) if i == UNK_ID else i for t, i in zip(tokens, ids)]
        return ids

    def _unelongated(self, token: str) -> int:
        """The id of the first known form of ``token`` with a doubled letter dropped (UNK_ID if none)."""
        return next((i for i in map(self.vocab.id, unelongated(token)) if i != UNK_ID), UNK_ID)

    def to_metadata(self) -> dict[str, Any]:
        return {"tokenizer": self.tokenizer.settings(), "vocabulary": list(self.vocab.tokens)}

    @classmethod
    def from_metadata(cls, tokenizer: dict[str, Any], vocabulary: list[str]) -> TextCodec:
        return cls(Tokenizer.from_settings(tokenizer), Vocabulary(tuple(vocabulary)))
