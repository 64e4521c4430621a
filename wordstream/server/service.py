"""The Wordstream service: the domain behind the transport. No grpc here.

It ties the models, the session store and the batchers of model calls together; the
servicer (transport.py) only turns protobuf into these calls and the results back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable

from wordstream.modelfile import ModelError, StepModel
from wordstream.server import memory
from wordstream.server.batching import Batcher, Row
from wordstream.server.config import Settings
from wordstream.server.errors import (
    ModelNotFound,
    NotOwner,
    RejectedRequest,
    ServerFull,
    ServiceError,
    SessionBusy,
    SessionNotFound,
    SessionUnreadable,
    ShuttingDown,
)
from wordstream.server.history import HistoryMode, WordUpdate
from wordstream.server.ledger import Ledger, first_epoch
from wordstream.server.metrics import Metrics
from wordstream.server.sessions import Session, SessionRecord, SessionView
from wordstream.server.store import SessionStore, check_session_id
from wordstream.textcodec import Encoded

log = logging.getLogger("wordstream.sessions")


class Wordstream:
    def __init__(
        self,
        settings: Settings,
        models: dict[str, StepModel],
        store: SessionStore,
        ledger: Ledger,
        metrics: Metrics | None = None,
    ) -> None:
        if not models:
            raise ValueError(f"no servable models in {settings.models}")
        self.settings = settings
        self.models = models
        if settings.default_model not in models:
            raise ModelError(
                f"the default model {settings.default_model!r} is not among the models that loaded from "
                f"{settings.models} ({', '.join(sorted(models))}): its file is missing or was refused (the log "
                "says why); fix it or choose another with --default-model"
            )
        self.default_model = settings.default_model
        self.store = store
        self.metrics = metrics or Metrics()
        self.metrics.track_sessions(lambda: len(store))
        self.metrics.token_cache = self.token_cache
        self.batchers = {
            name: Batcher(
                model,
                store.bank(model),
                enabled=settings.batching,
                max_batch=settings.max_batch,
                max_wait=settings.max_wait,
                observe=self.metrics.batch_size.observe,
            )
            for name, model in models.items()
        }
        self.ledger = ledger
        self._background: set[asyncio.Future[None]] = set()
        self.accepting = True
        self.last_sweep = 0.0  # the store clock's time of the reaper's last sweep

    def token_cache(self) -> tuple[int, int]:
        """(hits, misses) of every model's cache of words' tokens."""
        infos = [model.encode.cache_info() for model in self.models.values()]  # type: ignore[attr-defined]
        return sum(i.hits for i in infos), sum(i.misses for i in infos)

    def model(self, name: str) -> StepModel:
        model = self.models.get(name or self.default_model)
        if model is None:
            raise ModelNotFound(name, list(self.models))
        return model

    async def open(
        self, model_name: str, mode: HistoryMode, owner: str | None = None, session_id: str | None = None
    ) -> Session:
        """A new session, under ``session_id`` when the client chose one (in the ledger too)."""
        if not self.accepting:
            raise ShuttingDown()
        if session_id is not None:
            check_session_id(session_id)
        try:
            session = self.store.create(self.model(model_name), mode, owner, session_id)
        except ServerFull:
            self.metrics.sessions_refused.inc()
            raise
        session.attach(first_epoch(), self.store.clock())
        await self._kept(session, self.ledger.create(session))
        log.info("session opened", extra={"event": "open", "session": session.id, "model": session.model.name})
        return session

    async def resume(self, session_id: str, mode: HistoryMode | None, owner: str | None = None) -> Session:
        """Attach a stream to a session: this replica's copy if it is current, else the ledger's
        (the resume of a session another replica typed), taken over under a new epoch."""
        if not self.accepting:
            raise ShuttingDown()
        local = self._local(check_session_id(session_id), owner)
        if local is not None and local.attached:
            raise SessionBusy(session_id)
        claim = await self.ledger.take(session_id, owner, local.epoch if local else None)
        local = self.store.find(session_id)  # the await let other streams in
        if local is not None and local.attached:
            raise SessionBusy(session_id)
        if claim.record is not None or local is None:
            if local is not None:
                self.store.discard(local)
            local = self._restored(claim.record, session_id)
        local.attach(claim.epoch, self.store.clock(), mode)
        log.info("session resumed", extra={"event": "resume", "session": session_id, "steps": local.steps})
        return local

    def _local(self, session_id: str, owner: str | None) -> Session | None:
        """This replica's copy of a session, if any; another token's session is reported as not found.
        (Ids reach it checked: a malformed one is refused before any ledger call.)"""
        local = self.store.find(session_id)
        if local is not None and local.owner != owner:
            raise NotOwner(session_id)
        return local

    def _restored(self, record: SessionRecord | None, session_id: str) -> Session:
        """A ledger's session, held here from now on."""
        if record is None:  # the ledger said a copy here was current, and it is gone since
            raise SessionNotFound(session_id)
        model = self._model_of(record)
        try:
            session = self.store.restore(record, model)
        except (ValueError, IndexError, TypeError) as e:
            log.error("session in the ledger is unreadable", extra={"event": "load_failed", "session": session_id})
            raise SessionUnreadable(session_id, str(e)) from None
        log.info("session loaded", extra={"event": "load", "session": session_id, "steps": session.steps})
        return session

    def _model_of(self, record: SessionRecord) -> StepModel:
        model = self.models.get(record.model)
        if model is None or model.fingerprint != record.fingerprint:
            raise SessionUnreadable(record.id, f"its model {record.model!r} is not served here in the same version")
        return model

    def detach(self, session: Session) -> None:
        if not self.store.holds(session):
            return  # closed, dropped or replaced meanwhile
        session.detach(self.store.clock())
        log.info("stream left", extra={"event": "detach", "session": session.id, "steps": session.steps})
        task = asyncio.ensure_future(self.ledger.detach(session))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def push_words(self, session: Session, words: list[str]) -> list[WordUpdate]:
        """Read words in order (see Session.push_words) and count them; they are kept in the ledger
        before this returns (or this replica's copy is dropped and the error says why)."""
        session.touch(self.store.clock())
        start = time.perf_counter()
        before = len(session.words)
        updates = await session.push_words(words, self.batchers[session.model.name])
        await self._kept(session, self.ledger.append(session, before))
        self.metrics.word_latency.observe((time.perf_counter() - start) / len(words), len(words))
        self.metrics.words += len(words)
        return updates

    async def push_many(self, work: list[tuple[Session, list[str]]]) -> list[list[WordUpdate] | ServiceError]:
        """:meth:`push_words` for several distinct sessions at once (a Multiplex request's words):
        their steps ride together (one group per model and token position, one Future for all),
        their ledger writes go out together. Each item's updates, or the error that refused it: its
        session unchanged, or (a write the ledger did not keep) dropped here, to be resumed."""
        now, start = self.store.clock(), time.perf_counter()
        out: list[list[WordUpdate] | ServiceError] = [[] for _ in work]
        by_model: dict[str, list[tuple[int, Session, list[str], list[Encoded]]]] = {}
        for i, (session, words) in enumerate(work):
            session.touch(now)
            try:
                encoded = session.admit(words)
            except RejectedRequest as e:
                out[i] = e
                continue
            by_model.setdefault(session.model.name, []).append((i, session, words, encoded))
        writes: list[tuple[int, Session, int]] = []
        for name, items in by_model.items():
            for (i, session, words, encoded), results in zip(items, await self._steps(name, items)):
                before = len(session.words)
                try:
                    out[i] = session.record(words, encoded, results)
                except SessionNotFound as e:  # closed meanwhile
                    out[i] = e
                    continue
                writes.append((i, session, before))
        try:
            kept = await self.ledger.append_many([(session, before) for _, session, before in writes])
        except BaseException:
            for _, session, _ in writes:
                self.store.discard(session)
            raise
        answered = 0
        for (i, session, _), error in zip(writes, kept):
            if error is None:
                answered += len(work[i][1])
                continue
            self.store.discard(session)  # this copy may differ from the ledger's: the client resumes
            if not isinstance(error, ServiceError):
                raise error
            out[i] = error
        if answered:
            self.metrics.word_latency.observe((time.perf_counter() - start) / answered, answered)
            self.metrics.words += answered
        return out

    async def _steps(self, model: str, items: list[tuple[int, Session, list[str], list[Encoded]]]) -> list[list[Row]]:
        """Run the admitted words' tokens of ``items`` (sessions of ``model``): the first token of
        each in one group, then the second of those that have one, and so on; each item's results."""
        batcher = self.batchers[model]
        ids = [[token_id for tokens in encoded for token_id in tokens.ids] for *_, encoded in items]
        results: list[list[Row]] = [[] for _ in items]
        slots = [session.slot for _, session, _, _ in items]
        for slot in slots:  # held from the first position to the last: a close meanwhile frees none
            batcher.bank.hold(slot)
        try:
            for position in range(max(map(len, ids))):
                active = [k for k, seq in enumerate(ids) if len(seq) > position]
                rows = await batcher.advance([slots[k] for k in active], [ids[k][position] for k in active])
                for row, k in zip(rows, active):
                    results[k].append(row)
        except asyncio.CancelledError:  # the stream left mid-way: each state goes back to its last whole word
            for _, session, _, _ in items:
                session.interrupted()
            raise
        finally:
            for slot in slots:
                batcher.bank.unhold(slot)
        return results

    async def rewind(self, session: Session, words: int | None) -> None:
        """Undo the last ``words`` words (None: all of them)."""
        session.touch(self.store.clock())
        before = len(session.words)
        session.reset() if words is None else session.rewind(words)
        if len(session.words) != before:
            await self._kept(session, self.ledger.truncate(session, before))

    async def _kept(self, session: Session, write: Awaitable[None]) -> None:
        """Await a write of the session to the ledger; if it fails, this replica's copy may differ
        from the ledger's, so it is dropped: the client's resume reads the ledger's."""
        try:
            await write
        except BaseException:
            self.store.discard(session)
            raise

    async def close(self, session_id: str, owner: str | None = None) -> SessionView:
        """End a session, here and in the ledger (from any replica); returns it as it was."""
        session, _ = await self.look(session_id, owner)
        await self.ledger.delete(session_id, owner)
        local = self.store.find(session_id)
        if local is not None:
            self.store.remove(session_id)
        log.info("session closed", extra={"event": "close", "session": session_id, "steps": session.steps})
        return session

    async def look(self, session_id: str, owner: str | None = None) -> tuple[SessionView, float]:
        """A session for GetSession and its idle seconds: this replica's copy if it is current, else
        a read-only view of the ledger's (a session another replica holds)."""
        local = self._local(check_session_id(session_id), owner)
        claim = await self.ledger.look(session_id, owner, local.epoch if local else None)
        if claim.record is None:
            local = self._local(session_id, owner)  # the await let other streams in
            if local is None:
                raise SessionNotFound(session_id)
            return local, max(0.0, self.store.clock() - local.last_active)
        if local is not None and not local.attached:
            self.store.discard(local)  # stale: another replica wrote since
        try:
            view = SessionView.from_record(claim.record, self._model_of(claim.record), self.store.clock())
        except (ValueError, IndexError, TypeError) as e:
            raise SessionUnreadable(session_id, str(e)) from None
        return view, claim.record.idle_seconds

    async def reap_forever(self) -> None:
        """The one reaper: frees expired sessions every reap_interval seconds until cancelled."""
        while True:
            await asyncio.sleep(self.settings.reap_interval)
            self.last_sweep = self.store.clock()
            for session_id in self.store.reap():
                self.metrics.sessions_expired.inc()
                log.info("session expired", extra={"event": "expire", "session": session_id})
            try:  # an attached session lives on in the ledger while its stream is quiet
                await self.ledger.refresh([s for s in self.store.sessions() if s.attached])
            except Exception as e:  # the ledger is down: the health watch says so
                log.warning("ledger refresh failed", extra={"event": "refresh_failed", "why": str(e)})
            if self.store.freed:  # sessions closed or expired since the last sweep: give their memory back
                self.store.freed = 0
                memory.trim()
