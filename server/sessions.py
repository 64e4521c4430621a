"""Sessions: each text being typed owns its words, its history, its state slot and its bytes.

Where a session's state is: the session's slot in its model's state bank holds the current
state (zeros before the first step), and the history keeps the state after every step.
Only :class:`Session` moves its slot: a model call advances it, and after a rewind, a
restore or an interrupted paste the session writes the history's last state back into it.
Only :class:`History` reads its own arrays; everything else asks it for a step or a view.

The store keeps the live sessions, their expiry, and the one byte budget they share. No
grpc here; everything runs on the event loop thread.
"""

from __future__ import annotations

import asyncio
import enum
import secrets
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from wordstream.modelfile import StateSpec, StepModel
from wordstream.server.batching import Batcher
from wordstream.server.config import Settings
from wordstream.server.errors import (
    BadRange,
    BadRewind,
    BadSessionId,
    BadWord,
    ServerFull,
    SessionBusy,
    SessionExists,
    SessionLimit,
    SessionNotFound,
)
from wordstream.server.statebank import StateBank
from wordstream.textcodec import Encoded


class HistoryMode(enum.Enum):
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


class Budget:
    """The bytes of history all sessions hold allocated, against the server's limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0


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

    def step(self, i: int) -> StepRecord:
        """Step ``i``: its token, word, output and the state after it (views of the arrays)."""
        return StepRecord(
            self.tokens[i],
            int(self.token_ids[i]),
            int(self.word_index[i]),
            self.probs[i],
            tuple(a[i] for a in self.states.values()),
        )

    def arrays(self) -> dict[str, np.ndarray]:
        """The recorded steps' arrays (views, no copies): token_ids, word_index, probs, state.<name>."""
        n = self.length
        return {
            "token_ids": self.token_ids[:n],
            "word_index": self.word_index[:n],
            "probs": self.probs[:n],
            **{f"state.{name}": a[:n] for name, a in self.states.items()},
        }


def _grown(array: np.ndarray, capacity: int, length: int) -> np.ndarray:
    """A new array of ``capacity`` rows holding the first ``length`` rows of ``array``."""
    grown = np.empty((capacity, *array.shape[1:]), array.dtype)
    grown[:length] = array[:length]
    return grown


class Session:
    """One text being typed: its model, words and history, its slot in the model's state bank,
    and its share of the byte budget. ``push_words``, ``rewind``, ``reset`` and ``close`` are
    the only ways they change."""

    __slots__ = (
        "id",
        "model",
        "mode",
        "owner",
        "history",
        "words",
        "word_starts",
        "attached",
        "last_active",
        "closed",
        "epoch",
        "_bank",
        "_slot",
        "_budget",
        "_limits",
    )

    def __init__(
        self,
        session_id: str,
        model: StepModel,
        mode: HistoryMode,
        now: float,
        bank: StateBank,
        budget: Budget,
        limits: Settings,
        owner: str | None = None,
    ) -> None:
        self.id = session_id
        self.owner = owner  # a digest of the token that created it, when the server checks tokens
        self.model = model
        self.mode = mode
        self.history = History(model)
        self.words: list[str] = []
        self.word_starts: list[int] = []  # first step of each word
        self.attached = False
        self.last_active = now
        self.closed = False
        self.epoch = ""  # with a state store: the fencing epoch this replica holds (durable.py)
        self._bank, self._budget, self._limits = bank, budget, limits
        self._slot = bank.alloc()  # the current state lives there

    @property
    def state(self) -> dict[str, np.ndarray]:
        """The current state, each tensor (layers, hidden)."""
        return self._bank.get(self._slot)

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
        return self.history.step(self.steps - 1).probs if self.steps else None

    async def push_words(self, words: list[str], batcher: Batcher) -> list[WordUpdate]:
        """Read ``words`` in order, each token one model step carrying the state. All are checked
        (and room for them reserved) first, so a bad one changes nothing."""
        if not words:
            raise BadWord("paste needs at least one word")
        encoded = [self.model.encode(word) for word in words]
        self._admit(words, encoded)  # no await between the checks and the reservation
        ids = [token_id for tokens in encoded for token_id in tokens.ids]
        try:
            results = await batcher.sequence(self._slot, ids)
        except asyncio.CancelledError:  # the stream left mid-way: the state goes back to the last whole word
            if not self.closed:
                self._sync_slot()
            raise
        if self.closed:  # closed by CloseSession while the model ran
            raise SessionNotFound(self.id)
        updates, used = [], 0
        for word, tokens in zip(words, encoded):
            start, word_index = self.steps, len(self.words)
            self.words.append(word)
            self.word_starts.append(start)
            for token, token_id, (probs, state) in zip(
                tokens.tokens, tokens.ids, results[used : used + len(tokens.ids)]
            ):
                self.history.append(word_index, token, token_id, probs, state)
            used += len(tokens.ids)
            updates.append(WordUpdate(word_index, range(start, self.steps)))
        return updates

    def _admit(self, words: list[str], encoded: list[Encoded]) -> None:
        """Refuse malformed words and words that would break a limit, with nothing changed;
        otherwise grow the history's arrays now and count them in the shared budget at once, so
        words admitted side by side can never together pass the total."""
        limit = self._limits
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
        if self.steps + new > limit.max_steps:
            raise SessionLimit(
                f"the session is at its limit of {limit.max_steps} steps; rewind, reset or open a new one"
            )
        history, budget = self.history, self._budget
        room = history.capacity + (budget.limit - budget.used) // history.step_bytes
        cap = min(limit.max_steps, limit.max_session_bytes // history.step_bytes, room)
        added = (history.capacity_for(new, cap) - history.capacity) * history.step_bytes
        if history.nbytes + added > limit.max_session_bytes:
            raise SessionLimit(f"the session's history is at its limit of {limit.max_session_bytes} bytes")
        if budget.used + added > budget.limit:
            raise SessionLimit(f"the server's history memory is at its limit of {budget.limit} bytes")
        history.reserve(new, cap)
        budget.used += added

    def rewind(self, words: int) -> None:
        """Undo the last ``words`` words: their steps leave the history, the state goes back."""
        if words < 1:
            raise BadRewind(f"rewind needs a count of at least 1 word, got {words}")
        if words > len(self.words):
            raise BadRewind(f"cannot rewind {words} words: the session has {len(self.words)}")
        keep = len(self.words) - words
        before = self.history.nbytes
        self.history.truncate(self.word_starts[keep])
        del self.words[keep:], self.word_starts[keep:]
        self._budget.used += self.history.nbytes - before  # a reset frees the arrays
        self._sync_slot()

    def reset(self) -> None:
        if self.words:
            self.rewind(len(self.words))

    def close(self) -> None:
        """Give back the slot and the bytes (the slot only once a model call still holding it is done)."""
        if not self.closed:
            self.closed = True
            self._budget.used -= self.history.nbytes
            self._bank.release(self._slot)

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
        self._budget.used += h.nbytes
        self._sync_slot()

    def step_range(self, start: int, end: int | None) -> range:
        end = self.steps if end is None else end
        if not 0 <= start <= end <= self.steps:
            raise BadRange(f"steps [{start}, {end}) are outside the history of {self.steps} steps")
        return range(start, end)

    def _sync_slot(self) -> None:
        """Make the slot hold the state after the last recorded step (zeros before the first)."""
        self._bank.set(self._slot, self.history.step(self.steps - 1).states if self.steps else None)


SESSION_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
SESSION_ID_LENGTH = (22, 64)  # URL-safe base64: 22 characters carry 132 random bits


def check_session_id(session_id: str) -> str:
    """A client-chosen session id, if well formed: 22 to 64 URL-safe base64 characters (at least
    128 bits when random, as clients must make them); BadSessionId says what is wrong otherwise."""
    low, high = SESSION_ID_LENGTH
    if not low <= len(session_id) <= high:
        raise BadSessionId(f"{len(session_id)} characters, expected {low} to {high}")
    if not set(session_id) <= SESSION_ID_CHARS:
        raise BadSessionId("only letters, digits, '-' and '_' (URL-safe base64) are allowed")
    return session_id


class SessionStore:
    """The live sessions, their expiry, and the byte budget they share. Session ids are 192 random bits."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self._sessions: dict[str, Session] = {}
        self.banks: dict[str, StateBank] = {}  # model name -> the state bank of its sessions
        self.budget = Budget(settings.max_total_bytes)
        self.freed = 0  # sessions removed since the reaper last returned memory to the OS

    def __len__(self) -> int:
        return len(self._sessions)

    @property
    def total_bytes(self) -> int:
        """History bytes all sessions hold allocated."""
        return self.budget.used

    def bank(self, model: StepModel) -> StateBank:
        if model.name not in self.banks:
            self.banks[model.name] = StateBank(model.states)
        return self.banks[model.name]

    def _new(self, session_id: str, model: StepModel, mode: HistoryMode, now: float, owner: str | None) -> Session:
        return Session(session_id, model, mode, now, self.bank(model), self.budget, self.settings, owner)

    def create(
        self, model: StepModel, mode: HistoryMode, owner: str | None = None, session_id: str | None = None
    ) -> Session:
        """A new session under ``session_id`` (one the client chose, checked by check_session_id),
        or under 192 fresh random bits."""
        if session_id is not None and session_id in self._sessions:
            raise SessionExists(session_id)
        if len(self._sessions) >= self.settings.max_sessions:
            raise ServerFull(f"the server holds its maximum of {self.settings.max_sessions} live sessions; retry later")
        session = self._new(session_id or secrets.token_urlsafe(24), model, mode, self.clock(), owner)
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
        keep: bool = True,
    ) -> Session:
        """Bring back a saved session under its own id; ValueError if its data does not fit its model.
        With ``keep`` false the session is not held here (a look at a session another replica holds);
        its caller closes it."""
        session = self._new(session_id, model, mode, last_active, owner)
        try:
            session.restore(words, word_starts, tokens, arrays)
        except (ValueError, IndexError, TypeError):
            session.close()
            raise
        if keep:
            if session_id in self._sessions:
                session.close()
                raise SessionExists(session_id)
            self._sessions[session.id] = session
        return session

    def has(self, session_id: str) -> bool:
        return session_id in self._sessions

    def holds(self, session: Session) -> bool:
        """Whether this very session object is the one held under its id."""
        return self._sessions.get(session.id) is session

    def find(self, session_id: str) -> Session | None:
        return self._sessions.get(session_id)

    def discard(self, session: Session) -> None:
        """Drop this replica's copy of a session (the state store keeps it), if it is still held."""
        if self.holds(session):
            self.remove(session.id)

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
        session.close()
        self.freed += 1
        return session

    def reap(self) -> list[str]:
        """Free every detached session idle past the timeout; returns their ids."""
        deadline = self.clock() - self.settings.idle_timeout
        expired = [s.id for s in self._sessions.values() if not s.attached and s.last_active < deadline]
        for session_id in expired:
            self.remove(session_id)
        return expired
