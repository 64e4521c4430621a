"""A model file on ONNX Runtime: loading it, checking it against the contract, running steps.

The one ONNX Runtime wrapper of the project: the server serves it, evaluation scores it.
The state tensors are discovered from the graph (every ``state_in.<name>`` input with its
``state_out.<name>`` output), so RNN, GRU and LSTM models, or any new cell, run through
the same code. No torch, no grpc.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

from wordstream.modelfile.contract import (
    DOCS,
    PROBS,
    REQUIRED_METADATA,
    STATE_IN,
    TOKEN_IDS,
    ModelError,
    check_format,
    state_in,
    state_out,
)
from wordstream.modelfile.metadata import Evaluation, ModelMetadata
from wordstream.textcodec import Encoded, TextCodec

StateBatch = dict[str, np.ndarray]  # state name -> (layers, batch, hidden) float32
WORD_CACHE = 8192  # distinct words whose tokens each model remembers


@dataclass(frozen=True)
class StateSpec:
    name: str
    layers: int
    hidden: int


@dataclass
class StepModel:
    """One model file: its ONNX Runtime session, codec, labels, state layout and metadata."""

    name: str
    path: Path
    session: ort.InferenceSession = field(repr=False)
    codec: TextCodec = field(repr=False)
    labels: tuple[str, ...]
    states: tuple[StateSpec, ...]
    metadata: ModelMetadata = field(repr=False)
    fingerprint: str = ""  # SHA-256 of the file: saved sessions are restored only onto the same model

    def __post_init__(self) -> None:
        self.state_names = tuple(s.name for s in self.states)
        self._inputs = tuple(state_in(n) for n in self.state_names)
        self._outputs = [PROBS, *(state_out(n) for n in self.state_names)]
        # Typed text repeats its words (the most frequent few thousand words of English are
        # most of any text), so a word's tokens are looked up once per distinct word.
        self.encode: Callable[[str], Encoded] = functools.lru_cache(maxsize=WORD_CACHE)(self.codec.encode)

    @property
    def cell(self) -> str:
        return self.metadata.cell

    @property
    def evaluation(self) -> Evaluation:
        return self.metadata.evaluation

    def initial_state(self, batch: int = 1) -> StateBatch:
        return {s.name: np.zeros((s.layers, batch, s.hidden), np.float32) for s in self.states}

    def run(self, token_ids: np.ndarray, state: StateBatch) -> tuple[np.ndarray, StateBatch]:
        """Advance each row by one token: token_ids (batch,) -> probs (batch, labels), next state."""
        feeds = {feed: state[name] for feed, name in zip(self._inputs, self.state_names)}
        feeds[TOKEN_IDS] = token_ids
        outputs = self.session.run(self._outputs, feeds)
        return outputs[0], dict(zip(self.state_names, outputs[1:]))


def load_model(path: Path, threads: int = 1) -> StepModel:
    """Load ``path`` and check it against the step-model contract; ModelError names what is wrong."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # ORT raises its own types for missing, truncated and invalid files
        raise ModelError(f"{path}: not a loadable ONNX model ({type(e).__name__}: {str(e)[:200]})") from None
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name: o for o in session.get_outputs()}

    def fail(what: str) -> ModelError:
        return ModelError(f"{path}: {what} (see the step-model contract in {DOCS})")

    if TOKEN_IDS not in inputs or inputs[TOKEN_IDS].type != "tensor(int64)" or len(inputs[TOKEN_IDS].shape) != 1:
        raise fail(f"missing input {TOKEN_IDS} int64 [batch]")
    if PROBS not in outputs or len(outputs[PROBS].shape) != 2:
        raise fail(f"missing output {PROBS} float32 [batch, labels]")
    states = []
    for name, spec in inputs.items():
        if name == TOKEN_IDS:
            continue
        if not name.startswith(STATE_IN):
            raise fail(f"unexpected input {name!r}")
        state = name.removeprefix(STATE_IN)
        if state_out(state) not in outputs:
            raise fail(f"input {name} has no matching output {state_out(state)}")
        layers, _, hidden = (spec.shape + [None, None, None])[:3]
        if len(spec.shape) != 3 or not isinstance(layers, int) or not isinstance(hidden, int):
            raise fail(f"input {name} must be float32 [layers, batch, hidden] with fixed layers and hidden")
        states.append(StateSpec(state, layers, hidden))
    if not states:
        raise fail("no state_in.<name> inputs: not a recurrent step model")

    raw = session.get_modelmeta().custom_metadata_map
    try:
        values = {key: json.loads(value) for key, value in raw.items()}
    except json.JSONDecodeError as e:
        raise fail(f"metadata value is not JSON ({e.msg})") from None
    missing = [key for key in REQUIRED_METADATA if key not in values]
    if missing:
        raise fail(f"metadata lacks {', '.join(missing)}")
    check_format(path, values)
    try:
        metadata = ModelMetadata.from_dict(values)
        codec = TextCodec.from_metadata(metadata.tokenizer, metadata.vocabulary)
    except (ValueError, TypeError, AttributeError) as e:
        raise fail(f"bad metadata ({type(e).__name__}: {e})") from None
    labels = metadata.labels
    label_dim = outputs[PROBS].shape[1]
    if isinstance(label_dim, int) and label_dim != len(labels):
        raise fail(f"probs has {label_dim} columns but the metadata names {len(labels)} labels")
    fingerprint = hashlib.sha256(path.read_bytes()).hexdigest()
    model = StepModel(path.stem, path, session, codec, labels, tuple(states), metadata, fingerprint)
    _smoke(model)
    return model


def _smoke(model: StepModel) -> None:
    """One real call, so a graph that loads but cannot run is refused at start, not on a user's word."""
    try:
        probs, state = model.run(np.array([1], np.int64), model.initial_state(1))
    except Exception as e:
        raise ModelError(f"{model.path}: a test step failed ({type(e).__name__}: {str(e)[:200]})") from None
    if probs.shape != (1, len(model.labels)):
        raise ModelError(f"{model.path}: probs has shape {probs.shape}, expected (1, {len(model.labels)})")
    for spec in model.states:
        if state[spec.name].shape != (spec.layers, 1, spec.hidden):
            raise ModelError(f"{model.path}: {state_out(spec.name)} has shape {state[spec.name].shape}")
