"""The gRPC servicer: protobuf in, the domain (service.py) does the work, answers (answers.py) out.

A stream's requests go through one dispatch table, kind -> handler; every handler returns
the request's answers as encoded bytes. Refused requests answer in the stream; refused
streams and unary calls end with the status of status.py's one table; anything else is
logged and answers INTERNAL, generically.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

from wordstream.server import answers, errors
from wordstream.server.auth import owner_of
from wordstream.server.history import HistoryMode
from wordstream.server.logs import Throttled
from wordstream.server.multiplex import Multiplexed
from wordstream.server.registration import Malformed, check_parsed
from wordstream.server.service import Wordstream
from wordstream.server.sessions import Session
from wordstream.server.status import INTERNAL_MESSAGE, status_of
from wordstream.v1 import wordstream_pb2 as pb
from wordstream.v1 import wordstream_pb2_grpc as pb_grpc

log = logging.getLogger("wordstream.transport")
T = TypeVar("T")

_MODES = {
    pb.HISTORY_MODE_UNSPECIFIED: HistoryMode.DELTA,
    pb.HISTORY_MODE_DELTA: HistoryMode.DELTA,
    pb.HISTORY_MODE_FULL: HistoryMode.FULL,
    pb.HISTORY_MODE_NONE: HistoryMode.NONE,
}


SESSION_ID_HEADER = "x-session-id"  # the session id a client chose (open) or names (resume, unary calls)
REPLICA_HEADER = "x-wordstream-replica"  # initial metadata of every answer: which server answered


def chosen_session_id(context: grpc.aio.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == SESSION_ID_HEADER and isinstance(value, str):
            return value
    return None


class _Stream:
    """What one stream holds: its caller, the id it asked for, its session once attached, the id's field."""

    __slots__ = ("owner", "chosen_id", "session", "session_field", "ended")

    def __init__(self, owner: str | None, chosen_id: str | None) -> None:
        self.owner, self.chosen_id = owner, chosen_id
        self.session: Session | None = None
        self.session_field = b""  # the session id as the answers' field, encoded once
        self.ended = False


Handler = Callable[[_Stream, pb.StreamRequest], Awaitable[list[bytes]]]


class WordstreamServicer(pb_grpc.WordstreamServicer):
    def __init__(self, service: Wordstream, authenticate: bool = False, replica: str = "") -> None:
        self.service = service
        self.replica_header = ((REPLICA_HEADER, replica),)
        self.word_answers = {name: answers.WordAnswers(model) for name, model in service.models.items()}
        self.authenticate = authenticate  # tokens are checked by auth.TokenAuth; here they name the owner
        self.warnings = Throttled(log)
        self.handlers: dict[str, Handler] = {
            "open": self._open,
            "resume": self._resume,
            "word": self._words,
            "paste": self._words,
            "rewind": self._rewind,
            "reset": self._rewind,
            "close": self._close,
        }

    async def Stream(self, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        stream = _Stream(owner_of(context, self.authenticate), chosen_session_id(context))
        await context.send_initial_metadata(self.replica_header)
        try:
            async for request in requests:
                try:
                    for answer in await self._dispatch(stream, request):
                        yield answer
                except errors.RejectedRequest as e:
                    self._count(status_of(e))
                    session_id = stream.session.id if stream.session else ""
                    yield answers.error(request.seq, session_id, status_of(e).name, str(e))
                if stream.ended:
                    return
        except errors.StreamRefused as e:
            self._refused(e, "Stream", context)
            await context.abort(status_of(e), str(e))
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception:
            session_id = stream.session.id if stream.session else ""
            log.exception("stream failed", extra={"event": "internal_error", "session": session_id})
            self._count(grpc.StatusCode.INTERNAL)
            await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)
        finally:
            if stream.session is not None:
                self.service.detach(stream.session)

    async def Multiplex(self, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        """Many sessions on one stream (multiplex.py); errors are per entry, in the stream."""
        owner = owner_of(context, self.authenticate)
        mux = Multiplexed(
            self.service, self.word_answers, owner, _MODES, lambda e: self._refused(e, "Multiplex", context)
        )
        await context.send_initial_metadata(self.replica_header)
        try:
            reader = asyncio.ensure_future(mux.read(requests))
            try:
                while (item := await mux.next_response()) is not None:
                    data, entries = item
                    yield data
                    mux.sent(entries)
                await reader  # a failure of the reading side ends the stream with it
            finally:  # on any end, its sessions are detached
                reader.cancel()
                mux.stop()
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception:
            log.exception("multiplex stream failed", extra={"event": "internal_error"})
            self._count(grpc.StatusCode.INTERNAL)
            await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)

    async def _dispatch(self, stream: _Stream, request: Any) -> list[bytes]:
        if isinstance(request, Malformed):
            raise errors.MalformedRequest(request.error)
        kind = request.WhichOneof("kind")
        if stream.session is None and kind not in ("open", "resume"):
            raise errors.NotOpened(kind or "")
        if kind is None:
            raise errors.BadWord("empty request: set one of word, paste, rewind, reset, close")
        return await self.handlers[kind](stream, request)

    async def _open(self, stream: _Stream, request: pb.StreamRequest) -> list[bytes]:
        if stream.session is not None:
            raise errors.AlreadyOpen()
        mode = _MODES[request.open.history]
        session = await self.service.open(request.open.model, mode, stream.owner, stream.chosen_id)
        return [self._attached(stream, session, request.seq, resumed=False)]

    async def _resume(self, stream: _Stream, request: pb.StreamRequest) -> list[bytes]:
        if stream.session is not None:
            raise errors.AlreadyOpen()
        history = request.resume.history
        mode = None if history == pb.HISTORY_MODE_UNSPECIFIED else _MODES[history]
        session = await self.service.resume(request.resume.session_id, mode, stream.owner)
        return [self._attached(stream, session, request.seq, resumed=True)]

    def _attached(self, stream: _Stream, session: Session, seq: int, resumed: bool) -> bytes:
        stream.session, stream.session_field = session, answers.session_id(session.id)
        return answers.opened(seq, session, resumed, self.service.settings.idle_timeout)

    async def _words(self, stream: _Stream, request: pb.StreamRequest) -> list[bytes]:
        session = stream.session
        assert session is not None
        words = [request.word] if request.HasField("word") else list(request.paste.words)
        encode = self.word_answers[session.model.name].word
        updates = await self.service.push_words(session, words)
        return [encode(request.seq, stream.session_field, session, update) for update in updates]

    async def _rewind(self, stream: _Stream, request: pb.StreamRequest) -> list[bytes]:
        session = stream.session
        assert session is not None
        await self.service.rewind(session, request.rewind.words if request.HasField("rewind") else None)
        return [answers.rewound(request.seq, session)]

    async def _close(self, stream: _Stream, request: pb.StreamRequest) -> list[bytes]:
        session = stream.session
        assert session is not None
        await self.service.close(session.id, session.owner)  # the stream already proved its owner
        stream.session, stream.ended = None, True
        return [answers.closed(request.seq, session)]

    async def GetSession(self, request: Any, context: grpc.aio.ServicerContext) -> pb.Session:
        async def work() -> pb.Session:
            check_parsed(request)
            session, idle = await self.service.look(request.session_id, owner_of(context, self.authenticate))
            return answers.session_record(session, session.step_range(request.start, request.end or None), idle)

        return await self._unary("GetSession", context, work)

    async def ListModels(self, request: Any, context: grpc.aio.ServicerContext) -> pb.ListModelsResponse:
        async def work() -> pb.ListModelsResponse:
            check_parsed(request)
            return answers.models(self.service.models, self.service.default_model)

        return await self._unary("ListModels", context, work)

    async def CloseSession(self, request: Any, context: grpc.aio.ServicerContext) -> pb.CloseSessionResponse:
        async def work() -> pb.CloseSessionResponse:
            check_parsed(request)
            closed = await self.service.close(request.session_id, owner_of(context, self.authenticate))
            return answers.closed_session(closed)

        return await self._unary("CloseSession", context, work)

    async def _unary(self, method: str, context: grpc.aio.ServicerContext, work: Callable[[], Awaitable[T]]) -> T:
        """The one error wrapper of the unary calls: domain errors answer with their status and
        message; anything else is logged with its traceback and answers INTERNAL, generically."""
        try:
            await context.send_initial_metadata(self.replica_header)
            return await work()
        except errors.ServiceError as e:
            self._refused(e, method, context)
            await context.abort(status_of(e), str(e))
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception:
            log.exception(f"{method} failed", extra={"event": "internal_error", "method": method})
            self._count(grpc.StatusCode.INTERNAL)
            await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)
        raise AssertionError("context.abort always raises")

    def _count(self, code: grpc.StatusCode) -> None:
        self.service.metrics.errors.labels(code.name).inc()

    def _refused(self, error: errors.ServiceError, method: str, context: grpc.aio.ServicerContext) -> None:
        """Count a refused call; an attempt on another token's session is also logged (rate-limited)."""
        self._count(status_of(error))
        if isinstance(error, errors.NotOwner):
            self.warnings.warning(
                "a token asked for another token's session",
                event="not_owner",
                method=method,
                peer=context.peer(),
                session=error.session_id,
            )
