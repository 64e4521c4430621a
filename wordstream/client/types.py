"""Plain Python values for what the server sends (built from the generated protobuf types)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from wordstream.v1 import wordstream_pb2 as pb

State = dict[str, tuple[tuple[float, ...], ...]]  # name -> (layers, hidden) values


@dataclass(frozen=True)
class Token:
    text: str
    id: int
    unknown: bool


@dataclass(frozen=True)
class Output:
    probabilities: dict[str, float]  # label -> probability, in the model's label order
    label: str


@dataclass(frozen=True)
class Step:
    """One step of the history: a token, the output and the state after it."""

    index: int
    word_index: int
    word: str
    token: Token
    output: Output
    state: State

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class WordResult:
    """The answer to one word: its tokens, the output and state after it, and its steps."""

    session_id: str
    word_index: int
    word: str
    tokens: list[Token]
    output: Output | None
    state: State
    steps: list[Step]  # the steps this word added (empty in history mode "none")
    history_length: int


@dataclass(frozen=True)
class ModelInfo:
    name: str
    labels: list[str]
    cell: str
    layers: int
    hidden: int
    vocabulary_size: int
    state_names: list[str]
    evaluation: dict[str, Any] = field(default_factory=dict)


def state_lists(value: State) -> dict[str, list[list[float]]]:
    """A state as JSON-able lists: name -> one list of values per layer."""
    return {name: [list(layer) for layer in layers] for name, layers in value.items()}


def state(tensors: Any) -> State:
    return {t.name: tuple(tuple(t.values[i * t.hidden : (i + 1) * t.hidden]) for i in range(t.layers)) for t in tensors}


def output(message: pb.Output, labels: list[str]) -> Output:
    return Output(dict(zip(labels, message.probabilities)), message.label)


def token(message: pb.Token) -> Token:
    return Token(message.text, message.id, message.unknown)


def step(message: pb.Step, labels: list[str]) -> Step:
    return Step(
        message.index,
        message.word_index,
        message.word,
        token(message.token),
        output(message.output, labels),
        state(message.state),
    )


def model_info(message: pb.ModelInfo) -> ModelInfo:
    evaluation = message.evaluation
    return ModelInfo(
        message.name,
        list(message.labels),
        message.cell,
        message.layers,
        message.hidden,
        message.vocabulary_size,
        list(message.state_names),
        {
            "accuracy": evaluation.accuracy,
            "macro_f1": evaluation.macro_f1,
            "n": evaluation.n,
            "typing": dict(sorted(evaluation.typing.items(), key=lambda kv: float(kv[0].rstrip("%")))),
            "split": evaluation.split,
        },
    )
