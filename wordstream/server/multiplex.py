"""One Multiplex stream: many sessions' entries on one gRPC stream (proto: ``rpc Multiplex``).

A reader takes requests off the stream and queues each entry in its session's lane. A lane
runs one entry at a time, so a session's entries are answered in order; every lane with
work gives its next entry to the next round, so sessions take turns (round robin) and a
busy one cannot hold the others back:

- the round's words (``word`` entries) run as one unit: ``Wordstream.push_many`` steps them
  together, one Future for all, and one response carries all their answers;
- every other entry (open, resume, paste, rewind, reset, detach, close) runs as a unit of its
  own, so a long paste or a slow store call delays its own session only.

A unit's answer is one ``MultiplexResponse``. Errors are per entry and in-band, as
``StreamResponse.error`` with the status name a session's own stream would end with.
At most ``--multiplex-max-inflight`` entries are read and not yet answered: the reader waits
for room before it reads the next request. No protobuf building on the word path: the word
answers are answers.py's bytes, each wrapped as ``MultiplexResponse.results``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from wordstream.server import answers, errors
from wordstream.server.history import HistoryMode
from wordstream.server.registration import Malformed
from wordstream.server.service import Wordstream
from wordstream.server.sessions import Session
from wordstream.server.status import INTERNAL_MESSAGE, status_of
from wordstream.server.store import check_session_id
from wordstream.v1 import wordstream_pb2 as pb

log = logging.getLogger("wordstream.transport")

Modes = Mapping[Any, HistoryMode]  # the proto's HistoryMode -> the domain's
Count = Callable[[errors.ServiceError], None]  # a refused entry's error (counted, an attempt logged)
Unit = list[Any]  # the entries one unit answers


def response(results: list[bytes]) -> bytes:
    """``MultiplexResponse{results}`` from encoded ``StreamResponse`` messages."""
    return b"".join([answers.message(1, result) for result in results])


class Multiplexed:
    """What one Multiplex stream holds: its sessions, their lanes, the entries in flight."""

    def __init__(
        self,
        service: Wordstream,
        word_answers: dict[str, answers.WordAnswers],
        owner: str | None,
        modes: Modes,
        count: Count,
    ) -> None:
        self.service, self.word_answers, self.owner, self.modes, self.count = (
            service,
            word_answers,
            owner,
            modes,
            count,
        )
        self.max_inflight = service.settings.multiplex_max_inflight
        self.sessions: dict[str, Session] = {}  # open on this stream
        self.fields: dict[str, bytes] = {}  # each open session's id as the answers' field, encoded once
        self.lanes: dict[str, deque[pb.Entry]] = {}  # session id -> its entries not yet started
        self.ready: dict[str, None] = {}  # lanes with an entry to start and none running (in order)
        self.running: set[str] = set()  # lanes with an entry running
        self.inflight = 0  # entries read and not yet answered
        self.room = asyncio.Event()
        self.out: asyncio.Queue[tuple[bytes, int] | None] = asyncio.Queue()  # a response, the entries it answers
        self.units: set[asyncio.Future[list[bytes]]] = set()
        self.reading = True
        self.finished = False

    # --- the stream's two sides -------------------------------------------------------------

    async def read(self, requests: AsyncIterator[Any]) -> None:
        """Queue every request's entries, waiting for room under the in-flight bound."""
        try:
            async for request in requests:
                if isinstance(request, Malformed):
                    self._refuse_all([], errors.MalformedRequest(request.error))
                    continue
                entries = list(request.entries)
                if len(entries) > self.max_inflight:
                    self._refuse_all(entries, errors.TooManyEntries(len(entries), self.max_inflight))
                    continue
                while self.inflight and self.inflight + len(entries) > self.max_inflight:
                    self.room.clear()
                    await self.room.wait()
                self.inflight += len(entries)
                for entry in entries:
                    session_id = entry.session_id  # read once: each read of a protobuf string makes a new str
                    lane = self.lanes.get(session_id)
                    if lane is None:
                        lane = self.lanes[session_id] = deque()
                    lane.append(entry)
                    if session_id not in self.running:
                        self.ready[session_id] = None
                self._schedule()
        finally:
            self.reading = False
            self._finish_if_done()

    async def next_response(self) -> tuple[bytes, int] | None:
        """The next response and the entries it answers, as units finish; None once the client is
        done writing and all is answered. Entries count as in flight until :meth:`sent` (their
        response handed to gRPC): a client that does not read holds the stream back, not the
        server's memory."""
        return await self.out.get()

    def sent(self, entries: int) -> None:
        self.inflight -= entries
        self.room.set()
        self._finish_if_done()

    def stop(self) -> None:
        """The stream ended: cancel what still runs; sessions still open are detached."""
        for unit in list(self.units):
            unit.cancel()
        for session in self.sessions.values():
            self.service.detach(session)
        self.sessions.clear()

    # --- scheduling -------------------------------------------------------------------------

    def _schedule(self) -> None:
        """Start every ready lane's next entry: the words as one unit, the rest one unit each."""
        if not self.ready:
            return
        words: Unit = []
        for session_id in self.ready:
            entry = self.lanes[session_id].popleft()
            self.running.add(session_id)
            if entry.WhichOneof("kind") == "word" and session_id in self.sessions:
                words.append(entry)
            else:
                self._start([entry], self._one(entry))
        self.ready.clear()
        if words:
            self._start(words, self._words(words))

    def _start(self, unit: Unit, work: Awaitable[list[bytes]]) -> None:
        task = asyncio.ensure_future(work)
        self.units.add(task)
        task.add_done_callback(lambda done: self._done(unit, done))

    def _done(self, unit: Unit, task: asyncio.Future[list[bytes]]) -> None:
        self.units.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:  # a fault of the server's own: each entry learns it, generically
            log.error("multiplex entries failed", exc_info=error, extra={"event": "internal_error"})
            results = [answers.error(e.seq, e.session_id, "INTERNAL", INTERNAL_MESSAGE) for e in unit]
            for _ in unit:
                self.count(errors.ServiceError())
        else:
            results = task.result()
        self.out.put_nowait((response(results), len(unit)))
        for entry in unit:
            session_id = entry.session_id
            self.running.discard(session_id)
            if self.lanes[session_id]:
                self.ready[session_id] = None
            else:
                del self.lanes[session_id]
        self._schedule()

    def _finish_if_done(self) -> None:
        if not self.reading and not self.inflight and not self.finished:
            self.finished = True
            self.out.put_nowait(None)

    def _refuse_all(self, entries: list[Any], error: errors.ServiceError) -> None:
        results = [self._error(e.seq, e.session_id, error) for e in entries] or [self._error(0, "", error)]
        self.out.put_nowait((response(results), 0))

    def _error(self, seq: int, session_id: str, error: errors.ServiceError) -> bytes:
        self.count(error)
        return answers.error(seq, session_id, status_of(error).name, str(error))

    # --- the units ----------------------------------------------------------------------------

    async def _words(self, entries: Unit) -> list[bytes]:
        """One word of each of several open sessions, stepped together."""
        work = [(self.sessions[e.session_id], [e.word]) for e in entries]
        results = await self.service.push_many(work)
        out = []
        encoders = self.word_answers
        for entry, (session, _), result in zip(entries, work, results):
            if isinstance(result, errors.ServiceError):
                out.append(self._failed(entry, result))
                continue
            seq, field, encode = entry.seq, self.fields[session.id], encoders[session.model.name].word
            out += [encode(seq, field, session, update) for update in result]
        return out

    async def _one(self, entry: pb.Entry) -> list[bytes]:
        try:
            return await self._entry(entry)
        except errors.ServiceError as e:
            return [self._failed(entry, e)]

    def _failed(self, entry: pb.Entry, error: errors.ServiceError) -> bytes:
        """An entry's error; a session the store did not keep (or that is gone) is open here no longer."""
        if isinstance(error, errors.StreamRefused) and entry.session_id in self.sessions:
            session = self.sessions[entry.session_id]
            if not self.service.store.holds(session):
                del self.sessions[entry.session_id], self.fields[entry.session_id]
        return self._error(entry.seq, entry.session_id, error)

    async def _entry(self, entry: pb.Entry) -> list[bytes]:
        kind, session_id, seq = entry.WhichOneof("kind"), entry.session_id, entry.seq
        if kind is None:
            raise errors.BadWord("empty entry: set one of open, resume, word, paste, rewind, reset, detach, close")
        if kind == "open":
            if session_id in self.sessions:
                raise errors.OpenHere(session_id)
            session = await self.service.open(
                entry.open.model, self.modes[entry.open.history], self.owner, session_id or None
            )
            return [self._attached(seq, session, resumed=False)]
        if kind == "resume":
            wanted = entry.resume.session_id
            if wanted and session_id and wanted != session_id:
                raise errors.BadSessionId("the entry and its resume name different sessions")
            session_id = session_id or wanted
            if session_id in self.sessions:
                raise errors.OpenHere(session_id)
            history = entry.resume.history
            mode = None if history == pb.HISTORY_MODE_UNSPECIFIED else self.modes[history]
            session = await self.service.resume(session_id, mode, self.owner)
            return [self._attached(seq, session, resumed=True)]
        session = self._open_here(session_id)
        if kind in ("word", "paste"):
            words = [entry.word] if kind == "word" else list(entry.paste.words)
            encode = self.word_answers[session.model.name].word
            updates = await self.service.push_words(session, words)
            return [encode(seq, self.fields[session_id], session, update) for update in updates]
        if kind in ("rewind", "reset"):
            await self.service.rewind(session, entry.rewind.words if kind == "rewind" else None)
            return [answers.rewound(seq, session)]
        if kind == "close":
            await self.service.close(session_id, session.owner)  # the stream already proved its owner
        else:
            self.service.detach(session)
        del self.sessions[session_id], self.fields[session_id]
        return [answers.closed(seq, session, "closed" if kind == "close" else "detached")]

    def _open_here(self, session_id: str) -> Session:
        session = self.sessions.get(session_id)
        if session is None:
            if not session_id:
                raise errors.BadSessionId("the entry names no session (only open may leave it empty)")
            check_session_id(session_id)
            raise errors.NotOpenHere(session_id)
        return session

    def _attached(self, seq: int, session: Session, resumed: bool) -> bytes:
        self.sessions[session.id], self.fields[session.id] = session, answers.session_id(session.id)
        return answers.opened(seq, session, resumed, self.service.settings.idle_timeout)
