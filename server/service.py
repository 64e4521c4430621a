"""The Wordstream service: the domain behind the transport. No grpc here.

It ties the models, the session store and the batchers of model calls together; the
servicer (transport.py) only turns protobuf into these calls and the results back.
"""

from __future__ import annotations

import asyncio
import logging
import time

from wordstream.modelfile import ModelError, StepModel
from wordstream.server import memory
from wordstream.server.batching import Batcher
from wordstream.server.config import Settings
from wordstream.server.errors import ModelNotFound, NotOwner, ServerFull, ShuttingDown
from wordstream.server.metrics import Metrics
from wordstream.server.sessions import HistoryMode, Session, SessionStore, WordUpdate, check_session_id

log = logging.getLogger("wordstream.sessions")


class Wordstream:
    def __init__(
        self, settings: Settings, models: dict[str, StepModel], store: SessionStore, metrics: Metrics | None = None
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

    def open(
        self, model_name: str, mode: HistoryMode, owner: str | None = None, session_id: str | None = None
    ) -> Session:
        """A new session, under ``session_id`` when the client chose one."""
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
        log.info("session opened", extra={"event": "open", "session": session.id, "model": session.model.name})
        return session

    def resume(self, session_id: str, mode: HistoryMode | None, owner: str | None = None) -> Session:
        if not self.accepting:
            raise ShuttingDown()
        self.get(session_id, owner)
        session = self.store.attach(session_id)
        if mode is not None:
            session.mode = mode
        log.info("session resumed", extra={"event": "resume", "session": session.id, "steps": session.steps})
        return session

    def detach(self, session: Session) -> None:
        self.store.detach(session)
        log.info("stream left", extra={"event": "detach", "session": session.id, "steps": session.steps})

    async def push_words(self, session: Session, words: list[str]) -> list[WordUpdate]:
        """Read words in order (see Session.push_words) and count them."""
        self.store.touch(session)
        start = time.perf_counter()
        updates = await session.push_words(words, self.batchers[session.model.name])
        self.metrics.word_latency.observe((time.perf_counter() - start) / len(words), len(words))
        self.metrics.words += len(words)
        return updates

    def rewind(self, session: Session, words: int | None) -> None:
        """Undo the last ``words`` words (None: all of them)."""
        self.store.touch(session)
        session.reset() if words is None else session.rewind(words)

    def close(self, session_id: str, owner: str | None = None) -> Session:
        self.get(session_id, owner)
        session = self.store.remove(session_id)
        log.info("session closed", extra={"event": "close", "session": session_id, "steps": session.steps})
        return session

    def get(self, session_id: str, owner: str | None = None) -> Session:
        """The session, if ``owner`` may see it: another token's session is reported as not found."""
        session = self.store.get(session_id)
        if session.owner != owner:
            raise NotOwner(session_id)
        return session

    def exists(self, session_id: str) -> bool:
        return self.store.has(session_id)

    async def reap_forever(self) -> None:
        """The one reaper: frees expired sessions every reap_interval seconds until cancelled."""
        while True:
            await asyncio.sleep(self.settings.reap_interval)
            self.last_sweep = self.store.clock()
            for session_id in self.store.reap():
                self.metrics.sessions_expired.inc()
                log.info("session expired", extra={"event": "expire", "session": session_id})
            if self.store.freed:  # sessions closed or expired since the last sweep: give their memory back
                self.store.freed = 0
                memory.trim()
