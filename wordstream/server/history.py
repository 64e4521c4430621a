"""A session's history, and the one record format of a word that every ledger keeps. No grpc here.

:class:`History` holds, for every step so far, the token, its id, the word it belongs to, the
output and the recurrent state after it. It is the only reader of its own arrays: everything
else asks it for a step (:meth:`History.step`), a word's record (:meth:`History.record`), or
gives it records to read back (:meth:`History.read_records`).

A word record is JSON and raw little-endian float32, never anything executed or unpickled;
the state file (persistence.py) and Redis (redis_ledger.py) keep the same bytes:

    4 bytes   header length h (unsigned, little-endian)
    h bytes   UTF-8 JSON {"word": str, "tokens": [str], "ids": [int]}   (k tokens, k >= 1)
    then      probabilities (k, labels), then each state tensor (k, layers, hidden) in the
              model's order: the history's rows for the word's steps
"""

from __future__ import annotations

import enum
import json
import struct
import sys
from collections.abc import Sequence
from itertools import accumulate
from typing import ClassVar, NamedTuple

import numpy as np

from wordstream.modelfile import StateSpec, StepModel

_HEADER = struct.Struct("<I")


class HistoryMode(enum.Enum):
    """How much of the history each answer to a word carries."""

    DELTA = "delta"
    FULL = "full"
    NONE = "none"


class WordUpdate(NamedTuple):
    word_index: int
    new_steps: range  # the history's steps this word added


class StepRecord(NamedTuple):
    """One step of a history, read through :meth:`History.step`."""

    token: str
    token_id: int
    word_index: int
    probs: np.ndarray  # (labels,)
    states: tuple[np.ndarray, ...]  # each (layers, hidden), in the model's order of state tensors


_Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]


class History:
    """Every step's token, output and state, in arrays with a little room to grow.

    Step i's state is the recurrent state after token i, so the current state of the
    session is the last row, and rewinding is a truncation. A step's output and state are
    one float32 row, ``[probabilities | each state tensor flattened, in the model's order]``:
    the batcher's rows (batching.py), so recording a step is one copy, and its answer's floats
    are slices of one ``tobytes``. A history with no steps shares one set of empty arrays per
    shape, so an idle session costs little. The arrays grow by a quarter (at least
    ``MIN_GROWTH`` steps) when full, never past the cap they are given (near a limit, by
    exactly what is needed): a short typed text keeps at most a few steps of slack, a long one
    at most a quarter. ``nbytes`` is what the arrays hold allocated, the figure the limits count.
    """

    MIN_GROWTH: ClassVar[int] = 4  # a class constant (ClassVar: compiled by mypyc it stays one)
    __slots__ = (
        "labels",
        "specs",
        "width",
        "bounds",
        "length",
        "token_ids",
        "word_index",
        "rows",
        "tokens",
        "step_bytes",
    )
    _EMPTY: ClassVar[dict[tuple[int, tuple[StateSpec, ...]], _Arrays]] = {}

    def __init__(self, model: StepModel) -> None:
        self.labels = len(model.labels)
        self.specs = model.states
        self.width, self.bounds = row_layout(model)
        # Bytes one step takes: token id, word index, and its row.
        self.step_bytes = 8 + 4 + 4 * self.width
        self.length = 0
        self.tokens: list[str] = []
        self._empty()

    def _empty(self) -> None:
        """Point at the shared empty arrays of this shape (read-only until grown)."""
        key = (self.labels, self.specs)  # what determines the arrays' shapes, not the model's name
        if key not in History._EMPTY:
            History._EMPTY[key] = (np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros((0, self.width), np.float32))
        self.token_ids, self.word_index, self.rows = History._EMPTY[key]

    @property
    def capacity(self) -> int:
        return len(self.token_ids)

    @property
    def nbytes(self) -> int:
        """Bytes the arrays hold allocated (the shared empty arrays count nothing)."""
        return self.capacity * self.step_bytes

    def capacity_for(self, steps: int, cap: int) -> int:
        """The capacity that holds ``steps`` more steps: the present one if they fit, else grown by a
        quarter (at least MIN_GROWTH steps), or by exactly what they need where that would pass ``cap``."""
        needed = self.length + steps
        if needed <= self.capacity:
            return self.capacity
        grown = max(needed, self.capacity + max(self.MIN_GROWTH, self.capacity // 4))
        return grown if grown <= cap else needed

    def reserve(self, steps: int, cap: int) -> None:
        """Make room for ``steps`` more steps in one allocation (see capacity_for)."""
        capacity = self.capacity_for(steps, cap)
        if capacity > self.capacity:
            self._resize(capacity)

    def append(self, word_index: int, token: str, token_id: int, row: np.ndarray) -> None:
        """Record one step (room for it was reserved); ``row`` is its output and state (see the class)."""
        i = self.length
        self.token_ids[i], self.word_index[i], self.rows[i] = token_id, word_index, row
        self.tokens.append(token)
        self.length += 1

    def truncate(self, length: int) -> None:
        """Keep the first ``length`` steps; with none left the arrays are freed."""
        self.length = length
        del self.tokens[length:]
        if length == 0:
            self._empty()

    def _resize(self, capacity: int) -> None:
        # New arrays of exactly ``capacity`` rows, the recorded steps copied in. (np.resize is not
        # this: it repeats the array and slices the result, so growing by a quarter kept a buffer
        # of twice the old size behind a view.)
        self.token_ids = _grown(self.token_ids, capacity, self.length)
        self.word_index = _grown(self.word_index, capacity, self.length)
        self.rows = _grown(self.rows, capacity, self.length)

    def owns_exact_buffers(self) -> bool:
        """Whether every array owns a buffer of exactly its capacity (no view into a larger one)."""
        arrays = (self.token_ids, self.word_index, self.rows)
        return all(a.base is None and len(a) == self.capacity for a in arrays)

    def step(self, i: int) -> StepRecord:
        """Step ``i``: its token, word, output and the state after it (views of the arrays)."""
        row = self.rows[i]
        return StepRecord(
            self.tokens[i],
            int(self.token_ids[i]),
            int(self.word_index[i]),
            row[: self.labels],
            tuple(row[a:b].reshape(s.layers, s.hidden) for s, (a, b) in zip(self.specs, self.bounds[1:])),
        )

    def wire(self, i: int) -> tuple[str, int, bytes]:
        """Step ``i``'s token, its id and its row as little-endian float32 bytes (an answer's floats,
        as protobuf packs them)."""
        return self.tokens[i], int(self.token_ids[i]), self.rows[i].tobytes() if _LITTLE else _le(self.rows[i])

    def record(self, word: str, steps: range) -> bytes:
        """The record of one word whose tokens are the steps ``steps`` (the module docstring's format)."""
        start, stop = steps.start, steps.stop
        header = json.dumps(
            {"word": word, "tokens": self.tokens[start:stop], "ids": self.token_ids[start:stop].tolist()},
            ensure_ascii=False,
        ).encode()
        rows = self.rows[start:stop]
        return b"".join([_HEADER.pack(len(header)), header, *(_le(rows[:, a:b]) for a, b in self.bounds)])

    def read_records(self, records: Sequence[bytes]) -> tuple[list[str], list[int]]:
        """Append the steps of these word records to this empty history, in one allocation; returns
        the words and each word's first step. ValueError names the first record that is not one
        :meth:`record` wrote for a model of this shape; the history is then left empty."""
        if self.length:
            raise ValueError("records are read into an empty history only")
        words, headers, blocks = _parse(records, self.width)
        steps = sum(len(h["ids"]) for h in headers)
        self.reserve(steps, steps)
        starts: list[int] = []
        for index, (header, block) in enumerate(zip(headers, blocks)):
            k, first = len(header["ids"]), self.length
            starts.append(first)
            self.token_ids[first : first + k] = header["ids"]
            self.word_index[first : first + k] = index
            for a, b in self.bounds:  # each record holds probs then each state, for its own steps
                self.rows[first : first + k, a:b] = block[a * k : b * k].reshape(k, b - a)
            self.tokens += header["tokens"]
            self.length += k
        return words, starts


def row_layout(model: StepModel) -> tuple[int, tuple[tuple[int, int], ...]]:
    """A step row's width and its parts' column bounds: the probabilities, then each state tensor."""
    widths = [len(model.labels)] + [s.layers * s.hidden for s in model.states]
    ends = list(accumulate(widths))
    return ends[-1], tuple(zip([0, *ends[:-1]], ends))


def _parse(records: Sequence[bytes], row_floats: int) -> tuple[list[str], list[dict[str, list]], list[np.ndarray]]:  # type: ignore[type-arg]
    """Each record's word, header and float32 payload, every field checked."""
    words, headers, blocks = [], [], []
    for n, record in enumerate(records):
        if len(record) < _HEADER.size:
            raise ValueError(f"word record {n} is {len(record)} bytes, too short")
        (size,) = _HEADER.unpack_from(record)
        try:
            header = json.loads(record[_HEADER.size : _HEADER.size + size])
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"word record {n}: header is not JSON ({e})") from None
        if not (
            isinstance(header, dict)
            and isinstance(header.get("word"), str)
            and isinstance(header.get("tokens"), list)
            and isinstance(header.get("ids"), list)
            and all(isinstance(t, str) for t in header["tokens"])
            and all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < 2**63 for i in header["ids"])
            and 1 <= len(header["tokens"]) == len(header["ids"])
        ):
            raise ValueError(f"word record {n}: header needs a word and as many tokens as ids (at least one)")
        payload = record[_HEADER.size + size :]
        expected = 4 * len(header["ids"]) * row_floats
        if len(payload) != expected:
            raise ValueError(f"word record {n}: {len(payload)} bytes of arrays, expected {expected}")
        words.append(header["word"])
        headers.append(header)
        blocks.append(np.frombuffer(payload, "<f4"))
    return words, headers, blocks


_LITTLE = sys.byteorder == "little"  # float32 arrays are little-endian already: tobytes is the wire's


def _le(array: np.ndarray) -> bytes:
    """Little-endian float32 bytes (no conversion where the array already is, as on every usual machine)."""
    return array.astype("<f4", copy=False).tobytes()


def _grown(array: np.ndarray, capacity: int, length: int) -> np.ndarray:
    """A new array of ``capacity`` rows holding the first ``length`` rows of ``array``."""
    grown = np.empty((capacity, *array.shape[1:]), array.dtype)
    grown[:length] = array[:length]
    return grown
