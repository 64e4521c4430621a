"""A model file's metadata, typed: what training writes and what evaluation, the server and the
benchmarks read (docs/MODEL-FORMAT.md lists every key). Files written before a key existed read
unchanged: a missing key takes the default named here. No torch, no grpc.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Evaluation:
    """The figures a file carries, and the part of its data they came from."""

    accuracy: float = 0.0
    macro_f1: float = 0.0
    n: int = 0  # texts scored
    typing: dict[str, float] = field(default_factory=dict)  # accuracy after "25%" ... "100%" of the words
    split: str = ""  # "valid" or "test"; "" in files written before the part was recorded
    report: dict[str, Any] = field(default_factory=dict)  # per-class precision/recall/F1, confusion

    @classmethod
    def from_dict(cls, value: Mapping[str, Any] | None) -> Evaluation:
        value = value or {}
        return cls(
            accuracy=float(value.get("accuracy", 0.0)),
            macro_f1=float(value.get("macro_f1", 0.0)),
            n=int(value.get("n", 0)),
            typing={str(k): float(v) for k, v in (value.get("typing") or {}).items()},
            split=str(value.get("split", "")),
            report=dict(value.get("report") or {}),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"accuracy": self.accuracy, "macro_f1": self.macro_f1, "n": self.n}
        out["typing"] = dict(self.typing)
        if self.report:
            out["report"] = self.report
        if self.split:
            out["split"] = self.split
        return out


@dataclass(frozen=True)
class DataSource:
    """Where the training texts came from: the default corpus or a user's file and its columns."""

    source: str = "rotten_tomatoes"
    text_column: str = "text"
    label_column: str = "label"
    skip_bad: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # anything else recorded (e.g. a dry run's sample)

    @property
    def is_default_corpus(self) -> bool:
        return self.source == "rotten_tomatoes"

    @classmethod
    def from_dict(cls, value: Mapping[str, Any] | None) -> DataSource:
        value = dict(value or {})
        return cls(
            source=str(value.pop("source", "rotten_tomatoes")),
            text_column=str(value.pop("text_column", "text")),
            label_column=str(value.pop("label_column", "label")),
            skip_bad=bool(value.pop("skip_bad", False)),
            extra=value,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source, **self.extra}
        if not self.is_default_corpus:
            out.update(text_column=self.text_column, label_column=self.label_column, skip_bad=self.skip_bad)
        return out


@dataclass(frozen=True)
class ModelMetadata:
    """Every metadata key of a step-model file (``format`` is added by the writer)."""

    labels: tuple[str, ...]
    tokenizer: dict[str, Any]  # the tokenizer's settings (textcodec)
    vocabulary: list[str]
    model: dict[str, Any]  # the architecture: cell, layers, hidden, sizes, features
    training: dict[str, Any] = field(default_factory=dict)  # the configuration and the run's own figures
    data: DataSource = field(default_factory=DataSource)
    data_hash: str = ""  # over the de-duplicated texts and their split
    split_tokenizer: dict[str, Any] = field(default_factory=dict)  # the rules the split was made with
    pad_token: str = ""
    evaluation: Evaluation = field(default_factory=Evaluation)

    @property
    def cell(self) -> str:
        return str(self.model.get("cell", "unknown"))

    @property
    def learned_vocab_size(self) -> int | None:
        size = self.model.get("learned_vocab_size")
        return int(size) if size is not None else None

    @property
    def lexicon_features(self) -> list[str]:
        return list(self.model.get("lexicon_features") or [])

    @property
    def split_by(self) -> str:
        """How the data was divided: "random" or "film"."""
        return str(self.training.get("split", "random"))

    @property
    def split_seed(self) -> int:
        """The seed of the split (files made before split_seed split with the training seed)."""
        return int(self.training.get("split_seed", self.training.get("seed", 13)))

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> ModelMetadata:
        return cls(
            labels=tuple(value["labels"]),
            tokenizer=dict(value["tokenizer"]),
            vocabulary=list(value["vocabulary"]),
            model=dict(value["model"]),
            training=dict(value.get("training") or {}),
            data=DataSource.from_dict(value.get("data")),
            data_hash=str(value.get("data_hash", "")),
            split_tokenizer=dict(value.get("split_tokenizer") or value["tokenizer"]),
            pad_token=str(value.get("pad_token", "")),
            evaluation=Evaluation.from_dict(value.get("evaluation")),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able mapping the writer stores, a key per entry of docs/MODEL-FORMAT.md."""
        out: dict[str, Any] = {
            "labels": list(self.labels),
            "tokenizer": self.tokenizer,
            "vocabulary": self.vocabulary,
            "model": self.model,
            "training": self.training,
            "data": self.data.to_dict(),
            "data_hash": self.data_hash,
            "split_tokenizer": self.split_tokenizer,
            "pad_token": self.pad_token,
        }
        if self.evaluation.n:
            out["evaluation"] = self.evaluation.to_dict()
        return out
