"""Many sessions on one Multiplex stream: entries in, results out, a future per entry.

    async with AsyncClient("localhost:50051") as client, client.multiplexer() as mux:
        ids = await asyncio.gather(*(mux.open() for _ in range(100)))
        results = await asyncio.gather(*(mux.push(i, "good") for i in ids))   # one request

Entries written in the same round of the event loop leave in one request, so one word of
each of 100 sessions is one message and one answer. Each call returns its entry's result.

What the client keeps per session is its words (the text is the log), as AsyncSession does:
- the stream drops: it is reopened under the same key (``x-session-id``: a balancer sends it to
  the same replica while that one lives), every open session is resumed and brought to this
  client's words (words the server read but never answered are rewound, a tail a store lost
  is sent again), and the entries not yet answered are sent again;
- an entry is answered UNAVAILABLE (the store did not keep its word, or another replica took the
  session): its session is resumed and brought to the client's words the same way, and the
  entry is sent again.
A caller that wants its sessions spread over replicas opens K multiplexers (K stream keys)
and puts each session on one of them by hash (:func:`pick`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from wordstream.client import errors
from wordstream.client import types as t
from wordstream.client.protocol import (
    HISTORY_MODES,
    REPLAY_CHUNK,
    REPLICA_HEADER,
    SESSION_ID_HEADER,
    Connection,
    words_of,
)
from wordstream.shared import new_session_id, words_sha256
from wordstream.v1 import wordstream_pb2 as pb

log = logging.getLogger("wordstream.client")
ATTEMPTS = 4  # sends of one entry, recovering between them, before its error is raised


@dataclass
class _Session:
    model: str
    mode: str
    labels: list[str] = field(default_factory=list)
    words: list[str] = field(default_factory=list)


@dataclass
class _Pending:
    entry: pb.Entry
    answers: int  # results it gets (a paste: one per word)
    future: asyncio.Future[list[pb.StreamResponse]]
    results: list[pb.StreamResponse] = field(default_factory=list)
    attempts: int = 1
    direct: bool = False  # one of a recovery's own entries
    sent: bool = False  # written to the stream


def pick(session_id: str, streams: int) -> int:
    """Which of ``streams`` multiplexers carries a session: a stable hash of its id."""
    return int.from_bytes(hashlib.sha256(session_id.encode()).digest()[:8], "big") % streams


class Multiplexer:
    """One Multiplex stream and the sessions on it (see the module docstring)."""

    def __init__(self, client: Connection, key: str | None = None) -> None:
        self.client = client
        self.key = key or new_session_id()
        self.sessions: dict[str, _Session] = {}
        self.replica = ""  # the server that serves this stream now (x-wordstream-replica)
        self.recoveries = 0  # times the stream was reopened
        self.resent = 0  # words sent again because a server held fewer or other words
        self.retried = 0  # entries sent again after an in-band UNAVAILABLE
        self._call: Any = None
        self._ended: asyncio.Future[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[int, _Pending] = {}
        self._outbox: list[pb.Entry] = []
        self._flushing = False
        self._writing = asyncio.Lock()
        self._seq = 0
        self._healthy = asyncio.Event()  # clear while the stream is being reopened
        self._recovering: asyncio.Task[None] | None = None
        self._closed = False

    async def __aenter__(self) -> Multiplexer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        self._open_call()
        self._healthy.set()

    async def stop(self) -> None:
        """End the stream: its sessions stay on the server, detached, to be resumed."""
        self._closed = True
        for task in (self._reader, self._recovering):
            if task is not None:
                task.cancel()
        if self._call is not None:
            self._call.cancel()
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(errors.Unavailable("the multiplexer was stopped"))

    # --- what callers use -------------------------------------------------------------------

    async def open(self, model: str = "", history: str = "delta", session_id: str | None = None) -> str:
        """A new session (under ``session_id``, or 192 random bits this client picks); its id."""
        if history not in HISTORY_MODES:
            raise ValueError(f"history must be one of {', '.join(HISTORY_MODES)}, got {history!r}")
        session_id = session_id or new_session_id()
        opened = await self._one(
            pb.Entry(session_id=session_id, open=pb.Open(model=model, history=HISTORY_MODES[history]))
        )
        self.sessions[session_id] = _Session(opened.opened.model.name, history, list(opened.opened.model.labels))
        return session_id

    async def resume(self, session_id: str, history: str = "delta") -> pb.Opened:
        """Attach an existing session to this stream (taken over from wherever it was)."""
        opened = (
            await self._one(pb.Entry(session_id=session_id, resume=pb.Resume(history=HISTORY_MODES[history])))
        ).opened
        steps = (await self.client.get_session(session_id))["history"]
        self.sessions[session_id] = _Session(opened.model.name, history, list(opened.model.labels), words_of(steps))
        return opened

    async def push(self, session_id: str, word: str) -> t.WordResult:
        """One word of a session; its result."""
        return self._word(session_id, await self._one(pb.Entry(session_id=session_id, word=word)))

    async def paste(self, session_id: str, words: Sequence[str]) -> list[t.WordResult]:
        results = await self._entry(pb.Entry(session_id=session_id, paste=pb.Paste(words=words)), len(words))
        return [self._word(session_id, r) for r in results]

    async def rewind(self, session_id: str, words: int = 1) -> None:
        self._rewound(session_id, await self._one(pb.Entry(session_id=session_id, rewind=pb.Rewind(words=words))))

    async def reset(self, session_id: str) -> None:
        self._rewound(session_id, await self._one(pb.Entry(session_id=session_id, reset=pb.Reset())))

    async def detach(self, session_id: str) -> None:
        """Let go of a session; it stays on the server, resumable (here or on any stream)."""
        await self._one(pb.Entry(session_id=session_id, detach=pb.Detach()))
        self.sessions.pop(session_id, None)

    async def close(self, session_id: str) -> None:
        """End a session on the server."""
        await self._one(pb.Entry(session_id=session_id, close=pb.Close()))
        self.sessions.pop(session_id, None)

    def words(self, session_id: str) -> list[str]:
        """The words of a session this client has had answered, in order."""
        return list(self.sessions[session_id].words)

    # --- results into the client's records ----------------------------------------------------

    def _word(self, session_id: str, response: pb.StreamResponse) -> t.WordResult:
        session = self.sessions[session_id]
        result = response.word
        session.words.append(result.word)
        steps = [t.step(s, session.labels) for s in result.history.steps]
        return t.WordResult(
            session_id,
            result.word_index,
            result.word,
            [t.token(x) for x in result.tokens],
            t.output(result.output, session.labels) if result.HasField("output") else None,
            t.state(result.state),
            steps[len(steps) - len(result.tokens) :] if steps else [],
            result.history.length,
        )

    def _rewound(self, session_id: str, response: pb.StreamResponse) -> None:
        del self.sessions[session_id].words[response.rewound.words :]

    # --- entries out, results in -----------------------------------------------------------------

    async def _one(self, entry: pb.Entry) -> pb.StreamResponse:
        return (await self._entry(entry, 1))[0]

    async def _entry(self, entry: pb.Entry, answers: int) -> list[pb.StreamResponse]:
        """Send an entry (with the others of this round, in one request); its results, or its error.
        An UNAVAILABLE answer recovers the session and sends the entry again (ATTEMPTS in all)."""
        attempts = 0
        while True:
            if self._closed:
                raise errors.Unavailable("the multiplexer was stopped")
            attempts += 1
            self._seq += 1
            entry.seq = self._seq
            pending = _Pending(entry, answers, asyncio.get_running_loop().create_future(), attempts=attempts)
            self._pending[entry.seq] = pending
            self._queue(entry)
            try:
                return await pending.future
            except errors.Unavailable:
                kind = entry.WhichOneof("kind")
                known = entry.session_id in self.sessions and kind not in ("open", "resume")
                if self._closed or not known or pending.attempts >= ATTEMPTS:
                    raise
                await self._resync_session(entry.session_id)
                self.retried += 1
            finally:
                self._pending.pop(entry.seq, None)

    def _queue(self, entry: pb.Entry) -> None:
        self._outbox.append(entry)
        if not self._flushing:
            self._flushing = True
            asyncio.ensure_future(self._flush())  # runs after the callers ready in this round

    async def _flush(self) -> None:
        try:
            await self._healthy.wait()
            while self._outbox and self._healthy.is_set():
                entries, self._outbox = self._outbox, []
                for entry in entries:
                    if entry.seq in self._pending:
                        self._pending[entry.seq].sent = True
                try:
                    await self._write(entries)
                except (grpc.RpcError, asyncio.InvalidStateError):
                    pass  # the stream ended: its reader starts the recovery, which sends them again
        finally:
            self._flushing = False

    async def _write(self, entries: list[pb.Entry]) -> None:
        """One request on the stream (gRPC takes one write at a time)."""
        async with self._writing:
            await self._call.write(pb.MultiplexRequest(entries=entries))

    def _open_call(self) -> None:
        self._call = self.client.stub.Multiplex(metadata=(*self.client.metadata, (SESSION_ID_HEADER, self.key)))
        self._ended = asyncio.get_running_loop().create_future()
        self._reader = asyncio.ensure_future(self._read(self._call, self._ended))

    async def _read(self, call: Any, ended: asyncio.Future[None]) -> None:
        """Hand each result to its entry; when the stream ends, recover (once at a time)."""
        error: errors.WordstreamError = errors.Unavailable("the server ended the stream")
        try:
            metadata = await call.initial_metadata()
            self.replica = next((str(v) for k, v in metadata or () if k == REPLICA_HEADER), "")
            async for response in call:
                for result in response.results:
                    self._result(result)
        except grpc.RpcError as e:
            error = errors.from_rpc_error(e)
        finally:
            ended.set_result(None)
        if error.code == "UNAUTHENTICATED":
            self._fail_all(error)
        elif call is self._call and not self._closed and self._recovering is None:
            self._healthy.clear()
            self._recovering = asyncio.ensure_future(self._recover())

    def _result(self, result: pb.StreamResponse) -> None:
        pending = self._pending.get(result.seq)
        if pending is None or pending.future.done():
            return
        if result.WhichOneof("kind") == "error":
            pending.future.set_exception(errors.from_code(result.error.code, result.error.message))
            return
        pending.results.append(result)
        if len(pending.results) == pending.answers:
            pending.future.set_result(pending.results)

    def _fail_all(self, error: errors.WordstreamError) -> None:
        self._closed = True
        for pending in list(self._pending.values()):
            if not pending.future.done():
                pending.future.set_exception(error)

    async def _recover(self) -> None:
        """Reopen the stream, resume and resync every session, then send what is unanswered again."""
        loop = asyncio.get_running_loop()
        deadline, delay = loop.time() + self.client.reconnect_timeout, 0.05
        try:
            while True:
                self._call.cancel()
                self._open_call()
                try:
                    ids = list(self.sessions)
                    modes = [HISTORY_MODES[self.sessions[i].mode] for i in ids]
                    opened = await asyncio.gather(
                        *(self._direct(pb.Entry(session_id=i, resume=pb.Resume(history=m))) for i, m in zip(ids, modes))
                    )
                    await asyncio.gather(*(self._resync(i, o[0].opened) for i, o in zip(ids, opened)))
                    break
                except (errors.Unavailable, errors.SessionBusy):
                    if loop.time() + delay > deadline:
                        raise
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 1.0)
        except errors.WordstreamError as e:
            self._fail_all(e)
            return
        finally:
            self._recovering = None
        self.recoveries += 1
        unanswered = [p for p in self._pending.values() if p.sent and not p.direct and not p.future.done()]
        for pending in unanswered:  # sent to the stream that dropped: send them again, first
            pending.results.clear()
            pending.sent = False
        self._outbox[:0] = [p.entry for p in unanswered]
        self._healthy.set()
        if self._outbox and not self._flushing:
            self._flushing = True
            asyncio.ensure_future(self._flush())

    async def _direct(self, entry: pb.Entry, answers: int = 1) -> list[pb.StreamResponse]:
        """Send one entry now, past the outbox (the recovery's own entries); Unavailable if the
        stream ends first."""
        self._seq += 1
        entry.seq = self._seq
        pending = _Pending(entry, answers, asyncio.get_running_loop().create_future(), direct=True)
        self._pending[entry.seq] = pending
        ended = self._ended
        assert ended is not None, "the stream is open"
        try:
            await self._write([entry])
            waiters: list[asyncio.Future[Any]] = [pending.future, ended]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            if not pending.future.done():
                raise errors.Unavailable("the stream dropped while recovering")
            return pending.future.result()
        except (grpc.RpcError, asyncio.InvalidStateError):
            raise errors.Unavailable("the stream dropped while recovering") from None
        finally:
            self._pending.pop(entry.seq, None)

    async def _resync_session(self, session_id: str) -> None:
        """Resume one session on this stream (after an UNAVAILABLE entry) and bring it to our words,
        trying again while the server or its store cannot, for ``reconnect_timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline, delay = loop.time() + self.client.reconnect_timeout, 0.05
        mode = HISTORY_MODES[self.sessions[session_id].mode]
        while True:
            try:
                opened = await self._one(pb.Entry(session_id=session_id, resume=pb.Resume(history=mode)))
                await self._resync(session_id, opened.opened)
                return
            except errors.Unavailable:
                if self._closed or loop.time() + delay > deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    async def _resync(self, session_id: str, opened: pb.Opened) -> None:
        """AsyncSession._resync over this stream: the server's words become this client's."""
        session = self.sessions[session_id]
        if opened.words_sha256 == words_sha256(session.words):
            return
        held = words_of((await self.client.get_session(session_id))["history"])
        common = 0
        while common < min(len(held), len(session.words)) and held[common] == session.words[common]:
            common += 1
        if len(held) > common:
            await self._direct(pb.Entry(session_id=session_id, rewind=pb.Rewind(words=len(held) - common)))
        mine = session.words[common:]
        for start in range(0, len(mine), REPLAY_CHUNK):
            chunk = mine[start : start + REPLAY_CHUNK]
            await self._direct(pb.Entry(session_id=session_id, paste=pb.Paste(words=chunk)), len(chunk))
        self.resent += len(mine)
        log.warning(
            "session %s: the server held %d of this client's words; %d sent again", session_id[:8], common, len(mine)
        )
