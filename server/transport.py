"""The gRPC servicer: protobuf in, the domain (service.py) does the work, protobuf out.

Stream answers leave as encoded bytes: a word's answer is written straight to wire format
by wire.py (the hot path), every other answer is a protobuf message serialised here.

``STATUS`` is the one table from domain errors to gRPC status codes. Errors it does not
know become INTERNAL with a generic message; the traceback stays in the server's log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
import numpy as np
from google.protobuf.message import DecodeError

from server import errors, wire
from server.auth import owner_of
from server.inference import StepModel
from server.logs import Throttled
from server.service import Wordstream
from server.sessions import HistoryMode, Session
from textcodec import UNK_ID
from wordstream.v1 import wordstream_pb2 as pb
from wordstream.v1 import wordstream_pb2_grpc as pb_grpc

log = logging.getLogger("wordstream.transport")
T = TypeVar("T")

STATUS: dict[type[errors.WordstreamError], grpc.StatusCode] = {
    errors.BadWord: grpc.StatusCode.INVALID_ARGUMENT,
    errors.BadRewind: grpc.StatusCode.INVALID_ARGUMENT,
    errors.BadRange: grpc.StatusCode.OUT_OF_RANGE,
    errors.AlreadyOpen: grpc.StatusCode.FAILED_PRECONDITION,
    errors.MalformedRequest: grpc.StatusCode.INVALID_ARGUMENT,
    errors.SessionLimit: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.NotOpened: grpc.StatusCode.INVALID_ARGUMENT,
    errors.ModelNotFound: grpc.StatusCode.NOT_FOUND,
    errors.SessionNotFound: grpc.StatusCode.NOT_FOUND,
    errors.SessionBusy: grpc.StatusCode.FAILED_PRECONDITION,
    errors.ServerFull: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.ShuttingDown: grpc.StatusCode.UNAVAILABLE,
}
INTERNAL_MESSAGE = "internal error; the server log has the details"

_MODES = {
    pb.HISTORY_MODE_UNSPECIFIED: HistoryMode.DELTA,
    pb.HISTORY_MODE_DELTA: HistoryMode.DELTA,
    pb.HISTORY_MODE_FULL: HistoryMode.FULL,
    pb.HISTORY_MODE_NONE: HistoryMode.NONE,
}
_MODE_PB = {
    HistoryMode.DELTA: pb.HISTORY_MODE_DELTA,
    HistoryMode.FULL: pb.HISTORY_MODE_FULL,
    HistoryMode.NONE: pb.HISTORY_MODE_NONE,
}


def status_of(error: errors.WordstreamError) -> grpc.StatusCode:
    for kind in type(error).__mro__:
        if kind in STATUS:
            return STATUS[kind]
    return grpc.StatusCode.INTERNAL


class WordstreamServicer(pb_grpc.WordstreamServicer):
    def __init__(self, service: Wordstream, authenticate: bool = False) -> None:
        self.service = service
        self.answers = {name: wire.WordAnswers(model) for name, model in service.models.items()}
        self.authenticate = authenticate  # tokens are checked by auth.TokenAuth; here they name the owner
        self.warnings = Throttled(log)

    async def Stream(
        self, request_iterator: AsyncIterator[pb.StreamRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        session: Session | None = None
        session_field = b""  # the session id as the answers' field, encoded once
        try:
            async for request in request_iterator:
                kind = None if isinstance(request, Malformed) else request.WhichOneof("kind")
                try:
                    if isinstance(request, Malformed):
                        raise errors.MalformedRequest(request.error)
                    if session is None:
                        session = self._attach(request, kind, owner_of(context, self.authenticate))
                        session_field = wire.session_id(session.id)
                        opened = self._opened(session, kind)
                        yield pb.StreamResponse(
                            seq=request.seq, session_id=session.id, opened=opened
                        ).SerializeToString()
                        continue
                    if kind == "word" or kind == "paste":
                        words = [request.word] if kind == "word" else list(request.paste.words)
                        answers = self.answers[session.model.name]
                        for update in await self.service.push_words(session, words):
                            yield answers.answer(
                                request.seq, session_field, session, update.word_index, update.new_steps
                            )
                        continue
                    yield self._handle(session, request, kind).SerializeToString()
                    if kind == "close":
                        session = None
                        return
                except errors.RejectedRequest as e:
                    self._count(status_of(e))
                    error = pb.StreamError(code=status_of(e).name, message=str(e))
                    answer = pb.StreamResponse(seq=request.seq, session_id=session.id if session else "", error=error)
                    yield answer.SerializeToString()
        except errors.StreamRefused as e:
            self._refused(e, "Stream", context)
            await context.abort(status_of(e), str(e))
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception:
            log.exception("stream failed", extra={"event": "internal_error", "session": session.id if session else ""})
            self._count(grpc.StatusCode.INTERNAL)
            await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)
        finally:
            if session is not None and self.service.exists(session.id):
                self.service.detach(session)

    def _count(self, code: grpc.StatusCode) -> None:
        self.service.metrics.errors.labels(code.name).inc()

    def _refused(self, error: errors.WordstreamError, method: str, context: grpc.aio.ServicerContext) -> None:
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

    def _attach(self, request: pb.StreamRequest, kind: str | None, owner: str | None) -> Session:
        if kind == "open":
            return self.service.open(request.open.model, _MODES[request.open.history], owner)
        if kind == "resume":
            mode = None if request.resume.history == pb.HISTORY_MODE_UNSPECIFIED else _MODES[request.resume.history]
            return self.service.resume(request.resume.session_id, mode, owner)
        raise errors.NotOpened(kind or "")

    def _handle(self, session: Session, request: pb.StreamRequest, kind: str | None) -> pb.StreamResponse:
        """Every request of an attached stream but words and pastes (those answer in wire.py)."""
        if kind in ("rewind", "reset"):
            self.service.rewind(session, request.rewind.words if kind == "rewind" else None)
            return pb.StreamResponse(seq=request.seq, session_id=session.id, rewound=position(session))
        if kind == "close":
            self.service.close(session.id, session.owner)  # the stream already proved its owner
            closed = pb.Closed(words=len(session.words), steps=session.steps)
            return pb.StreamResponse(seq=request.seq, session_id=session.id, closed=closed)
        if kind in ("open", "resume"):
            raise errors.AlreadyOpen()
        raise errors.BadWord(f"empty request: set one of word, paste, rewind, reset, close (got {kind})")

    def _opened(self, session: Session, kind: str | None) -> pb.Opened:
        return pb.Opened(
            model=model_info(session.model),
            history=_MODE_PB[session.mode],
            resumed=kind == "resume",
            position=position(session),
            idle_timeout_seconds=self.service.settings.idle_timeout,
        )

    async def GetSession(self, request: pb.GetSessionRequest, context: grpc.aio.ServicerContext) -> pb.Session:
        async def work() -> pb.Session:
            _check_parsed(request)
            session = self.service.get(request.session_id, owner_of(context, self.authenticate))
            steps = session.step_range(request.start, request.end or None)
            return pb.Session(
                session_id=session.id,
                model=model_info(session.model),
                history_mode=_MODE_PB[session.mode],
                words=len(session.words),
                steps=session.steps,
                start=steps.start,
                history=[step(session, i) for i in steps],
                attached=session.attached,
                idle_seconds=max(0.0, self.service.store.clock() - session.last_active),
            )

        return await self._unary("GetSession", context, work)

    async def ListModels(
        self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListModelsResponse:
        async def work() -> pb.ListModelsResponse:
            _check_parsed(request)
            models = [model_info(m) for _, m in sorted(self.service.models.items())]
            return pb.ListModelsResponse(models=models, default_model=self.service.default_model)

        return await self._unary("ListModels", context, work)

    async def CloseSession(
        self, request: pb.CloseSessionRequest, context: grpc.aio.ServicerContext
    ) -> pb.CloseSessionResponse:
        async def work() -> pb.CloseSessionResponse:
            _check_parsed(request)
            session = self.service.close(request.session_id, owner_of(context, self.authenticate))
            return pb.CloseSessionResponse(words=len(session.words), steps=session.steps)

        return await self._unary("CloseSession", context, work)

    async def _unary(self, method: str, context: grpc.aio.ServicerContext, work: Callable[[], Awaitable[T]]) -> T:
        """The one error wrapper of the unary calls: domain errors answer with their status and
        message; anything else is logged with its traceback and answers INTERNAL, generically."""
        try:
            return await work()
        except errors.WordstreamError as e:
            self._refused(e, method, context)
            await context.abort(status_of(e), str(e))
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception:
            log.exception(f"{method} failed", extra={"event": "internal_error", "method": method})
            self._count(grpc.StatusCode.INTERNAL)
            await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)
        raise AssertionError("context.abort always raises")


class Malformed:
    """Stands in for a request whose bytes did not parse, so the servicer can answer it clearly."""

    seq = 0

    def __init__(self, error: str) -> None:
        self.error = error


def _tolerant(parse: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def deserialize(data: bytes) -> Any:
        try:
            return parse(data)
        except DecodeError as e:
            return Malformed(str(e))

    return deserialize


def _check_parsed(request: Any) -> None:
    if isinstance(request, Malformed):
        raise errors.MalformedRequest(request.error)


def add_to_server(servicer: WordstreamServicer, server: grpc.aio.Server) -> None:
    """Register the servicer like the generated helper does, but with request parsers that turn
    undecodable bytes into an INVALID_ARGUMENT answer instead of an INTERNAL error."""
    handlers = {
        "Stream": grpc.stream_stream_rpc_method_handler(
            servicer.Stream,
            _tolerant(pb.StreamRequest.FromString),
            None,  # Stream yields encoded answers
        ),
        "GetSession": grpc.unary_unary_rpc_method_handler(
            servicer.GetSession, _tolerant(pb.GetSessionRequest.FromString), pb.Session.SerializeToString
        ),
        "ListModels": grpc.unary_unary_rpc_method_handler(
            servicer.ListModels, _tolerant(pb.ListModelsRequest.FromString), pb.ListModelsResponse.SerializeToString
        ),
        "CloseSession": grpc.unary_unary_rpc_method_handler(
            servicer.CloseSession,
            _tolerant(pb.CloseSessionRequest.FromString),
            pb.CloseSessionResponse.SerializeToString,
        ),
    }
    service = pb.DESCRIPTOR.services_by_name["Wordstream"].full_name
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))


def model_info(model: StepModel) -> pb.ModelInfo:
    evaluation = model.evaluation
    return pb.ModelInfo(
        name=model.name,
        labels=model.labels,
        cell=model.cell,
        layers=model.states[0].layers,
        hidden=model.states[0].hidden,
        vocabulary_size=len(model.codec.vocab),
        state_names=model.state_names,
        evaluation=pb.Evaluation(
            accuracy=evaluation.get("accuracy", 0.0),
            macro_f1=evaluation.get("macro_f1", 0.0),
            n=evaluation.get("n", 0),
            typing=evaluation.get("typing", {}),
        ),
    )


def output(model: StepModel, probs: np.ndarray | None) -> pb.Output | None:
    if probs is None:
        return None
    values = probs.tolist()  # plain floats: max() over a short list is cheaper than a numpy call
    return pb.Output(probabilities=values, label=model.labels[values.index(max(values))])


def tensors(model: StepModel, state: dict[str, np.ndarray]) -> list[pb.Tensor]:
    """State tensors shaped (layers, hidden) as protobuf, in the model's order."""
    return [
        pb.Tensor(name=s.name, layers=s.layers, hidden=s.hidden, values=state[s.name].ravel().tolist())
        for s in model.states
    ]


def position(session: Session) -> pb.Position:
    return pb.Position(
        words=len(session.words),
        steps=session.steps,
        output=output(session.model, session.output),
        state=tensors(session.model, session.state),
    )


def step(session: Session, index: int) -> pb.Step:
    """Step ``index`` of the history, read straight from its arrays (the hot path of every answer)."""
    h = session.history
    word_index = int(h.word_index[index])
    token_id = int(h.token_ids[index])
    return pb.Step(
        index=index,
        word_index=word_index,
        word=session.words[word_index],
        token=pb.Token(text=h.tokens[index], id=token_id, unknown=token_id == UNK_ID),
        output=output(session.model, h.probs[index]),
        state=tensors(session.model, h.state_after(index)),
    )
