"""Sessions: the state and history of each text being typed, their limits and their expiry.

No grpc here. All methods run on the event loop thread; model calls happen elsewhere
and hand their results to :meth:`Session.append`.
"""

from __future__ import annotations

import enum
import secrets
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from server.batching import StateBank, StepResult
from server.config import Settings
from server.errors import BadRange, BadRewind, BadWord, ServerFull, SessionBusy, SessionLimit, SessionNotFound
from server.inference import StateSpec, StepModel
from textcodec import Encoded


class HistoryMode(enum.Enum):
    DELTA = "delta"
    FULL = "full"
    NONE = "none"


class History:
    """Every step's token, output and state, in arrays with a little room to grow.

    Step i's state is the recurrent state after token i, so the current state of the
    session is the last row, and rewinding is a truncation. A history with no steps
    shares one set of empty arrays per shape, so an idle session costs little. The
    arrays grow by a quarter (at least ``MIN_GROWTH`` steps) when full, never past the
    cap they are given (near a limit, by exactly what is needed): a short typed text
    keeps at most a few steps of slack, a long one at most a quarter. ``nbytes`` is what
    the arrays hold allocated, the figure the limits count.
    """

    MIN_GROWTH = 4
    __slots__ = ("labels", "specs", "length", "token_ids", "word_index", "probs", "states", "tokens", "step_bytes")
    _EMPTY: dict[
        tuple[int, tuple[StateSpec, ...]], tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]
    ] = {}

    def __init__(self, model: StepModel) -> None:
        self.labels = len(model.labels)
        self.specs = model.states
        # Bytes one step takes: token id, word index, probabilities and every state tensor.
        self.step_bytes = 8 + 4 + 4 * self.labels + sum(4 * s.layers * s.hidden for s in self.specs)
        self.length = 0
        self.tokens: list[str] = []
        self._empty()

    def _empty(self) -> None:
        """Point at the shared empty arrays of this shape (read-only until grown)."""
        key = (self.labels, self.specs)  # what determines the arrays' shapes, not the model's name
        if key not in History._EMPTY:
            History._EMPTY[key] = (
                np.zeros(0, np.int64),
                np.zeros(0, np.int32),
                np.zeros((0, self.labels), np.float32),
                {s.name: np.zeros((0, s.layers, s.hidden), np.float32) for s in self.specs},
            )
        self.token_ids, self.word_index, self.probs, self.states = History._EMPTY[key]

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

    def append(
        self, word_index: int, token: str, token_id: int, probs: np.ndarray, state: dict[str, np.ndarray]
    ) -> None:
        """Record one step (room for it was reserved): ``probs`` (labels,), ``state`` name -> (layers, hidden)."""
        i = self.length
        self.token_ids[i], self.word_index[i], self.probs[i] = token_id, word_index, probs
        for name, value in state.items():
            self.states[name][i] = value
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
        self.probs = _grown(self.probs, capacity, self.length)
        self.states = {n: _grown(a, capacity, self.length) for n, a in self.states.items()}

    def arrays(self) -> dict[str, np.ndarray]:
        """The recorded steps' arrays (views, no copies): token_ids, word_index, probs, state.<name>."""
        n = self.length
        return {
            "token_ids": self.token_ids[:n],
            "word_index": self.word_index[:n],
            "probs": self.probs[:n],
            **{f"state.{name}": a[:n] for name, a in self.states.items()},
        }

    def state_after(self, step: int) -> dict[str, np.ndarray]:
        """The state after ``step``, each tensor (layers, hidden)."""
        return {n: a[step] for n, a in self.states.items()}


def _grown(array: np.ndarray, capacity: int, length: int) -> np.ndarray:
    """A new array of ``capacity`` rows holding the first ``length`` rows of ``array``."""
    grown = np.empty((capacity, *array.shape[1:]), array.dtype)
    grown[:length] = array[:length]
    return grown


class Session:
    """One text being typed: its model, words, history, and its slot in the model's state bank."""

    __slots__ = (
        "id",
        "model",
        "mode",
        "history",
        "words",
        "word_starts",
        "bank",
        "slot",
        "attached",
        "last_active",
        "owner",
    )

    def __init__(
        self,
        session_id: str,
        model: StepModel,
        mode: HistoryMode,
        now: float,
        bank: StateBank,
        owner: str | None = None,
    ) -> None:
        self.id = session_id
        self.owner = owner  # a digest of the token that created it, when the server checks tokens
        self.model = model
        self.mode = mode
        self.history = History(model)
        self.words: list[str] = []
        self.word_starts: list[int] = []  # first step of each word
        self.bank = bank
        self.slot = bank.alloc()  # the current state lives there
        self.attached = False
        self.last_active = now

    @property
    def state(self) -> dict[str, np.ndarray]:
        """The current state, each tensor (layers, hidden)."""
        return self.bank.get(self.slot)

    def sync_state(self) -> None:
        """Make the slot hold the state after the last recorded step (zeros before the first)."""
        self.bank.set(self.slot, self.history.state_after(self.steps - 1) if self.steps else None)

    @property
    def steps(self) -> int:
        return self.history.length

    @property
    def history_bytes(self) -> int:
        """Bytes its history holds allocated: what the limits count."""
        return self.history.nbytes

    @property
    def output(self) -> np.ndarray | None:
        """Probabilities after the last token, or None before the first."""
        return self.history.probs[self.steps - 1] if self.steps else None

    def append_word(self, word: str, encoded: Encoded, results: list[StepResult]) -> range:
        """Record a word whose tokens the model has read (the slot already holds the state after
        its last token); returns the new steps' indices."""
        start = self.steps
        word_index = len(self.words)
        self.words.append(word)
        self.word_starts.append(start)
        for token, token_id, (probs, state) in zip(encoded.tokens, encoded.ids, results):
            self.history.append(word_index, token, token_id, probs, state)
        return range(start, self.steps)

    def rewind(self, words: int) -> None:
        if words < 1:
            raise BadRewind(f"rewind needs a count of at least 1 word, got {words}")
        if words > len(self.words):
            raise BadRewind(f"cannot rewind {words} words: the session has {len(self.words)}")
        keep = len(self.words) - words
        steps = self.word_starts[keep]
        del self.words[keep:], self.word_starts[keep:]
        self.history.truncate(steps)
        self.sync_state()

    def reset(self) -> None:
        if self.words:
            self.rewind(len(self.words))

    def restore(self, words: list[str], word_starts: list[int], tokens: list[str], arrays: dict[str, Any]) -> None:
        """Load a saved history (persistence.py); ValueError if it does not fit this session's model."""
        steps = len(tokens)
        h = self.history
        expected = {"token_ids": (steps,), "word_index": (steps,), "probs": (steps, h.labels)}
        expected.update({f"state.{s.name}": (steps, s.layers, s.hidden) for s in h.specs})
        for name, shape in expected.items():
            if name not in arrays or tuple(arrays[name].shape) != shape:
                raise ValueError(f"array {name} should have shape {shape}")
        if (
            len(word_starts) != len(words)
            or sorted(word_starts) != word_starts
            or any(not 0 <= start <= steps for start in word_starts)
        ):
            raise ValueError("word starts do not fit the steps")
        if steps and not 0 <= int(arrays["word_index"].min()) <= int(arrays["word_index"].max()) < len(words):
            raise ValueError("a step names a word the session does not have")
        h.reserve(steps, steps)
        for i in range(steps):
            state = {s.name: arrays[f"state.{s.name}"][i] for s in h.specs}
            h.append(int(arrays["word_index"][i]), tokens[i], int(arrays["token_ids"][i]), arrays["probs"][i], state)
        self.words, self.word_starts = list(words), list(word_starts)
        self.sync_state()

    def step_range(self, start: int, end: int | None) -> range:
        end = self.steps if end is None else end
        if not 0 <= start <= end <= self.steps:
            raise BadRange(f"steps [{start}, {end}) are outside the history of {self.steps} steps")
        return range(start, end)


class SessionStore:
    """The live sessions, their limits and their expiry. Session ids are 192 random bits."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self._sessions: dict[str, Session] = {}
        self.banks: dict[str, StateBank] = {}  # model name -> the state bank of its sessions
        self.total_bytes = 0  # history bytes across sessions, kept up to date by the methods below
        self.freed = 0  # sessions removed since the reaper last returned memory to the OS

    def __len__(self) -> int:
        return len(self._sessions)

    def bank(self, model: StepModel) -> StateBank:
        if model.name not in self.banks:
            self.banks[model.name] = StateBank(model.states)
        return self.banks[model.name]

    def rewind(self, session: Session, words: int | None) -> None:
        """Undo the last ``words`` words (None: all of them)."""
        before = session.history_bytes
        session.reset() if words is None else session.rewind(words)
        self.total_bytes += session.history_bytes - before

    def create(self, model: StepModel, mode: HistoryMode, owner: str | None = None) -> Session:
        if len(self._sessions) >= self.settings.max_sessions:
            raise ServerFull(f"the server holds its maximum of {self.settings.max_sessions} live sessions; retry later")
        session = Session(secrets.token_urlsafe(24), model, mode, self.clock(), self.bank(model), owner)
        self._sessions[session.id] = session
        return session

    def sessions(self) -> list[Session]:
        return list(self._sessions.values())

    def restore(
        self,
        session_id: str,
        model: StepModel,
        mode: HistoryMode,
        last_active: float,
        owner: str | None,
        words: list[str],
        word_starts: list[int],
        tokens: list[str],
        arrays: dict[str, Any],
    ) -> Session:
        """Bring back a saved session under its own id; ValueError if its data does not fit its model."""
        session = Session(session_id, model, mode, last_active, self.bank(model), owner)
        try:
            session.restore(words, word_starts, tokens, arrays)
        except (ValueError, IndexError, TypeError):
            session.bank.release(session.slot)
            raise
        self._sessions[session.id] = session
        self.total_bytes += session.history_bytes
        return session

    def has(self, session_id: str) -> bool:
        return session_id in self._sessions

    def get(self, session_id: str) -> Session:
        session = self._sessions.get(session_id)
        if session is None:
            raise SessionNotFound(session_id)
        return session

    def attach(self, session_id: str) -> Session:
        session = self.get(session_id)
        if session.attached:
            raise SessionBusy(session_id)
        session.attached = True
        session.last_active = self.clock()
        return session

    def detach(self, session: Session) -> None:
        session.attached = False
        session.last_active = self.clock()

    def touch(self, session: Session) -> None:
        session.last_active = self.clock()

    def remove(self, session_id: str) -> Session:
        session = self._sessions.pop(session_id, None)
        if session is None:
            raise SessionNotFound(session_id)
        self.total_bytes -= session.history_bytes
        session.bank.release(session.slot)
        self.freed += 1
        return session

    def admit(self, session: Session, words: list[str], encoded: list[Encoded]) -> int:
        """Check words and make room for their steps, in one go: malformed words and words that
        would break a limit are refused with nothing changed; otherwise the history's arrays are
        grown now and counted in the total at once, so words admitted side by side can never
        together pass the total. Returns how many steps the words take."""
        limit = self.settings
        for word, tokens in zip(words, encoded):
            if word.split() != [word]:  # one C call for the usual word; the checks below say what is wrong
                if not word or word.isspace():
                    raise BadWord("empty word: send a word with at least one visible character")
                raise BadWord(f"a word must not contain whitespace, got {word[:40]!r}; send each word on its own")
            if len(word) > limit.max_word_chars:
                raise BadWord(f"word of {len(word)} characters is over the limit of {limit.max_word_chars}")
            if not tokens.ids:
                raise BadWord(f"word {word[:40]!r} has no tokens after normalisation")
        new = sum(len(tokens.ids) for tokens in encoded)
        if session.steps + new > limit.max_steps:
            raise SessionLimit(
                f"the session is at its limit of {limit.max_steps} steps; rewind, reset or open a new one"
            )
        history = session.history
        room = history.capacity + (limit.max_total_bytes - self.total_bytes) // history.step_bytes
        cap = min(limit.max_steps, limit.max_session_bytes // history.step_bytes, room)
        added = (history.capacity_for(new, cap) - history.capacity) * history.step_bytes
        if history.nbytes + added > limit.max_session_bytes:
            raise SessionLimit(f"the session's history is at its limit of {limit.max_session_bytes} bytes")
        if self.total_bytes + added > limit.max_total_bytes:
            raise SessionLimit(f"the server's history memory is at its limit of {limit.max_total_bytes} bytes")
        history.reserve(new, cap)
        self.total_bytes += added
        return new

    def reap(self) -> list[str]:
        """Free every detached session idle past the timeout; returns their ids."""
        deadline = self.clock() - self.settings.idle_timeout
        expired = [s.id for s in self._sessions.values() if not s.attached and s.last_active < deadline]
        for session_id in expired:
            self.remove(session_id)
        return expired
