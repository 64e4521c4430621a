"""Vocabulary: tokens to integer ids and back.

Ids 0 and 1 are reserved: ``PAD_ID`` pads batches of unequal length in training and
never appears in serving; ``UNK_ID`` stands for any token the vocabulary does not hold.
Real tokens follow, most frequent first (ties broken alphabetically, so a vocabulary
built twice from the same texts is identical).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

PAD = "<pad>"
UNK = "<unk>"
PAD_ID = 0
UNK_ID = 1


@dataclass(frozen=True)
class Vocabulary:
    tokens: tuple[str, ...]
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.tokens[:2] != (PAD, UNK):
            raise ValueError(f"a vocabulary must start with {PAD!r} and {UNK!r}, got {list(self.tokens[:2])}")
        if len(set(self.tokens)) != len(self.tokens):
            raise ValueError("a vocabulary must not repeat a token")
        object.__setattr__(self, "_index", {token: i for i, token in enumerate(self.tokens)})

    @classmethod
    def build(cls, tokenized_texts: Iterable[list[str]], min_freq: int = 2, max_size: int = 20000) -> Vocabulary:
        """The ``max_size`` most frequent tokens seen at least ``min_freq`` times (reserved ids included)."""
        if min_freq < 1:
            raise ValueError(f"min_freq must be at least 1, got {min_freq}")
        if max_size < 3:
            raise ValueError(f"max_size must be at least 3 (two reserved ids and one token), got {max_size}")
        counts = Counter(token for tokens in tokenized_texts for token in tokens)
        kept = sorted((t for t, n in counts.items() if n >= min_freq), key=lambda t: (-counts[t], t))
        return cls((PAD, UNK, *kept[: max_size - 2]))

    def __len__(self) -> int:
        return len(self.tokens)

    def id(self, token: str) -> int:
        return self._index.get(token, UNK_ID)

    def ids(self, tokens: Iterable[str]) -> list[int]:
        return [self._index.get(t, UNK_ID) for t in tokens]
