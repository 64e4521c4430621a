"""Every answer the service gives, in one place; the answer to a word straight as wire bytes.

The answer to a word is the hot path of every stream, so it is encoded by hand.

Building that answer from protobuf objects takes about a dozen message objects and a
Python list per float tensor, for every word; with the bare transport costing about 80 us
of server CPU per message, that building was the largest share of the service's own cost
(docs/BENCHMARKS.md has the profile). Here what never changes for a model (tensor names and
shapes, label strings, field headers) is encoded once, and the floats go out as the arrays'
own bytes: a packed ``repeated float`` is little-endian float32, numpy's layout here.

Only ``StreamResponse{seq, session_id, word: WordResult}`` is encoded by hand; every other
answer (below :class:`WordAnswers`) is built with the protobuf classes. tests/test_answers.py
parses the hand-made bytes with the protobuf library and checks them against the messages
that library builds, through the builders below, from the same history. Field numbers are
the ones in proto/wordstream/v1/wordstream.proto.
"""

from __future__ import annotations

import struct

import numpy as np

from wordstream.modelfile import StepModel
from wordstream.server.history import History, HistoryMode, WordUpdate, row_layout
from wordstream.server.sessions import Session, SessionView
from wordstream.shared import words_sha256
from wordstream.textcodec import UNK_ID
from wordstream.v1 import wordstream_pb2 as pb

_LENGTH_DELIMITED = 2
_BYTE = [bytes((value,)) for value in range(256)]
_FIELDS = range(1, 16)  # one-byte tags: every field number in our messages is below 16
_LD_TAG = {field: _BYTE[field << 3 | _LENGTH_DELIMITED] for field in _FIELDS}
_VARINT_TAG = {field: _BYTE[field << 3] for field in _FIELDS}


def _encoded(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# Every varint of one or two bytes (every message length of a word's answer, most positions),
# and the varint fields 1 and 2 with such values (a step's position and word index): made once.
_SMALL = [_encoded(value) for value in range(1 << 14)]
_SMALL_FIELD = {field: [b""] + [_VARINT_TAG[field] + v for v in _SMALL[1:]] for field in (1, 2)}


def varint(value: int) -> bytes:
    """A non-negative integer as a protobuf base-128 varint."""
    return _SMALL[value] if value < 0x4000 else _encoded(value)


def message(field: int, body: bytes) -> bytes:
    """A length-delimited field: a string, bytes, packed numbers or a nested message."""
    return _LD_TAG[field] + varint(len(body)) + body


def string(field: int, text: str) -> bytes:
    """A string field, left out when empty (proto3 does not send default values)."""
    return message(field, text.encode()) if text else b""


def uint(field: int, value: int) -> bytes:
    """A varint field (uint32, uint64, int64 >= 0, bool), left out when zero."""
    if value < 0x4000 and field in _SMALL_FIELD:
        return _SMALL_FIELD[field][value]
    return _VARINT_TAG[field] + varint(value) if value else b""


class WordAnswers:
    """Encodes the answers to words for the sessions of one model."""

    def __init__(self, model: StepModel) -> None:
        self.model = model
        labels = len(model.labels)
        self._probs_header = _LD_TAG[1] + varint(4 * labels)  # Output.probabilities, packed
        self._probs = struct.Struct(f"<{labels}f")
        _, bounds = row_layout(model)  # a step's row: probabilities, then each state's values
        self._value_bytes = [(4 * a, 4 * b) for a, b in bounds[1:]]
        self._labels = [string(2, label) for label in model.labels]  # Output.label
        # One Tensor message per state, everything but the values: its header as a field of
        # WordResult (field 5) and of Step (field 6), the values' bytes follow.
        self._tensor_headers: dict[int, list[bytes]] = {5: [], 6: []}
        for spec in model.states:
            values = 4 * spec.layers * spec.hidden
            body_head = string(1, spec.name) + uint(2, spec.layers) + uint(3, spec.hidden) + _LD_TAG[4] + varint(values)
            for field in (5, 6):
                self._tensor_headers[field].append(_LD_TAG[field] + varint(len(body_head) + values) + body_head)
        # The state tensors as fields of WordResult (5) or of Step (6): the same bytes in both.
        self._states_bytes = sum(
            len(header) + b - a for header, (a, b) in zip(self._tensor_headers[5], self._value_bytes)
        )
        # An Output message's length and head, for each label it can name: its probabilities and label follow.
        self._output_heads = [
            varint(len(self._probs_header) + 4 * labels + len(label)) + self._probs_header for label in self._labels
        ]
        # A known token id -> its last text and Token message, length first: a cache as large as the
        # vocabulary at most (an id's text is almost always the same; "soo" reads as "so" too).
        self._tokens: dict[int, tuple[str, bytes]] = {}

    def word(self, seq: int, session_field: bytes, session: SessionView, update: WordUpdate) -> bytes:
        """``StreamResponse`` for the word ``update.word_index``, whose tokens are the steps ``update.new_steps``.

        ``session_field`` is ``session_id(session.id)``, encoded once per stream.
        """
        word_index, steps = update
        if session.mode is HistoryMode.DELTA:
            return self._delta_word(seq, session_field, session, word_index, steps)
        h = session.history
        end = steps.stop  # the history as it stood after this word (a paste answers each word)
        shown = range(end) if session.mode is HistoryMode.FULL else range(end, end)  # FULL or NONE
        last = end - 1  # the word's last step: its output and state are the word's
        parts = {i: self._parts(h, i) for i in (shown or steps)}  # each step's pieces, encoded once
        _, output, values, _ = parts[last]
        body = [uint(1, word_index), string(2, session.words[word_index])]
        body.extend(message(3, parts[i][0]) for i in steps)
        body += [_LD_TAG[4], output]
        body.extend(header + value for header, value in zip(self._tensor_headers[5], values))
        history = [uint(1, end), uint(2, shown.start)]
        history.extend(message(3, self._step(session, i, *parts[i])) for i in shown)
        body.append(message(6, b"".join(history)))
        return uint(1, seq) + session_field + message(4, b"".join(body))

    def _delta_word(self, seq: int, session_field: bytes, session: SessionView, word_index: int, steps: range) -> bytes:
        """:meth:`word` for the usual answer, a word in DELTA mode (tests/test_answers.py checks it
        against the protobuf library's message, as the other modes), as one flat list of pieces
        joined once. Every nested message's length is known before its bytes are (the state
        tensors' from the model), so the floats are copied once, not once per level of nesting."""
        h, states = session.history, self._states_bytes
        word = session.words[word_index].encode()
        word = varint(len(word)) + word  # as WordResult.word and Step.word: the length, the bytes
        index = uint(2, word_index)
        shared = 3 + len(word) + len(index) + states  # in every Step: the word, its index, the states
        tokens: list[bytes] = []
        history = [uint(1, steps.stop), uint(2, steps.start)]
        size = tokens_size = 0
        for i in steps:
            text, token_id, row = h.wire(i)
            known = self._tokens.get(token_id)
            if known is not None and known[0] == text:
                token = known[1]
            else:
                token = string(1, text) + uint(2, token_id) + uint(3, token_id == UNK_ID)
                token = varint(len(token)) + token  # as WordResult.tokens and Step.token
                if token_id != UNK_ID:
                    self._tokens[token_id] = (text, token)
            output, values = self._floats(row)  # as WordResult.output and Step.output
            position = uint(1, i)
            step = varint(len(position) + len(token) + len(output) + shared)
            history += [_LD_TAG[3], step, position, index, _LD_TAG[3], word, _LD_TAG[4], token, _LD_TAG[5], output]
            history += [piece for header, value in zip(self._tensor_headers[6], values) for piece in (header, value)]
            size += 1 + len(step) + len(position) + len(token) + len(output) + shared
            tokens += [_LD_TAG[3], token]
            tokens_size += 1 + len(token)
        size += len(history[0]) + len(history[1])
        history_size = varint(size)
        word_at = uint(1, word_index)
        size += len(word_at) + 1 + len(word) + tokens_size + 1 + len(output) + states + 1 + len(history_size)
        return b"".join(
            [uint(1, seq), session_field, _LD_TAG[4], varint(size), word_at, _LD_TAG[2], word, *tokens]
            + [
                _LD_TAG[4],
                output,
                *[piece for header, value in zip(self._tensor_headers[5], values) for piece in (header, value)],
            ]
            + [_LD_TAG[6], history_size, *history]
        )

    def _parts(self, h: History, i: int) -> tuple[bytes, bytes, list[bytes], int]:
        """Step ``i``'s Token message, its Output message (length first), its state tensors' values and its
        word's index."""
        text, token_id, row = h.wire(i)
        token = string(1, text) + uint(2, token_id) + uint(3, token_id == UNK_ID)
        output, values = self._floats(row)
        return token, output, values, h.step(i).word_index

    def _floats(self, row: bytes) -> tuple[bytes, list[bytes]]:
        """A step row's Output message (probabilities and label), its length first, as any field
        holds it after the field's tag; and its state tensors' values."""
        probs = self._probs.unpack_from(row)
        label = probs.index(max(probs))
        output = self._output_heads[label] + row[: self._probs.size] + self._labels[label]
        return output, [row[a:b] for a, b in self._value_bytes]

    def _step(
        self, session: SessionView, i: int, token: bytes, output: bytes, values: list[bytes], word_index: int
    ) -> bytes:
        parts = [
            uint(1, i),
            uint(2, word_index),
            string(3, session.words[word_index]),
            message(4, token),
            _LD_TAG[5] + output,
            *(header + value for header, value in zip(self._tensor_headers[6], values)),
        ]
        return b"".join(parts)


def session_id(value: str) -> bytes:
    """``StreamResponse.session_id``, to encode once per stream."""
    return string(2, value)


# --- every other answer, built with the protobuf classes ---------------------------------------

MODES = {
    HistoryMode.DELTA: pb.HISTORY_MODE_DELTA,
    HistoryMode.FULL: pb.HISTORY_MODE_FULL,
    HistoryMode.NONE: pb.HISTORY_MODE_NONE,
}


def opened(seq: int, session: Session, resumed: bool, idle_timeout: float) -> bytes:
    message = pb.Opened(
        model=model_info(session.model),
        history=MODES[session.mode],
        resumed=resumed,
        position=position(session),
        idle_timeout_seconds=idle_timeout,
        words_sha256=words_sha256(session.words),
    )
    return _serialized(pb.StreamResponse(seq=seq, session_id=session.id, opened=message))


def rewound(seq: int, session: Session) -> bytes:
    return _serialized(pb.StreamResponse(seq=seq, session_id=session.id, rewound=position(session)))


def closed(seq: int, session: SessionView, kind: str = "closed") -> bytes:
    """The session's counts as it ends (``closed``) or, for a Multiplex detach, as it stays to be
    resumed (``detached``)."""
    message = pb.Closed(words=len(session.words), steps=session.steps)
    return _serialized(pb.StreamResponse(seq=seq, session_id=session.id, **{kind: message}))


def error(seq: int, session_id: str, code: str, text: str) -> bytes:
    """An in-stream error: the request was refused and nothing changed."""
    message = pb.StreamError(code=code, message=text)
    return _serialized(pb.StreamResponse(seq=seq, session_id=session_id, error=message))


def _serialized(message: pb.StreamResponse) -> bytes:
    data: bytes = message.SerializeToString()
    return data


def session_record(session: SessionView, steps: range, idle_seconds: float) -> pb.Session:
    """GetSession's answer: the session's counts and the history's ``steps``."""
    return pb.Session(
        session_id=session.id,
        model=model_info(session.model),
        history_mode=MODES[session.mode],
        words=len(session.words),
        steps=session.steps,
        start=steps.start,
        history=[step(session, i) for i in steps],
        attached=session.attached,
        idle_seconds=idle_seconds,
    )


def models(served: dict[str, StepModel], default: str) -> pb.ListModelsResponse:
    return pb.ListModelsResponse(models=[model_info(m) for _, m in sorted(served.items())], default_model=default)


def closed_session(session: SessionView) -> pb.CloseSessionResponse:
    return pb.CloseSessionResponse(words=len(session.words), steps=session.steps)


def model_info(model: StepModel) -> pb.ModelInfo:
    evaluation = model.evaluation
    return pb.ModelInfo(
        name=model.name,
        labels=model.labels,
        cell=model.cell,
        layers=model.states[0].layers,
        hidden=model.states[0].hidden,
        vocabulary_size=len(model.codec.vocab),
        state_names=model.state_names,
        evaluation=pb.Evaluation(
            accuracy=evaluation.accuracy,
            macro_f1=evaluation.macro_f1,
            n=evaluation.n,
            typing=evaluation.typing,
            split=evaluation.split,
        ),
    )


def output(model: StepModel, probs: np.ndarray | None) -> pb.Output | None:
    if probs is None:
        return None
    values = probs.tolist()  # plain floats: max() over a short list is cheaper than a numpy call
    return pb.Output(probabilities=values, label=model.labels[values.index(max(values))])


def tensors(model: StepModel, state: dict[str, np.ndarray]) -> list[pb.Tensor]:
    """State tensors shaped (layers, hidden) as protobuf, in the model's order."""
    return [
        pb.Tensor(name=s.name, layers=s.layers, hidden=s.hidden, values=state[s.name].ravel().tolist())
        for s in model.states
    ]


def position(session: Session) -> pb.Position:
    return pb.Position(
        words=len(session.words),
        steps=session.steps,
        output=output(session.model, session.output),
        state=tensors(session.model, session.state),
    )


def step(session: SessionView, index: int) -> pb.Step:
    """Step ``index`` of the history."""
    record = session.history.step(index)
    return pb.Step(
        index=index,
        word_index=record.word_index,
        word=session.words[record.word_index],
        token=pb.Token(text=record.token, id=record.token_id, unknown=record.token_id == UNK_ID),
        output=output(session.model, record.probs),
        state=tensors(session.model, dict(zip(session.model.state_names, record.states))),
    )
