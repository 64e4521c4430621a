"""Realistic text for every load: the words of the default corpus's test split, in order.

Typed text repeats its common words and keeps bringing new ones; a load that cycles through
a few dozen words keeps every cache hot and flatters the service. The test split's 1,276
review snippets hold thousands of distinct words, so the figures include tokenizing new
words and the token cache's misses (the service exports its hit rate; the report shows it).
"""

from __future__ import annotations

import functools
from pathlib import Path

from wordstream.textcodec import Tokenizer
from wordstream.training.data import load_rotten_tomatoes, split_examples

SPLIT_SEED = 13  # the default models' split (wordstream/training/config.py)


@functools.cache
def texts() -> tuple[str, ...]:
    """The test split's texts, in the split's order."""
    split = split_examples(load_rotten_tomatoes(), Tokenizer(), seed=SPLIT_SEED, labels=("negative", "positive"))
    return tuple(e.text for e in split.test)


@functools.cache
def words() -> tuple[str, ...]:
    """Every word of every text, one after another."""
    return tuple(word for text in texts() for word in text.split())


def write(path: Path) -> Path:
    """The texts, one per line, for the load generators (separate processes) to read."""
    path.write_text("\n".join(texts()) + "\n")
    return path


def read_words(path: str | Path) -> list[str]:
    return Path(path).read_text().split()
