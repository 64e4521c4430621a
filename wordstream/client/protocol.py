"""What the client's two ways of carrying sessions share: the protocol's names and the session
bookkeeping both need (a session's own stream, _async.AsyncSession; many on one, multiplex.Multiplexer)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from wordstream.client import types as t
from wordstream.v1 import wordstream_pb2 as pb

HISTORY_MODES = {"delta": pb.HISTORY_MODE_DELTA, "full": pb.HISTORY_MODE_FULL, "none": pb.HISTORY_MODE_NONE}
SESSION_ID_HEADER = "x-session-id"
REPLICA_HEADER = "x-wordstream-replica"
REPLAY_CHUNK = 200  # words per paste when replaying a lost session
ReplayCallback = Callable[[str, str, int], None]  # (old session id, new session id, words replayed)


class Connection(Protocol):
    """What a Multiplexer needs of its client (AsyncClient is one)."""

    stub: Any
    metadata: tuple[tuple[str, str], ...]
    reconnect_timeout: float

    async def get_session(self, session_id: str, start: int = 0, end: int = 0) -> dict[str, Any]: ...


def words_of(steps: Sequence[t.Step]) -> list[str]:
    """The words of a history (every word has at least one step: the server refuses words without
    tokens), in order."""
    return [s.word for i, s in enumerate(steps) if i == 0 or s.word_index != steps[i - 1].word_index]
