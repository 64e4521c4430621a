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
from wordstream.server.batching import Batcher
from wordstream.server.config import Settings
from wordstream.server.durable import Loaded, RedisStore, decode_words, encode_word
from wordstream.server.errors import (
    ModelNotFound,
    NotOwner,
    ServerFull,
    SessionBusy,
    SessionUnreadable,
    ShuttingDown,
)
from wordstream.server.metrics import Metrics
from wordstream.server.sessions import HistoryMode, Session, SessionStore, WordUpdate, check_session_id

log = logging.getLogger("wordstream.sessions")


class Wordstream:
    def __init__(
        self,
        settings: Settings,
        models: dict[str, StepModel],
        store: SessionStore,
        metrics: Metrics | None = None,
        durable: RedisStore | None = None,
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
        self.durable = durable
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
        """A new session, under ``session_id`` when the client chose one (in the state store too)."""
        if not self.accepting:
            raise ShuttingDown()
        if session_id is not None:
            check_session_id(session_id)
        try:
            session = self.store.create(self.model(model_name), mode, owner, session_id)
        except ServerFull:
            self.metrics.sessions_refused.inc()
            raise
        session.attached = True
        if self.durable:
            try:
                await self.durable.create(session)
            except BaseException:
                self.store.discard(session)
                raise
        log.info("session opened", extra={"event": "open", "session": session.id, "model": session.model.name})
        return session

    async def resume(self, session_id: str, mode: HistoryMode | None, owner: str | None = None) -> Session:
        if not self.accepting:
            raise ShuttingDown()
        if self.durable:
            session = await self._take(session_id, owner)
        else:
            self.get(session_id, owner)
        session = self.store.attach(session_id)
        if mode is not None:
            session.mode = mode
        log.info("session resumed", extra={"event": "resume", "session": session.id, "steps": session.steps})
        return session

    async def _take(self, session_id: str, owner: str | None) -> Session:
        """Take ownership of a session in the state store; this replica's copy is kept if it is
        current, else replaced by the store's (the resume of a session another replica typed)."""
        assert self.durable is not None
        local = self.store.find(session_id)
        if local is not None:
            if local.owner != owner:
                raise NotOwner(session_id)
            if local.attached:
                raise SessionBusy(session_id)
        loaded = await self.durable.load(session_id, owner, local.epoch if local else "", take=True)
        local = self.store.find(session_id)  # the await let other streams in
        if local is not None and local.attached:
            raise SessionBusy(session_id)
        if loaded.current and local is not None:
            session = local
        else:
            if local is not None:
                self.store.discard(local)
            session = self._from_store(session_id, owner, loaded, keep=True)
            log.info("session loaded", extra={"event": "load", "session": session_id, "steps": session.steps})
        session.epoch = loaded.epoch
        return session

    def _from_store(self, session_id: str, owner: str | None, loaded: Loaded, keep: bool) -> Session:
        model = self.models.get(loaded.model)
        if model is None or model.fingerprint != loaded.fingerprint:
            raise SessionUnreadable(session_id, f"its model {loaded.model!r} is not served here in the same version")
        try:
            words, starts, tokens, arrays = decode_words(model, loaded.records)
            return self.store.restore(
                session_id, model, loaded.mode, self.store.clock() - loaded.idle_seconds, owner,
                words, starts, tokens, arrays, keep=keep,
            )  # fmt: skip
        except (ValueError, IndexError, TypeError) as e:
            log.error("session in the store is unreadable", extra={"event": "load_failed", "session": session_id})
            raise SessionUnreadable(session_id, str(e)) from None

    def detach(self, session: Session) -> None:
        if not self.store.holds(session):
            return  # closed, dropped or replaced meanwhile
        self.store.detach(session)
        log.info("stream left", extra={"event": "detach", "session": session.id, "steps": session.steps})
        if self.durable:
            task = asyncio.ensure_future(self.durable.detach(session))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def push_words(self, session: Session, words: list[str]) -> list[WordUpdate]:
        """Read words in order (see Session.push_words) and count them; with a state store, they are
        durable before this returns (or this replica's copy is dropped and the error says why)."""
        self.store.touch(session)
        start = time.perf_counter()
        before = len(session.words)
        updates = await session.push_words(words, self.batchers[session.model.name])
        if self.durable:
            history = session.history
            records = [encode_word(history, word, u.new_steps) for word, u in zip(words, updates)]
            await self._durably(session, self.durable.append(session, before, records))
        self.metrics.word_latency.observe((time.perf_counter() - start) / len(words), len(words))
        self.metrics.words += len(words)
        return updates

    async def rewind(self, session: Session, words: int | None) -> None:
        """Undo the last ``words`` words (None: all of them)."""
        self.store.touch(session)
        before = len(session.words)
        session.reset() if words is None else session.rewind(words)
        if self.durable and len(session.words) != before:
            await self._durably(session, self.durable.truncate(session, before))

    async def _durably(self, session: Session, write: Awaitable[None]) -> None:
        """Await a write of the session to the store; if it fails, this replica's copy may differ
        from the store's, so it is dropped: the client's resume reads the store's."""
        try:
            await write
        except BaseException:
            self.store.discard(session)
            raise

    async def close(self, session_id: str, owner: str | None = None) -> Session:
        """End a session, here and in the state store (from any replica); returns it as it was."""
        if not self.durable:
            self.get(session_id, owner)
            session = self.store.remove(session_id)
        else:
            session, _, transient = await self.look(session_id, owner)
            await self.durable.delete(session_id, owner)
            if transient:
                session.close()
            elif self.store.holds(session):
                self.store.remove(session_id)
        log.info("session closed", extra={"event": "close", "session": session_id, "steps": session.steps})
        return session

    def get(self, session_id: str, owner: str | None = None) -> Session:
        """The session, if ``owner`` may see it: another token's session is reported as not found."""
        session = self.store.get(session_id)
        if session.owner != owner:
            raise NotOwner(session_id)
        return session

    async def look(self, session_id: str, owner: str | None = None) -> tuple[Session, float, bool]:
        """A session for GetSession: (session, idle seconds, whether the caller must close it).

        With a state store, a session another replica holds (or a stale copy here) is read from
        the store into a session that is not kept."""
        if not self.durable:
            session = self.get(session_id, owner)
            return session, max(0.0, self.store.clock() - session.last_active), False
        local = self.store.find(session_id)
        if local is not None and local.owner != owner:
            raise NotOwner(session_id)
        loaded = await self.durable.load(session_id, owner, local.epoch if local else "", take=False)
        if loaded.current and local is not None and self.store.holds(local):
            return local, max(0.0, self.store.clock() - local.last_active), False
        if local is not None and not local.attached:
            self.store.discard(local)  # stale: another replica wrote since
        session = self._from_store(session_id, owner, loaded, keep=False)
        session.attached = loaded.attached
        return session, loaded.idle_seconds, True

    async def reap_forever(self) -> None:
        """The one reaper: frees expired sessions every reap_interval seconds until cancelled."""
        while True:
            await asyncio.sleep(self.settings.reap_interval)
            self.last_sweep = self.store.clock()
            for session_id in self.store.reap():
                self.metrics.sessions_expired.inc()
                log.info("session expired", extra={"event": "expire", "session": session_id})
            if self.durable:  # an attached session lives on in the store while its stream is quiet
                try:
                    await self.durable.refresh(s.id for s in self.store.sessions() if s.attached)
                except Exception as e:  # the store is down: the health watch says so
                    log.warning("store refresh failed", extra={"event": "refresh_failed", "why": str(e)})
            if self.store.freed:  # sessions closed or expired since the last sweep: give their memory back
                self.store.freed = 0
                memory.trim()
