"""The port for where sessions are kept beyond one stream: the service writes through it, always.

The store (store.py) holds the sessions this replica works on now; a ledger keeps them so they
outlive a restart (local_ledger.py: memory, snapshotted to a state file at shutdown) or this
replica itself (redis_ledger.py: every word written through before it is answered). The
service calls every method unconditionally and never knows which implementation it has;
``app.start`` picks one from the settings (``app.ledger_for``).

Fencing, for ledgers shared by replicas: the replica that opens or takes a session holds its
epoch; every write names that epoch and the word count it believes the ledger has, and a
write from a replica that lost the session is refused (SessionMoved): the replica drops its
copy and the client resumes. A ledger no other replica shares has nothing to fence.

Errors are the domain's (errors.py): SessionNotFound, NotOwner, SessionExists, SessionMoved,
StoreUnavailable. No grpc here.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from wordstream.modelfile import StepModel
from wordstream.server.sessions import Session, SessionRecord
from wordstream.server.store import SessionStore


class LedgerRefused(ValueError):
    """The store refused this server at start (its credentials); the message says what to check."""


def first_epoch() -> str:
    """The epoch of a session just opened: take 1 and a random nonce, so no two opens or takes
    ever hold the same epoch (redis_ledger.py's takes make ``<n>.<nonce>`` the same way)."""
    return "1." + secrets.token_urlsafe(9)


@dataclass(frozen=True)
class Claim:
    """A ledger's answer to a take or a look: the epoch that holds the session now, and the kept
    session unless the caller's copy (at the epoch it named) is current."""

    epoch: str
    record: SessionRecord | None  # None: the caller's copy is current


class Ledger(Protocol):
    """Where sessions are kept; see the module docstring."""

    description: str  # for the logs: what keeps the sessions (never a password)
    watched: bool  # whether it can stop answering (health is NOT_SERVING while :meth:`healthy` is false)

    async def start(self, store: SessionStore, models: Mapping[str, StepModel]) -> None:
        """Called once before serving (a snapshot is read back into ``store`` here)."""

    async def stop(self, store: SessionStore) -> None:
        """Called once after the last stream ended."""

    async def healthy(self) -> bool:
        """Whether it answers now."""

    async def create(self, session: Session) -> None:
        """Keep a new session (held at ``session.epoch``); SessionExists if its id is in use anywhere."""

    async def append(self, session: Session, before: int) -> None:
        """Keep the session's words from word ``before`` on (it had ``before`` words); they are kept
        when this returns."""

    async def append_many(self, writes: list[tuple[Session, int]]) -> list[BaseException | None]:
        """:meth:`append` for several sessions at once (a Multiplex request's words), each
        ``(session, before)``; returns each write's error, or None where it was kept."""

    async def truncate(self, session: Session, before: int) -> None:
        """Keep a rewind or reset: the session now has ``len(session.words)`` of its ``before`` words."""

    async def take(self, session_id: str, owner: str | None, held: str | None) -> Claim:
        """Take the session over for a resume here (a new epoch); ``held`` is the epoch of this
        replica's copy, None without one. SessionNotFound or NotOwner if it cannot be had."""

    async def look(self, session_id: str, owner: str | None, held: str | None) -> Claim:
        """Read the session without taking it (GetSession, CloseSession)."""

    async def delete(self, session_id: str, owner: str | None) -> None:
        """Forget a session (CloseSession)."""

    async def detach(self, session: Session) -> None:
        """Its stream left; the ledger's own failures here are only logged."""

    async def refresh(self, sessions: list[Session]) -> None:
        """Keep the sessions attached here alive (the idle timeout counts from now)."""
