"""The answer to a word, encoded straight to protobuf wire bytes: the hot path of every stream.

Building that answer from protobuf objects takes about a dozen message objects and a
Python list per float tensor, for every word; with the bare transport costing about 80 us
of server CPU per message, that building was the largest share of the service's own cost
(docs/BENCHMARKS.md has the profile). Here what never changes for a model (tensor names and
shapes, label strings, field headers) is encoded once, and the floats go out as the arrays'
own bytes: a packed ``repeated float`` is little-endian float32, numpy's layout here.

Only ``StreamResponse{seq, session_id, word: WordResult}`` is encoded by hand; every other
answer is built with the protobuf classes. tests/test_wire.py parses these bytes with the
protobuf library and checks them against the messages that library builds from the same
history. Field numbers are the ones in proto/wordstream/v1/wordstream.proto.
"""

from __future__ import annotations

import sys

import numpy as np

from server.inference import StepModel
from server.sessions import History, HistoryMode, Session
from textcodec import UNK_ID

_LENGTH_DELIMITED = 2
_BYTE = [bytes((value,)) for value in range(256)]
_FIELDS = range(1, 16)  # one-byte tags: every field number in our messages is below 16
_LD_TAG = {field: _BYTE[field << 3 | _LENGTH_DELIMITED] for field in _FIELDS}
_VARINT_TAG = {field: _BYTE[field << 3] for field in _FIELDS}


def varint(value: int) -> bytes:
    """A non-negative integer as a protobuf base-128 varint."""
    if value < 0x80:
        return _BYTE[value]
    if value < 0x4000:  # every message length of a word's answer
        return bytes((value & 0x7F | 0x80, value >> 7))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def message(field: int, body: bytes) -> bytes:
    """A length-delimited field: a string, bytes, packed numbers or a nested message."""
    return _LD_TAG[field] + varint(len(body)) + body


def string(field: int, text: str) -> bytes:
    """A string field, left out when empty (proto3 does not send default values)."""
    return message(field, text.encode()) if text else b""


def uint(field: int, value: int) -> bytes:
    """A varint field (uint32, uint64, int64 >= 0, bool), left out when zero."""
    return _VARINT_TAG[field] + varint(value) if value else b""


if sys.byteorder == "little":

    def floats(array: np.ndarray) -> bytes:
        return array.tobytes()

else:  # pragma: no cover - no big-endian machine serves this

    def floats(array: np.ndarray) -> bytes:
        return array.astype("<f4").tobytes()


class WordAnswers:
    """Encodes the answers to words for the sessions of one model."""

    def __init__(self, model: StepModel) -> None:
        self.model = model
        labels = len(model.labels)
        self._probs_header = _LD_TAG[1] + varint(4 * labels)  # Output.probabilities, packed
        self._labels = [string(2, label) for label in model.labels]  # Output.label
        # One Tensor message per state, everything but the values: its header as a field of
        # WordResult (field 5) and of Step (field 6), the values' bytes follow.
        self._tensor_headers: dict[int, list[bytes]] = {5: [], 6: []}
        for spec in model.states:
            values = 4 * spec.layers * spec.hidden
            body_head = string(1, spec.name) + uint(2, spec.layers) + uint(3, spec.hidden) + _LD_TAG[4] + varint(values)
            for field in (5, 6):
                self._tensor_headers[field].append(_LD_TAG[field] + varint(len(body_head) + values) + body_head)
        self._state_names = [spec.name for spec in model.states]

    def answer(self, seq: int, session_field: bytes, session: Session, word_index: int, steps: range) -> bytes:
        """``StreamResponse`` for the word ``word_index``, whose tokens are the history's ``steps``.

        ``session_field`` is ``session_id(session.id)``, encoded once per stream.
        """
        h = session.history
        end = steps.stop  # the history as it stood after this word (a paste answers each word)
        if session.mode is HistoryMode.FULL:
            shown = range(end)
        elif session.mode is HistoryMode.DELTA:
            shown = steps
        else:
            shown = range(end, end)
        last = end - 1  # the word's last step: its output and state are the word's
        parts = {i: self._parts(h, i) for i in (shown or steps)}  # each step's pieces, encoded once
        _, output, values = parts[last]
        body = [uint(1, word_index), string(2, session.words[word_index])]
        body.extend(message(3, parts[i][0]) for i in steps)
        body.append(message(4, output))
        body.extend(header + value for header, value in zip(self._tensor_headers[5], values))
        history = [uint(1, end), uint(2, shown.start)]
        history.extend(message(3, self._step(session, i, *parts[i])) for i in shown)
        body.append(message(6, b"".join(history)))
        return uint(1, seq) + session_field + message(4, b"".join(body))

    def _parts(self, h: History, i: int) -> tuple[bytes, bytes, list[bytes]]:
        """Step ``i``'s Token and Output messages and its state tensors' values."""
        token_id = int(h.token_ids[i])
        token = string(1, h.tokens[i]) + uint(2, token_id) + uint(3, token_id == UNK_ID)
        probs = h.probs[i]
        listed = probs.tolist()  # plain floats: max() over a short list is cheaper than a numpy call
        output = self._probs_header + floats(probs) + self._labels[listed.index(max(listed))]
        return token, output, [floats(h.states[name][i]) for name in self._state_names]

    def _step(self, session: Session, i: int, token: bytes, output: bytes, values: list[bytes]) -> bytes:
        word_index = int(session.history.word_index[i])
        parts = [
            uint(1, i),
            uint(2, word_index),
            string(3, session.words[word_index]),
            message(4, token),
            message(5, output),
            *(header + value for header, value in zip(self._tensor_headers[6], values)),
        ]
        return b"".join(parts)


def session_id(value: str) -> bytes:
    """``StreamResponse.session_id``, to encode once per stream."""
    return string(2, value)
