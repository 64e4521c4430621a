"""Many sessions on one Multiplex stream: entries in, results out, a future per entry.

    async with AsyncClient("localhost:50051") as client, client.multiplexer() as mux:
        ids = await asyncio.gather(*(mux.open() for _ in range(100)))
        results = await asyncio.gather(*(mux.push(i, "good") for i in ids))   # one request

Entries written in the same round of the event loop leave in one request (of at most
``max_entries``, 250: the server refuses a request over its ``--multiplex-max-inflight`` whole,
and holds back one that would pass it until answers have left), so one word of each of 100
sessions is one message and one answer. Each call returns its entry's result.

What the client keeps per session is its words (the text is the log), as AsyncSession does:
- the stream drops: it is reopened under the same key (``x-session-id``: a balancer sends it to
  the same replica while that one lives), every open session is resumed and brought to this
  client's words (words the server read but never answered are rewound, a tail a store lost
  is sent again), and the entries not yet answered are sent again;
- an entry is answered UNAVAILABLE (the store did not keep its word, or another replica took the
  session): its session is resumed and brought to the client's words the same way, and the
  entry is sent again;
- the server no longer has a session at all (a restart without a store, expiry): its words are
  replayed into a new session on this stream, the session's ``on_replay`` is told (old id, new
  id, words), and the old id goes on naming it here (:meth:`Multiplexer.current` says its id now).
- the server stays away longer than the client's ``reconnect_timeout``: the entries waiting fail
  UNAVAILABLE (none of them is sent later), and the next entry starts the recovery again.
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
    ReplayCallback,
    words_of,
)
from wordstream.shared import new_session_id, words_sha256
from wordstream.v1 import wordstream_pb2 as pb

log = logging.getLogger("wordstream.client")
ATTEMPTS = 4  # sends of one entry, recovering between them, before its error is raised
MAX_ENTRIES = 250  # entries per request: a request over the server's --multiplex-max-inflight (1000) is refused whole


@dataclass
class _Session:
    model: str
    mode: str
    labels: list[str] = field(default_factory=list)
    words: list[str] = field(default_factory=list)
    on_replay: ReplayCallback | None = None
    former: list[str] = field(default_factory=list)  # the ids it had before replays


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

    def __init__(self, client: Connection, key: str | None = None, max_entries: int = MAX_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.client = client
        self.key = key or new_session_id()
        self.max_entries = max_entries  # the most entries one request carries; more wait for the next
        self.sessions: dict[str, _Session] = {}
        self.replica = ""  # the server that serves this stream now (x-wordstream-replica)
        self.recoveries = 0  # times the stream was reopened
        self.resent = 0  # words sent again because a server held fewer or other words
        self.retried = 0  # entries sent again after an in-band UNAVAILABLE
        self.replays = 0  # sessions the server had lost, replayed into new ones
        self._renamed: dict[str, str] = {}  # a replayed session's old id -> its new one
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
        self._down = False  # the last recovery ran out of time: the next entry starts another

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

    async def open(
        self,
        model: str = "",
        history: str = "delta",
        session_id: str | None = None,
        on_replay: ReplayCallback | None = None,
    ) -> str:
        """A new session (under ``session_id``, or 192 random bits this client picks); its id.
        ``on_replay`` is told if the server loses it and its words are replayed into a new one."""
        if history not in HISTORY_MODES:
            raise ValueError(f"history must be one of {', '.join(HISTORY_MODES)}, got {history!r}")
        session_id = session_id or new_session_id()
        opened = await self._one(
            pb.Entry(session_id=session_id, open=pb.Open(model=model, history=HISTORY_MODES[history]))
        )
        model_info = opened.opened.model
        self.sessions[session_id] = _Session(model_info.name, history, list(model_info.labels), on_replay=on_replay)
        return session_id

    async def resume(
        self, session_id: str, history: str = "delta", on_replay: ReplayCallback | None = None
    ) -> pb.Opened:
        """Attach an existing session to this stream (taken over from wherever it was)."""
        return (await self.attach(session_id, history, on_replay))[0]

    async def attach(
        self, session_id: str, history: str = "delta", on_replay: ReplayCallback | None = None
    ) -> tuple[pb.Opened, list[t.Step]]:
        """:meth:`resume`, with the session's history as the server holds it (read once: the
        client's words are made from it)."""
        opened = (
            await self._one(pb.Entry(session_id=session_id, resume=pb.Resume(history=HISTORY_MODES[history])))
        ).opened
        steps: list[t.Step] = (await self.client.get_session(session_id))["history"]
        labels = list(opened.model.labels)
        self.sessions[session_id] = _Session(opened.model.name, history, labels, words_of(steps), on_replay)
        return opened, steps

    async def history(self, session_id: str) -> list[t.Step]:
        """The server's record of every step of a session (GetSession)."""
        steps: list[t.Step] = (await self.client.get_session(self.current(session_id)))["history"]
        return steps

    def current(self, session_id: str) -> str:
        """The id a session has now: a session the server lost was replayed into a new one."""
        while session_id in self._renamed:
            session_id = self._renamed[session_id]
        return session_id

    async def push(self, session_id: str, word: str) -> t.WordResult:
        """One word of a session; its result."""
        return self._word(await self._one(pb.Entry(session_id=self.current(session_id), word=word)))

    async def paste(self, session_id: str, words: Sequence[str]) -> list[t.WordResult]:
        entry = pb.Entry(session_id=self.current(session_id), paste=pb.Paste(words=words))
        return [self._word(r) for r in await self._entry(entry, len(words))]

    async def rewind(self, session_id: str, words: int = 1) -> pb.Position:
        """Undo the last ``words`` words; the session's words and steps after it."""
        return self._rewound(
            await self._one(pb.Entry(session_id=self.current(session_id), rewind=pb.Rewind(words=words)))
        )

    async def reset(self, session_id: str) -> pb.Position:
        return self._rewound(await self._one(pb.Entry(session_id=self.current(session_id), reset=pb.Reset())))

    async def detach(self, session_id: str) -> None:
        """Let go of a session; it stays on the server, resumable (here or on any stream)."""
        session_id = self.current(session_id)
        await self._one(pb.Entry(session_id=session_id, detach=pb.Detach()))
        self._leave(session_id)

    async def close(self, session_id: str) -> None:
        """End a session on the server."""
        session_id = self.current(session_id)
        await self._one(pb.Entry(session_id=session_id, close=pb.Close()))
        self._leave(session_id)

    def _leave(self, session_id: str) -> None:
        """Forget a session that left this stream, and the ids it had before replays."""
        session = self.sessions.pop(session_id, None)
        for name in session.former if session else ():
            self._renamed.pop(name, None)

    def words(self, session_id: str) -> list[str]:
        """The words of a session this client has had answered, in order."""
        return list(self.sessions[self.current(session_id)].words)

    # --- results into the client's records ----------------------------------------------------

    def _word(self, response: pb.StreamResponse) -> t.WordResult:
        session_id = response.session_id
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

    def _rewound(self, response: pb.StreamResponse) -> pb.Position:
        del self.sessions[response.session_id].words[response.rewound.words :]
        return response.rewound

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
                known = self.current(entry.session_id) in self.sessions and kind not in ("open", "resume")
                if self._closed or self._down or not known or pending.attempts >= ATTEMPTS:
                    raise
                await self._resync_session(entry.session_id)
                entry.session_id = self.current(entry.session_id)  # replayed into a new session
                self.retried += 1
            finally:
                self._pending.pop(entry.seq, None)

    def _queue(self, entry: pb.Entry) -> None:
        self._outbox.append(entry)
        if self._down and self._recovering is None:  # the server was away too long: try again now
            self._down = False
            self._healthy.clear()
            self._recovering = asyncio.ensure_future(self._recover())
        if not self._flushing:
            self._flushing = True
            asyncio.ensure_future(self._flush())  # runs after the callers ready in this round

    async def _flush(self) -> None:
        try:
            await self._healthy.wait()
            while self._outbox and self._healthy.is_set():
                entries, self._outbox = self._outbox, []
                entries = [e for e in entries if e.seq in self._pending and not self._pending[e.seq].future.done()]
                for entry in entries:  # (an entry whose caller has its answer, or error, never leaves)
                    self._pending[entry.seq].sent = True
                try:
                    for start in range(0, len(entries), self.max_entries):  # the server takes them as it can
                        await self._write(entries[start : start + self.max_entries])
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
        """For good (the server refused the token): every entry waiting fails with why."""
        self._closed = True
        self._give_up(error)

    def _give_up(self, error: errors.WordstreamError) -> None:
        """A recovery ran out of ``reconnect_timeout``: what waits fails with why, nothing of it is
        sent later, and the next entry (a caller trying again) starts another recovery."""
        self._down = not self._closed
        self._outbox.clear()
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
                    answers = await asyncio.gather(
                        *(
                            self._direct(pb.Entry(session_id=i, resume=pb.Resume(history=m)))
                            for i, m in zip(ids, modes)
                        ),
                        return_exceptions=True,
                    )
                    resumed = []
                    for session_id, answer in zip(ids, answers):
                        if isinstance(answer, (errors.Unavailable, errors.SessionBusy)):
                            raise answer  # the server or its store is not back yet: all again, later
                        if isinstance(answer, errors.NotFound):
                            await self._replay(session_id)
                        elif isinstance(answer, errors.WordstreamError):
                            self._drop(session_id, answer)  # refused (another token's, say): its entries fail
                        elif isinstance(answer, BaseException):
                            raise answer
                        else:
                            resumed.append((session_id, answer[0].opened))
                    await asyncio.gather(*(self._resync(i, opened) for i, opened in resumed))
                    break
                except (errors.Unavailable, errors.SessionBusy):
                    if loop.time() + delay > deadline:
                        raise
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 1.0)
        except errors.WordstreamError as e:
            self._give_up(e)
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
        session_id = self.current(session_id)
        mode = HISTORY_MODES[self.sessions[session_id].mode]
        while True:
            try:
                opened = await self._one(pb.Entry(session_id=session_id, resume=pb.Resume(history=mode)))
                await self._resync(session_id, opened.opened)
                return
            except errors.NotFound:
                await self._replay(session_id)
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

    async def _replay(self, old_id: str) -> None:
        """The server no longer has ``old_id``: open a new session on this stream, send it this
        client's words, and name it under the old id from now on (entries waiting included)."""
        session = self.sessions[old_id]
        new_id = new_session_id()
        open_entry = pb.Open(model=session.model, history=HISTORY_MODES[session.mode])
        await self._direct(pb.Entry(session_id=new_id, open=open_entry))
        del self.sessions[old_id]
        self.sessions[new_id] = session
        self._renamed[old_id] = new_id
        session.former.append(old_id)
        for entry in [p.entry for p in self._pending.values()] + self._outbox:
            if entry.session_id == old_id:
                entry.session_id = new_id
        words = session.words
        for start in range(0, len(words), REPLAY_CHUNK):
            chunk = words[start : start + REPLAY_CHUNK]
            await self._direct(pb.Entry(session_id=new_id, paste=pb.Paste(words=chunk)), len(chunk))
        self.replays += 1
        log.warning("session %s was lost by the server; replayed %d words into %s", old_id[:8], len(words), new_id[:8])
        if session.on_replay:
            session.on_replay(old_id, new_id, len(words))

    def _drop(self, session_id: str, error: errors.WordstreamError) -> None:
        """A session the server refuses to resume: it leaves this stream, and its entries fail with why."""
        self._leave(session_id)
        for pending in self._pending.values():
            if pending.entry.session_id == session_id and not pending.future.done():
                pending.future.set_exception(error)
