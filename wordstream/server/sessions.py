"""Sessions: each text being typed owns its words, its history, its state slot and its bytes.

Where a session's state is: the session's slot in its model's state bank holds the current
state (zeros before the first step), and the history keeps the state after every step.
Only :class:`Session` moves its slot: a model call advances it, and after a rewind, a
restore or an interrupted paste the session writes the history's last state back into it.
Only a session writes its own fields (``attach``, ``detach``, ``touch``); the store
(store.py) keeps the live ones. No grpc here; everything runs on the event loop thread.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np

from wordstream.modelfile import StepModel
from wordstream.server.batching import Batcher, Row
from wordstream.server.config import Settings
from wordstream.server.errors import BadRange, BadRewind, BadWord, SessionLimit, SessionNotFound
from wordstream.server.history import History, HistoryMode, WordUpdate
from wordstream.server.statebank import StateBank
from wordstream.textcodec import Encoded


@dataclass(frozen=True)
class SessionRecord:
    """A session as it is kept outside this process (a state file, a ledger): enough to rebuild it."""

    id: str
    model: str
    fingerprint: str
    mode: HistoryMode
    owner: str | None
    idle_seconds: float
    records: list[bytes]  # one per word, in order: history.py's word records
    attached: bool = False


class Budget:
    """The bytes of history all sessions hold allocated, against the server's limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0


class SessionView:
    """A session as it reads: its model, words and history, and whether a stream holds it.

    GetSession of a session another replica holds answers from one of these, built from the
    ledger's record (:meth:`from_record`): it holds no state slot and no share of the budget,
    so nothing needs closing. :class:`Session` is the live kind."""

    __slots__ = ("id", "model", "mode", "owner", "history", "words", "word_starts", "attached", "last_active", "epoch")

    def __init__(self, session_id: str, model: StepModel, mode: HistoryMode, now: float, owner: str | None) -> None:
        self.id = session_id
        self.owner = owner  # a digest of the token that created it, when the server checks tokens
        self.model = model
        self.mode = mode
        self.history = History(model)
        self.words: list[str] = []
        self.word_starts: list[int] = []  # first step of each word
        self.attached = False
        self.last_active = now
        self.epoch = ""  # the ledger's fencing epoch this replica holds ('' for none)

    @classmethod
    def from_record(cls, record: SessionRecord, model: StepModel, now: float) -> SessionView:
        """A read-only view of a kept session; ValueError if its records do not fit ``model``."""
        view = cls(record.id, model, record.mode, now - record.idle_seconds, record.owner)
        view.words, view.word_starts = view.history.read_records(record.records)
        view.attached = record.attached
        return view

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

    def records(self, first_word: int = 0) -> list[bytes]:
        """The word records of its words from ``first_word`` on (history.py's format)."""
        ends = self.word_starts[first_word + 1 :] + [self.steps]
        return [
            self.history.record(word, range(start, end))
            for word, start, end in zip(self.words[first_word:], self.word_starts[first_word:], ends)
        ]

    def step_range(self, start: int, end: int | None) -> range:
        end = self.steps if end is None else end
        if not 0 <= start <= end <= self.steps:
            raise BadRange(f"steps [{start}, {end}) are outside the history of {self.steps} steps")
        return range(start, end)


class Session(SessionView):
    """One live text being typed: a view plus its slot in the model's state bank and its share
    of the byte budget. ``push_words``, ``rewind``, ``reset``, ``restore`` and ``close`` are the
    only ways its words change; ``attach``, ``detach`` and ``touch`` the only ways its stream's do."""

    __slots__ = ("closed", "_bank", "_slot", "_budget", "_limits")

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
        super().__init__(session_id, model, mode, now, owner)
        self.closed = False
        self._bank, self._budget, self._limits = bank, budget, limits
        self._slot = bank.alloc()  # the current state lives there

    @property
    def state(self) -> dict[str, np.ndarray]:
        """The current state, each tensor (layers, hidden)."""
        return self._bank.get(self._slot)

    def attach(self, epoch: str, now: float, mode: HistoryMode | None = None) -> None:
        """A stream holds it now, under the ledger's ``epoch``; ``mode`` changes what its answers carry."""
        self.attached, self.epoch, self.last_active = True, epoch, now
        if mode is not None:
            self.mode = mode

    def hold(self, epoch: str) -> None:
        """The ledger moved this copy on to ``epoch`` (a write it kept)."""
        self.epoch = epoch

    def detach(self, now: float) -> None:
        """Its stream left: the idle timeout counts from ``now``."""
        self.attached, self.last_active = False, now

    def touch(self, now: float) -> None:
        self.last_active = now

    async def push_words(self, words: list[str], batcher: Batcher) -> list[WordUpdate]:
        """Read ``words`` in order, each token one model step carrying the state. All are checked
        (and room for them reserved) first, so a bad one changes nothing."""
        encoded = self.admit(words)
        ids = [token_id for tokens in encoded for token_id in tokens.ids]
        try:
            results = await batcher.sequence(self._slot, ids)
        except asyncio.CancelledError:  # the stream left mid-way: the state goes back to the last whole word
            self.interrupted()
            raise
        return self.record(words, encoded, results)

    @property
    def slot(self) -> int:
        """Its slot in the model's state bank (a model call advances it)."""
        return self._slot

    def admit(self, words: list[str]) -> list[Encoded]:
        """Check ``words`` and reserve room for their steps (see :meth:`_admit`); their tokens.
        SessionNotFound for a session closed meanwhile (CloseSession): nothing is reserved for it."""
        if self.closed:
            raise SessionNotFound(self.id)
        if not words:
            raise BadWord("paste needs at least one word")
        encoded = [self.model.encode(word) for word in words]
        self._admit(words, encoded)  # no await between the checks and the reservation
        return encoded

    def interrupted(self) -> None:
        """The model steps of admitted words stopped part-way: the slot goes back to the last whole word."""
        if not self.closed:
            self._sync_slot()

    def record(self, words: list[str], encoded: list[Encoded], results: list[Row]) -> list[WordUpdate]:
        """Append admitted ``words`` whose steps ran, ``results`` one row per token in order.
        SessionNotFound if it was closed meanwhile."""
        if self.closed:  # closed by CloseSession while the model ran
            raise SessionNotFound(self.id)
        history, updates, used = self.history, [], 0
        for word, tokens in zip(words, encoded):
            start, word_index, k = history.length, len(self.words), len(tokens.ids)
            self.words.append(word)
            self.word_starts.append(start)
            for token, token_id, row in zip(tokens.tokens, tokens.ids, results[used : used + k]):
                history.append(word_index, token, token_id, row)
            used += k
            updates.append(WordUpdate(word_index, range(start, start + k)))
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
        if history.length + new <= history.capacity:
            return  # the room is reserved already: nothing to allocate, nothing more to count
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

    def restore(self, records: list[bytes]) -> None:
        """Load a kept session's words into this new one; ValueError if they do not fit its model."""
        self.words, self.word_starts = self.history.read_records(records)
        self._budget.used += self.history.nbytes
        self._sync_slot()

    def _sync_slot(self) -> None:
        """Make the slot hold the state after the last recorded step (zeros before the first)."""
        self._bank.set(self._slot, self.history.step(self.steps - 1).states if self.steps else None)
