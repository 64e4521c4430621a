"""The recurrent text classifier, with its state as an explicit value."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from wordstream.textcodec import UNK_ID
from wordstream.training.config import TrainConfig

TorchState = tuple[torch.Tensor, ...]  # each (layers, batch, hidden); (h,) or (h, c) for an LSTM

_CELLS: dict[str, Callable[..., nn.Module]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def state_names(cell: str) -> tuple[str, ...]:
    """Names of the state tensors, in the order the model takes them (the ONNX inputs are state_in.<name>)."""
    return ("h", "c") if cell == "lstm" else ("h",)


class TextClassifier(nn.Module):
    """Embedding -> recurrent layers -> linear; ``forward`` gives logits after every token.

    A token's input vector is its learned embedding joined with ``lexicon_dim`` fixed
    lexicon features (the ``lexicon`` buffer, one row per vocabulary id) and, with
    ``pretrained_dim``, a learned projection of its frozen pretrained vector (int8 rows
    ``pretrained`` times their ``pretrained_scale``). Ids from ``learned_size`` on are words
    known only to the lexicons or the pretrained table: they share the learned vector of
    ``<unk>`` and differ by their fixed features alone.
    """

    lexicon: torch.Tensor  # a buffer: (vocab, lexicon_dim)
    pretrained: torch.Tensor  # a buffer: (vocab, pretrained_dim) int8
    pretrained_scale: torch.Tensor  # a buffer: (vocab, 1) float32

    def __init__(
        self,
        config: TrainConfig,
        vocab_size: int,
        num_labels: int,
        learned_size: int | None = None,
        lexicon_dim: int = 0,
        pretrained_dim: int = 0,
    ) -> None:
        super().__init__()
        self.config = config
        self.learned_size = learned_size or vocab_size
        self.embed = nn.Embedding(self.learned_size, config.embed_dim, padding_idx=0)
        self.register_buffer("lexicon", torch.zeros(vocab_size, lexicon_dim))  # (vocab, lexicon_dim), fixed
        self.register_buffer("pretrained", torch.zeros(vocab_size, pretrained_dim, dtype=torch.int8))
        self.register_buffer("pretrained_scale", torch.ones(vocab_size, 1))
        self.project = nn.Linear(pretrained_dim, config.embed_dim) if pretrained_dim else None
        self.embed_drop = nn.Dropout(config.embed_dropout)
        self.rnn = _CELLS[config.cell](
            config.embed_dim * (2 if pretrained_dim else 1) + lexicon_dim,
            config.hidden,
            num_layers=config.layers,
            batch_first=True,
            dropout=config.dropout if config.layers > 1 else 0.0,
        )
        self.out_drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden, num_labels)

    def init_state(self, batch: int) -> TorchState:
        zeros = torch.zeros(self.config.layers, batch, self.config.hidden)
        return tuple(zeros.clone() for _ in state_names(self.config.cell))

    def forward(self, tokens: torch.Tensor, state: TorchState) -> tuple[torch.Tensor, TorchState]:
        """tokens (batch, time) -> logits (batch, time, labels) and the state after the last token."""
        learned = torch.where(tokens < self.learned_size, tokens, torch.full_like(tokens, UNK_ID))
        parts = [self.embed_drop(self.embed(learned)), self.lexicon[tokens]]
        if self.project is not None:
            vectors = self.pretrained[tokens].float() * self.pretrained_scale[tokens]  # int8 rows, dequantized
            parts.insert(1, self.embed_drop(self.project(vectors)))
        x = torch.cat(parts, -1)  # (batch, time, input)
        rnn_state = state if self.config.cell == "lstm" else state[0]
        y, new_state = self.rnn(x, rnn_state)  # y: (batch, time, hidden)
        logits = self.head(self.out_drop(y))
        return logits, (tuple(new_state) if isinstance(new_state, tuple) else (new_state,))


class StepGraph(nn.Module):
    """One token per row: the step model of docs/MODEL-FORMAT.md, the graph that is exported to ONNX."""

    def __init__(self, model: TextClassifier) -> None:
        super().__init__()
        self.model = model

    def forward(self, token_ids: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits, new_state = self.model(token_ids.unsqueeze(1), state)  # (batch, 1, labels)
        return (torch.softmax(logits[:, 0, :], dim=-1), *new_state)
