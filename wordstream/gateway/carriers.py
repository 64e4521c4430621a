"""How the gateway carries its pages' sessions to the server: each on its own gRPC stream
(``--multiplex-streams 0``), or all of them on a few Multiplex streams (``--multiplex-streams K``:
each session on one of K streams, by a hash of its id; the words of pages typing at once leave
in one request).

Either way a page's session is a :class:`PageSession`: open or resume it, push words, rewind,
close or detach it. The client under it resumes dropped streams, sends again what a store lost
and replays a session the server lost into a new one (``on_replay``), on either carrier.
"""

from __future__ import annotations

from typing import Protocol

from wordstream.client import AsyncClient, AsyncSession, Multiplexer
from wordstream.client import types as t
from wordstream.client.multiplex import pick
from wordstream.client.protocol import ReplayCallback
from wordstream.shared import new_session_id


class PageSession(Protocol):
    """One page's session, whatever carries it."""

    @property
    def id(self) -> str: ...
    @property
    def model_name(self) -> str: ...
    @property
    def labels(self) -> list[str]: ...
    @property
    def words(self) -> list[str]: ...

    async def push(self, word: str) -> t.WordResult: ...
    async def rewind(self, words: int) -> tuple[int, int]: ...  # the session's words and steps after it
    async def reset(self) -> tuple[int, int]: ...
    async def close(self) -> None: ...
    async def detach(self) -> None: ...


class Carrier(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...

    async def open(self, model: str, on_replay: ReplayCallback) -> tuple[PageSession, list[t.Step]]: ...
    async def resume(self, session_id: str, on_replay: ReplayCallback) -> tuple[PageSession, list[t.Step]]: ...


class OwnStream:
    """A session on its own stream (the client's AsyncSession)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def id(self) -> str:
        return self.session.id

    @property
    def model_name(self) -> str:
        return self.session.model.name if self.session.model else ""

    @property
    def labels(self) -> list[str]:
        return self.session.labels

    @property
    def words(self) -> list[str]:
        return self.session.words

    async def push(self, word: str) -> t.WordResult:
        return await self.session.push(word)

    async def rewind(self, words: int) -> tuple[int, int]:
        await self.session.rewind(words)
        return len(self.session.words), len(await self.session.history())

    async def reset(self) -> tuple[int, int]:
        await self.session.reset()
        return len(self.session.words), len(await self.session.history())

    async def close(self) -> None:
        await self.session.close()

    async def detach(self) -> None:
        await self.session.detach()


class OwnStreams:
    """Every session on its own stream."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def open(self, model: str, on_replay: ReplayCallback) -> tuple[PageSession, list[t.Step]]:
        session = self.client.session(model=model, on_replay=on_replay)
        await session.open()
        return OwnStream(session), []

    async def resume(self, session_id: str, on_replay: ReplayCallback) -> tuple[PageSession, list[t.Step]]:
        session = self.client.resume(session_id, on_replay=on_replay)
        await session.open()
        return OwnStream(session), await session.history()


class OnMultiplex:
    """A session on one of the carrier's Multiplex streams; its id follows a replay (current())."""

    def __init__(self, mux: Multiplexer, session_id: str) -> None:
        self.mux, self.first_id = mux, session_id

    @property
    def id(self) -> str:
        return self.mux.current(self.first_id)

    @property
    def model_name(self) -> str:
        return self.mux.sessions[self.id].model

    @property
    def labels(self) -> list[str]:
        return self.mux.sessions[self.id].labels

    @property
    def words(self) -> list[str]:
        return self.mux.words(self.first_id)

    async def push(self, word: str) -> t.WordResult:
        return await self.mux.push(self.first_id, word)

    async def rewind(self, words: int) -> tuple[int, int]:
        position = await self.mux.rewind(self.first_id, words)
        return position.words, position.steps

    async def reset(self) -> tuple[int, int]:
        position = await self.mux.reset(self.first_id)
        return position.words, position.steps

    async def close(self) -> None:
        await self.mux.close(self.first_id)

    async def detach(self) -> None:
        await self.mux.detach(self.first_id)


class Multiplexed:
    """Every session on one of ``streams`` Multiplex streams, by a hash of its id (multiplex.pick)."""

    def __init__(self, client: AsyncClient, streams: int) -> None:
        self.muxes = [client.multiplexer() for _ in range(streams)]

    def carrying(self, session_id: str) -> Multiplexer:
        return self.muxes[pick(session_id, len(self.muxes))]

    async def start(self) -> None:
        for mux in self.muxes:
            await mux.start()

    async def stop(self) -> None:
        """End the streams; their sessions stay on the server, detached, resumable."""
        for mux in self.muxes:
            await mux.stop()

    async def open(self, model: str, on_replay: ReplayCallback) -> tuple[PageSession, list[t.Step]]:
        session_id = new_session_id()
        mux = self.carrying(session_id)
        await mux.open(model, session_id=session_id, on_replay=on_replay)
        return OnMultiplex(mux, session_id), []

    async def resume(self, session_id: str, on_replay: ReplayCallback) -> tuple[PageSession, list[t.Step]]:
        mux = self.carrying(session_id)
        _, steps = await mux.attach(session_id, on_replay=on_replay)
        return OnMultiplex(mux, session_id), steps


def carrier(client: AsyncClient, multiplex_streams: int) -> Carrier:
    """The gateway's carrier: ``multiplex_streams`` Multiplex streams, or (0) a stream per session."""
    if multiplex_streams < 0:
        raise ValueError(f"multiplex_streams must be 0 or more, got {multiplex_streams}")
    return Multiplexed(client, multiplex_streams) if multiplex_streams else OwnStreams(client)
