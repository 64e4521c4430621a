"""The WebSocket gateway: one WebSocket per page, one session behind it. What one visitor may
do, and from which host and origin, is guard.py's; how the sessions reach the server (a few
Multiplex streams, or a stream each) is carriers.py's.

Browsers cannot hold a bidirectional gRPC stream, so the page speaks JSON over a WebSocket
and the gateway relays each message to the session through the Python client (which resumes
dropped streams and replays lost sessions). The gateway keeps no session state of its own: a
page that reconnects sends ``{"resume": id}``.

Messages from the page, one JSON object each, with exactly one of these keys:

    {"open": {"model": "sentiment-lstm"}}    a new session ("model" optional: the default)
    {"resume": "<session id>"}              an existing session, its history sent back
    {"word": "great"}                       one word; answered with its result
    {"rewind": 2}                           undo the last 2 words
    {"reset": {}}                           undo every word
    {"close": {}}                           end the session

Answers, one per message, mirror the gRPC answers: ``{"opened": {...}}`` (session id, model,
labels, resumed, words, history), ``{"word": {...}}`` (session id, word index, word, tokens,
label, probabilities, state, history length, the word's steps), ``{"rewound": {"words",
"steps"}}``, ``{"closed": {...}}``, or ``{"error": {"code", "message"}}``. When the server
lost a session and the client replayed it into a new one, ``{"replayed": {"from",
"session_id", "words"}}`` comes before the answer. Bad JSON, unknown kinds and messages
over ``max_message_bytes`` get an error answer; the socket stays open.

Nothing the store lost stays lost. Between the gateway and the server, the Python client holds
the words it sent and, on a resume, sends again what the store no longer has (its held words'
digest against the server's, ``words_sha256``). Between the page and the gateway, the page's
text box is the log: on ``{"resume": id}`` it receives the session's words themselves
(``opened.words``, ``opened.history``), and its sync rewinds to the longest prefix common to
them and its text and sends the rest again, which is the same check on the words, not a digest.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp
from starlette.websockets import WebSocket, WebSocketDisconnect

from wordstream.client import AsyncClient, WordstreamError
from wordstream.client import types as t
from wordstream.gateway.carriers import Carrier, PageSession, carrier
from wordstream.gateway.guard import Guard, Limits, Shield, WordBucket, client_address, origin_allowed

log = logging.getLogger("wordstream.gateway")
PAGE = resources.files("wordstream.gateway") / "static"  # package data, wherever the package is installed
KINDS = ("open", "resume", "word", "rewind", "reset", "close")
DEFAULT_LIMITS = Limits()


class BadMessage(Exception):
    """A page's message that is not one of the contract's; the message says what is wrong."""


class Refused(Exception):
    """A message over one of the visitor's caps (guard.py): answered with ``code``, the socket stays open."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def dumps(value: Any) -> str:
    """JSON text as the page reads it (compact, UTF-8 as is, as Starlette's send_json writes it)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@functools.lru_cache(maxsize=64)
def _nines(count: int) -> str:
    """A format for ``count`` numbers: one C call writes them all (a third faster than one per number)."""
    return ",".join(["%.9g"] * count)


def floats_text(values: Sequence[float]) -> str:
    """float32 values as a JSON list: 9 significant digits read back as the same float32 (a double's
    17 say nothing more and cost twice the time); NaN and infinities spelt as json.dumps spells them."""
    text = _nines(len(values)) % tuple(values)
    if "n" in text:  # nan, inf
        return dumps(list(values))
    if "-0," in text + ",":  # -0.0 as "-0" would read back as the integer 0
        text = ",".join("-0.0" if v == "-0" else v for v in text.split(","))
    return "[" + text + "]"


def state_text(state: t.State) -> str:
    """A state as JSON: name -> one list of values per layer (encoded once per word: see word_text)."""
    return (
        "{"
        + ",".join(dumps(name) + ":[" + ",".join(map(floats_text, layers)) + "]" for name, layers in state.items())
        + "}"
    )


def _object(fields: dict[str, Any], **encoded: str) -> str:
    """The JSON object of ``fields`` followed by ``encoded``, values already JSON text."""
    tail = ",".join(f'"{key}":{text}' for key, text in encoded.items())
    return dumps(fields)[:-1] + ("," if fields and tail else "") + tail + "}"


def step_text(step: t.Step, state: str | None = None) -> str:
    """One step as JSON; ``state``: its state already encoded (the word's own, when they are equal)."""
    fields = {
        "index": step.index,
        "word_index": step.word_index,
        "word": step.word,
        "token": asdict(step.token),
        "label": step.output.label,
        "probabilities": step.output.probabilities,
    }
    return _object(fields, state=state or state_text(step.state))


def word_text(result: t.WordResult) -> str:
    """A word's answer as JSON. Its state is the state of its last step: encoded once, written twice."""
    state = state_text(result.state)
    steps = ",".join(step_text(s, state if s.state == result.state else None) for s in result.steps)
    fields = {
        "session_id": result.session_id,
        "word_index": result.word_index,
        "word": result.word,
        "tokens": [asdict(token) for token in result.tokens],
        "label": result.output.label if result.output else None,
        "probabilities": result.output.probabilities if result.output else None,
    }
    body = _object(fields, state=state, history_length=str(result.history_length), steps="[" + steps + "]")
    return '{"word":' + body + "}"


def parse(text: str, limit: int) -> tuple[str, Any]:
    """(kind, value) of a page's message; BadMessage says what is wrong with one that is not valid."""
    if len(text.encode()) > limit:
        raise BadMessage(f"message of {len(text.encode())} bytes is over the limit of {limit}")
    try:
        message = json.loads(text)
    except json.JSONDecodeError as e:
        raise BadMessage(f"not JSON: {e}") from None
    if not isinstance(message, dict) or len(message) != 1:
        raise BadMessage(f"a message is a JSON object with exactly one of {', '.join(KINDS)}")
    ((kind, value),) = message.items()
    if kind not in KINDS:
        raise BadMessage(f"unknown kind {kind[:40]!r}; expected one of {', '.join(KINDS)}")
    if kind == "open" and not (isinstance(value, dict) and isinstance(value.get("model", ""), str)):
        raise BadMessage('open takes an object, {"model": "<name>"} or {}')
    if kind in ("resume", "word") and not isinstance(value, str):
        raise BadMessage(f"{kind} takes a string")
    if kind == "rewind" and (isinstance(value, bool) or not isinstance(value, int)):
        raise BadMessage("rewind takes a whole number of words")
    if kind in ("reset", "close") and value != {}:
        raise BadMessage(f"{kind} takes an empty object, {{}}")
    return kind, value


class Conversation:
    """One page's socket: its session (if any), and the answers to its messages, within the
    caps of the address it comes from (``guard``) and of its own word rate (``bucket``)."""

    def __init__(self, sessions: Carrier, guard: Guard, address: str) -> None:
        self.sessions, self.guard, self.address = sessions, guard, address
        limits = guard.limits
        self.bucket = WordBucket(limits.words_per_second, limits.words_burst, guard.clock)
        self.session: PageSession | None = None
        self.notices: list[dict[str, Any]] = []

    def _replayed(self, old: str, new: str, words: int) -> None:
        self.guard.used(self.address, new, replaced=old)
        self.notices.append({"replayed": {"from": old, "session_id": new, "words": words}})

    async def answer(self, kind: str, value: Any) -> str:
        """The JSON answer to one message of the page."""
        if kind in ("open", "resume"):
            await self.detach()
            if kind == "open" and not self.guard.may_open(self.address):
                limit = self.guard.limits.max_sessions_per_client
                raise Refused(
                    "RESOURCE_EXHAUSTED",
                    f"this address has {limit} live sessions (--max-sessions-per-client): close one, or resume one",
                )
            if kind == "open":
                new, steps = await self.sessions.open(value.get("model", ""), self._replayed)
            else:
                new, steps = await self.sessions.resume(value, self._replayed)
            self.session = new
            self.guard.used(self.address, new.id)
            fields = {
                "session_id": new.id,
                "model": new.model_name,
                "labels": new.labels,
                "resumed": kind == "resume",
                "words": list(new.words),
            }
            history = "[" + ",".join(step_text(s) for s in steps) + "]"
            return '{"opened":' + _object(fields, history=history) + "}"
        session = self.session
        if session is None:
            raise BadMessage("open or resume a session first")
        if kind == "word":
            if not self.bucket.take():
                limits = self.guard.limits
                raise Refused(
                    "RESOURCE_EXHAUSTED",
                    f"over {limits.words_per_second:g} words a second (a burst of {limits.words_burst}): "
                    "send the word again in a moment",
                )
            result = await session.push(value)
            self.guard.used(self.address, session.id)
            return word_text(result)
        if kind == "close":
            session_id = session.id
            await session.close()
            self.session = None
            self.guard.closed(self.address, session_id)
            return dumps({"closed": {"session_id": session_id}})
        words, held = await (session.reset() if kind == "reset" else session.rewind(value))
        return dumps({"rewound": {"session_id": session.id, "words": words, "steps": held}})

    async def detach(self) -> None:
        """Leave the session on the server (a page that comes back resumes it)."""
        if self.session is not None:
            await self.session.detach()
            self.session = None


async def converse(websocket: WebSocket, conversation: Conversation, max_message_bytes: int) -> None:
    """One page's socket: every JSON message answered in order (notices first), until it closes;
    then the session is detached, resumable by its id."""
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            text = message.get("text")
            try:
                if text is None:
                    raise BadMessage("send JSON text, not binary")
                answer = await conversation.answer(*parse(text, max_message_bytes))
            except BadMessage as e:
                answer = dumps(error("INVALID_ARGUMENT", str(e)))
            except Refused as e:
                answer = dumps(error(e.code, str(e)))
            except WordstreamError as e:
                answer = dumps(error(e.code, str(e)))
            for notice in conversation.notices:
                await websocket.send_text(dumps(notice))
            conversation.notices.clear()
            await websocket.send_text(answer)
    except WebSocketDisconnect:
        pass
    finally:
        await conversation.detach()


async def page(request: Request) -> Response:
    return HTMLResponse((PAGE / "index.html").read_text(encoding="utf-8"))


async def healthz(request: Request) -> Response:
    try:
        status = await request.app.state.client.health()
    except WordstreamError as e:
        return JSONResponse({"status": "unavailable", "server": e.code, "message": str(e)}, status_code=503)
    code = 200 if status == "SERVING" else 503
    return JSONResponse({"status": "ok" if code == 200 else "unavailable", "server": status}, status_code=code)


async def models(request: Request) -> Response:
    try:
        served, default = await request.app.state.client.models()
    except WordstreamError as e:
        return JSONResponse(error(e.code, str(e)), status_code=503)
    return JSONResponse({"models": [asdict(m) for m in served], "default": default})


def create_app(
    client_factory: Callable[[], AsyncClient], limits: Limits = DEFAULT_LIMITS, multiplex_streams: int = 0
) -> ASGIApp:
    """The gateway's app; ``client_factory`` makes the gRPC client when the app starts; ``limits``
    are what one visitor may do (guard.py); ``multiplex_streams``: how the sessions are carried
    (carriers.py: 0, a stream each; K, on K Multiplex streams). While it runs, the Starlette app
    inside holds them as ``app.state.client`` and ``app.state.carrier``."""
    guard = Guard(limits)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.client = client_factory()
        app.state.carrier = carrier(app.state.client, multiplex_streams)
        await app.state.carrier.start()
        try:
            yield
        finally:
            await app.state.carrier.stop()
            await app.state.client.close()

    async def socket(websocket: WebSocket) -> None:
        own_port = int((websocket.scope.get("server") or ("", 0))[1] or 0)
        if not origin_allowed(websocket.headers.get("origin"), limits, own_port):
            await websocket.close(code=1008, reason="origin not allowed (--allowed-hosts, --allowed-origins)")
            return
        address = client_address(websocket.scope, limits.trusted_proxies)
        if not guard.socket_opened(address):
            await websocket.close(code=1008, reason="too many sockets from this address (--max-sockets-per-client)")
            return
        try:
            await websocket.accept()
            conversation = Conversation(websocket.app.state.carrier, guard, address)
            await converse(websocket, conversation, limits.max_message_bytes)
        finally:
            guard.socket_closed(address)

    app = Starlette(
        routes=[
            Route("/", page),
            Route("/healthz", healthz),
            Route("/models", models),
            WebSocketRoute("/ws", socket),
            Mount("/static", StaticFiles(packages=[("wordstream.gateway", "static")]), name="static"),
        ],
        lifespan=lifespan,
    )
    return Shield(app, limits.allowed_hosts)
