"""The live sessions of this process: their registry, their expiry and the byte budget they share.

A different thing from a ledger (ledger.py): the store holds the sessions this replica is
working on now; a ledger keeps them beyond this process. No grpc here.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from wordstream.modelfile import StepModel
from wordstream.server.config import Settings
from wordstream.server.errors import BadSessionId, ServerFull, SessionExists, SessionNotFound
from wordstream.server.history import HistoryMode
from wordstream.server.sessions import Budget, Session, SessionRecord
from wordstream.server.statebank import StateBank
from wordstream.shared import new_session_id

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
        session = self._new(session_id or new_session_id(), model, mode, self.clock(), owner)
        self._sessions[session.id] = session
        return session

    def sessions(self) -> list[Session]:
        return list(self._sessions.values())

    def restore(self, record: SessionRecord, model: StepModel) -> Session:
        """Bring back a kept session under its own id; ValueError if its records do not fit ``model``."""
        if record.id in self._sessions:
            raise SessionExists(record.id)
        session = self._new(record.id, model, record.mode, self.clock() - record.idle_seconds, record.owner)
        try:
            session.restore(record.records)
        except (ValueError, IndexError, TypeError):
            session.close()
            raise
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
        """Drop this replica's copy of a session (its ledger keeps it), if it is still held."""
        if self.holds(session):
            self.remove(session.id)

    def get(self, session_id: str) -> Session:
        session = self._sessions.get(session_id)
        if session is None:
            raise SessionNotFound(session_id)
        return session

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
