"""The ledger of a replica on its own: sessions live in this process's memory, and with
``--state-dir`` they are saved to a state file at shutdown and read back at start (persistence.py),
so a restart loses nothing. No other replica shares them, so there is nothing to fence and
nothing to write per word. No grpc here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from wordstream.modelfile import StepModel
from wordstream.server import persistence
from wordstream.server.errors import SessionNotFound
from wordstream.server.ledger import Claim
from wordstream.server.sessions import Session
from wordstream.server.store import SessionStore

log = logging.getLogger("wordstream.server")


class LocalLedger:
    """Memory, with an optional state-file snapshot (``state_dir``; empty: none)."""

    watched = False

    def __init__(self, state_dir: str = "") -> None:
        self.state_dir = Path(state_dir) if state_dir else None
        self.description = f"memory, saved to {self.state_dir}" if self.state_dir else "memory"

    async def start(self, store: SessionStore, models: Mapping[str, StepModel]) -> None:
        if self.state_dir:
            persistence.load(store, models, self.state_dir)

    async def stop(self, store: SessionStore) -> None:
        if self.state_dir:
            path = persistence.save(store, self.state_dir)
            log.info("sessions saved", extra={"event": "save", "sessions": len(store), "file": str(path)})

    async def healthy(self) -> bool:
        return True

    async def create(self, session: Session) -> None:
        pass  # the store already holds it, and refused an id in use

    async def append(self, session: Session, before: int) -> None:
        pass

    async def append_many(self, writes: list[tuple[Session, int]]) -> list[BaseException | None]:
        return [None] * len(writes)

    async def truncate(self, session: Session, before: int) -> None:
        pass

    async def take(self, session_id: str, owner: str | None, held: str | None) -> Claim:
        """Only this replica's copy exists: it is current, or the session is unknown."""
        if held is None:
            raise SessionNotFound(session_id)
        return Claim(held, None)

    async def look(self, session_id: str, owner: str | None, held: str | None) -> Claim:
        return await self.take(session_id, owner, held)

    async def delete(self, session_id: str, owner: str | None) -> None:
        pass

    async def detach(self, session: Session) -> None:
        pass

    async def refresh(self, sessions: list[Session]) -> None:
        pass
