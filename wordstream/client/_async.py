"""The asyncio client: the one implementation (the sync Client runs it on a private loop)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from wordstream.client import errors
from wordstream.client import types as t
from wordstream.client.multiplex import MAX_ENTRIES, Multiplexer
from wordstream.client.protocol import (
    HISTORY_MODES,
    REPLAY_CHUNK,
    REPLICA_HEADER,
    SESSION_ID_HEADER,
    ReplayCallback,
    words_of,
)
from wordstream.shared import new_session_id, words_sha256
from wordstream.v1 import wordstream_pb2 as pb
from wordstream.v1 import wordstream_pb2_grpc as pb_grpc

log = logging.getLogger("wordstream.client")

REQUEST_ATTEMPTS = 4  # sends of one request, re-attaching between them, before its error is raised
# How a dropped stream ends: besides UNAVAILABLE, a balancer in front of a replica that died
# ends the stream with INTERNAL ("Internal error from Core": a reset stream), CANCELLED or UNKNOWN.
# On a stream these mean "resume", never "give up".
_DROPPED = {"UNAVAILABLE", "CANCELLED", "DEADLINE_EXCEEDED", "UNKNOWN", "INTERNAL"}


def stream_error(error: errors.WordstreamError) -> errors.WordstreamError:
    """A stream's error as callers see it: the codes of a dropped stream are Unavailable (keeping their code)."""
    if error.code in _DROPPED and not isinstance(error, errors.Unavailable):
        return errors.Unavailable(f"the stream dropped: {error}", error.code)
    return error


def is_loopback(target: str) -> bool:
    """Whether a gRPC target stays on this machine: a unix socket, localhost, 127.0.0.0/8 or ::1."""
    if target.startswith(("unix:", "unix-abstract:")):
        return True
    rest = target.split(":///", 1)[1] if ":///" in target else target.removeprefix("ipv4:").removeprefix("ipv6:")
    host = rest.rsplit(":", 1)[0] if rest.count(":") == 1 or rest.startswith("[") else rest
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve anywhere


def check_token_transport(target: str, token: str | None, tls: bool, insecure_token: bool) -> None:
    """Refuse to send a bearer token over plaintext beyond this machine unless told it is fine."""
    if token and not tls and not insecure_token and not is_loopback(target):
        raise errors.InsecureToken(
            f"refusing to send a bearer token in plaintext to {target}: connect with TLS (--tls, "
            "--root-certificates), or, on a private network, say so with --insecure-token "
            "(WORDSTREAM_INSECURE_TOKEN=1, Client(..., insecure_token=True))"
        )


def check_token_options(target: str, options: Mapping[str, Any]) -> None:
    """check_token_transport for the keyword options of Client and AsyncClient."""
    tls = bool(options.get("tls")) or options.get("root_certificates") is not None
    check_token_transport(target, options.get("token"), tls, bool(options.get("insecure_token")))


def channel_options(max_message_bytes: int) -> list[tuple[str, Any]]:
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", 30_000),
        # Reconnect quickly after a server restart, so a session resumes or replays within seconds.
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 2_000),
    ]


class AsyncClient:
    """A connection to a Wordstream server. ``async with AsyncClient("localhost:50051") as c: ...``

    ``tls`` uses the system roots (or ``root_certificates``, PEM bytes); ``tls_server_name`` is
    the name the server's certificate must carry when it is not the target's host; ``token`` is
    sent as ``authorization: Bearer <token>`` with every call.
    """

    def __init__(
        self,
        target: str = "localhost:50051",
        *,
        tls: bool = False,
        root_certificates: bytes | None = None,
        token: str | None = None,
        tls_server_name: str | None = None,
        timeout: float = 30.0,
        max_message_bytes: int = 64 * 2**20,
        reconnect_timeout: float = 15.0,
        insecure_token: bool = False,
    ) -> None:
        check_token_transport(target, token, tls or root_certificates is not None, insecure_token)
        self.target = target
        self.timeout = timeout
        self.reconnect_timeout = reconnect_timeout
        self.metadata: tuple[tuple[str, str], ...] = (("authorization", f"Bearer {token}"),) if token else ()
        options = channel_options(max_message_bytes)
        if tls_server_name:
            options.append(("grpc.ssl_target_name_override", tls_server_name))
        if tls or root_certificates:
            credentials = grpc.ssl_channel_credentials(root_certificates=root_certificates)
            self.channel = grpc.aio.secure_channel(target, credentials, options=options)
        else:
            self.channel = grpc.aio.insecure_channel(target, options=options)
        self.stub = pb_grpc.WordstreamStub(self.channel)  # type: ignore[no-untyped-call]  # generated, untyped

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.channel.close()

    def metadata_for(self, session_id: str) -> tuple[tuple[str, str], ...]:
        """The call's metadata: the token, and the session id as ``x-session-id``, so that a balancer
        hashing on it sends every call of a session to the same server."""
        return (*self.metadata, (SESSION_ID_HEADER, session_id))

    async def _unary(self, method: Any, request: Any, session_id: str = "") -> Any:
        metadata = self.metadata_for(session_id) if session_id else self.metadata
        try:
            return await method(request, timeout=self.timeout, metadata=metadata)
        except grpc.RpcError as e:
            raise errors.from_rpc_error(e) from None

    async def models(self) -> tuple[list[t.ModelInfo], str]:
        """The served models and the name of the default one."""
        response = await self._unary(self.stub.ListModels, pb.ListModelsRequest())
        return [t.model_info(m) for m in response.models], response.default_model

    async def health(self, service: str = "") -> str:
        """SERVING or NOT_SERVING (grpc.health.v1)."""
        stub = health_pb2_grpc.HealthStub(self.channel)
        response = await self._unary(stub.Check, health_pb2.HealthCheckRequest(service=service))
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))

    async def get_session(self, session_id: str, start: int = 0, end: int = 0) -> dict[str, Any]:
        """The server's record of a session: its model, counts and history steps [start, end)."""
        response = await self._unary(
            self.stub.GetSession, pb.GetSessionRequest(session_id=session_id, start=start, end=end), session_id
        )
        labels = list(response.model.labels)
        return {
            "session_id": response.session_id,
            "model": response.model.name,
            "words": response.words,
            "steps": response.steps,
            "start": response.start,
            "attached": response.attached,
            "history": [t.step(s, labels) for s in response.history],
        }

    async def close_session(self, session_id: str) -> None:
        await self._unary(self.stub.CloseSession, pb.CloseSessionRequest(session_id=session_id), session_id)

    def session(self, model: str = "", history: str = "delta", on_replay: ReplayCallback | None = None) -> AsyncSession:
        """A new session, opened on entering ``async with``."""
        return AsyncSession(self, model, history, on_replay)

    def multiplexer(self, key: str | None = None, max_entries: int = MAX_ENTRIES) -> Multiplexer:
        """Many sessions on one Multiplex stream, started on entering ``async with`` (multiplex.py);
        ``key`` is the stream's routing key (x-session-id), random by default; ``max_entries``
        the most entries one request carries (keep it at most the server's --multiplex-max-inflight)."""
        return Multiplexer(self, key, max_entries)

    def resume(self, session_id: str, history: str = "delta", on_replay: ReplayCallback | None = None) -> AsyncSession:
        """An existing session by id, attached on entering ``async with`` (or ``open()``).

        Its words are read back from the server's history, so if the server later loses the
        session (a restart without --state-dir) it is replayed like any other (``on_replay`` is
        told). A session the server does not have raises NotFound."""
        session = AsyncSession(self, "", history, on_replay)
        session.id = session_id
        return session


class AsyncSession:
    """One text being typed. ``push(word)`` returns the output and state after the word.

    The history is rebuilt locally from the server's deltas. A dropped connection is
    re-attached by id; if the server no longer has the session (restart, expiry), the
    words sent so far are replayed into a new session, ``on_replay`` is told, and the
    history carries on unchanged.
    """

    def __init__(self, client: AsyncClient, model: str, history: str, on_replay: ReplayCallback | None) -> None:
        if history not in HISTORY_MODES:
            raise ValueError(f"history must be one of {', '.join(HISTORY_MODES)}, got {history!r}")
        self.client = client
        self.model_name = model
        self.mode = history
        self.on_replay = on_replay
        self.id = ""
        self.model: t.ModelInfo | None = None
        self.words: list[str] = []
        self.replays = 0
        self.resent = 0  # words sent again because the server held fewer or other words on a resume
        self._steps: list[t.Step] = []
        self._call: Any = None
        self.replica = ""  # the server that answers this session now (its x-wordstream-replica header)
        self._seq = 0
        self._closed = False

    async def __aenter__(self) -> AsyncSession:
        await self.open()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            await self.close()
        else:
            self._end_stream()

    @property
    def labels(self) -> list[str]:
        return self.model.labels if self.model else []

    # --- the stream -------------------------------------------------------------------

    async def open(self) -> None:
        if self.id:
            opened = await self._attach(
                pb.StreamRequest(resume=pb.Resume(session_id=self.id, history=HISTORY_MODES[self.mode]))
            )
            self.model_name = opened.model.name  # a replay opens the same model
            steps = (await self.client.get_session(self.id))["history"]
            # Every word has at least one step (the server refuses words without tokens), so the
            # history names every word typed before this client, in order.
            self.words = words_of(steps)
            if len(self.words) != opened.position.words:
                raise errors.NotFound(
                    f"session {self.id[:8]}: its words cannot be rebuilt from its history "
                    f"({len(self.words)} found, {opened.position.words} expected)"
                )
            if self.mode != "none":
                self._steps = steps
            return
        await self._attach(pb.StreamRequest(open=pb.Open(model=self.model_name, history=HISTORY_MODES[self.mode])))

    async def _attach(self, request: pb.StreamRequest) -> pb.Opened:
        """Open (under an id this client chooses: 192 random bits) or resume, on a new stream."""
        self._end_stream()
        session_id = request.resume.session_id if request.HasField("resume") else new_session_id()
        self._call = self.client.stub.Stream(metadata=self.client.metadata_for(session_id))
        response = await self._exchange(request)
        metadata = await self._call.initial_metadata()
        self.replica = next((str(v) for k, v in metadata or () if k == REPLICA_HEADER), "")
        self.id = response.session_id
        self.model = t.model_info(response.opened.model)
        return response.opened

    async def _exchange(self, request: pb.StreamRequest) -> pb.StreamResponse:
        """Write one request and read its first answer; errors become client exceptions."""
        self._seq += 1
        request.seq = self._seq
        if self._call is None:
            raise errors.Unavailable("the stream is not open")
        try:
            await self._call.write(request)
            response = await self._call.read()
        except grpc.RpcError as e:
            raise stream_error(errors.from_rpc_error(e)) from None
        except asyncio.InvalidStateError:  # the call ended under us (cancelled, connection lost)
            raise errors.Unavailable("the stream ended") from None
        if response is grpc.aio.EOF:
            raise await self._ended()
        return self._check(response)

    async def _read(self) -> pb.StreamResponse:
        try:
            response = await self._call.read()
        except grpc.RpcError as e:
            raise stream_error(errors.from_rpc_error(e)) from None
        if response is grpc.aio.EOF:
            raise await self._ended()
        return self._check(response)

    async def _ended(self) -> errors.WordstreamError:
        code = await self._call.code()
        return stream_error(errors.from_code(code.name, await self._call.details() or "the server ended the stream"))

    @staticmethod
    def _check(response: pb.StreamResponse) -> pb.StreamResponse:
        if response.WhichOneof("kind") == "error":
            raise errors.from_code(response.error.code, response.error.message)
        return response

    def _end_stream(self) -> None:
        if self._call is not None:
            self._call.cancel()
            self._call = None

    async def _request(self, request: pb.StreamRequest, answers: int = 1) -> list[pb.StreamResponse]:
        """Send a request and read its answers; when the stream drops, re-attach and send it again
        (a few times, within ``reconnect_timeout``: a store failing over twice can refuse twice)."""
        deadline = asyncio.get_running_loop().time() + self.client.reconnect_timeout
        for attempt in range(1, REQUEST_ATTEMPTS + 1):
            try:
                first = await self._exchange(request)
                return [first] + [await self._read() for _ in range(answers - 1)]
            except errors.Unavailable:
                if attempt == REQUEST_ATTEMPTS or self._closed or asyncio.get_running_loop().time() > deadline:
                    raise
                await self._recover()
        raise AssertionError("unreachable")

    async def _recover(self) -> None:
        """Re-attach after a dropped connection, or replay the words into a new session.

        While the server is unreachable, or still holds the session for the dead stream
        (until it notices the drop), this retries with backoff for ``reconnect_timeout`` seconds.
        """
        old_id = self.id
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.client.reconnect_timeout
        delay = 0.05
        while True:
            try:
                await self._reattach_or_replay(old_id)
                return
            except (errors.Unavailable, errors.SessionBusy):
                if loop.time() + delay > deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    async def _reattach_or_replay(self, old_id: str) -> None:
        try:
            opened = await self._attach(
                pb.StreamRequest(resume=pb.Resume(session_id=old_id, history=HISTORY_MODES[self.mode]))
            )
        except errors.NotFound:
            await self._attach(pb.StreamRequest(open=pb.Open(model=self.model_name, history=HISTORY_MODES[self.mode])))
            words, self.words, self._steps = self.words, [], []
            for start in range(0, len(words), REPLAY_CHUNK):
                await self._paste(words[start : start + REPLAY_CHUNK])
            self.replays += 1
            log.warning(
                "session %s was lost by the server; replayed %d words into %s", old_id[:8], len(words), self.id[:8]
            )
            if self.on_replay:
                self.on_replay(old_id, self.id, len(words))
            return
        await self._resync(opened)

    async def _resync(self, opened: pb.Opened) -> None:
        """Make the words the server holds this client's own (the text is the log): a word the
        server read but whose answer the drop lost is undone, a tail a failed-over store lost
        (or other words it kept after a rewind) is sent again after the longest common prefix."""
        if opened.words_sha256 == words_sha256(self.words):
            return
        steps = (await self.client.get_session(self.id))["history"]
        held = words_of(steps)
        common = 0
        while common < min(len(held), len(self.words)) and held[common] == self.words[common]:
            common += 1
        if len(held) > common:
            await self._exchange(pb.StreamRequest(rewind=pb.Rewind(words=len(held) - common)))
        mine = self.words[common:]
        del self.words[common:]
        del self._steps[sum(1 for s in steps if s.word_index < common) if self.mode != "none" else 0 :]
        for start in range(0, len(mine), REPLAY_CHUNK):
            await self._paste(mine[start : start + REPLAY_CHUNK])
        self.resent += len(mine)
        log.warning(
            "session %s: the server held %d of this client's words; %d sent again", self.id[:8], common, len(mine)
        )

    # --- what callers use -----------------------------------------------------------------

    async def push(self, word: str) -> t.WordResult:
        """Send one word; returns its result (one step per token)."""
        response = (await self._request(pb.StreamRequest(word=word)))[0]
        return self._apply_word(response)

    async def push_text(self, text: str) -> list[t.WordResult]:
        """Send every whitespace-separated word of ``text`` in one message (a paste)."""
        words = text.split()
        if not words:
            raise errors.InvalidRequest("push_text needs at least one word")
        return await self._paste(words)

    async def _paste(self, words: Sequence[str]) -> list[t.WordResult]:
        responses = await self._request(pb.StreamRequest(paste=pb.Paste(words=words)), answers=len(words))
        return [self._apply_word(r) for r in responses]

    async def rewind(self, words: int = 1) -> None:
        """Undo the last ``words`` words."""
        response = (await self._request(pb.StreamRequest(rewind=pb.Rewind(words=words))))[0]
        self._apply_position(response.rewound)

    async def reset(self) -> None:
        response = (await self._request(pb.StreamRequest(reset=pb.Reset())))[0]
        self._apply_position(response.rewound)

    async def close(self) -> None:
        """End the session on the server and the stream."""
        if self._closed or not self.id:
            return
        self._closed = True
        try:
            await self._exchange(pb.StreamRequest(close=pb.Close()))
        except errors.Unavailable:  # the stream died under us: close the session by id instead
            try:
                await self.client.close_session(self.id)
            except errors.NotFound:
                pass  # the server no longer had it: closed all the same
        finally:
            self._end_stream()

    async def detach(self) -> None:
        """End the stream but keep the session on the server: resume it later by its id."""
        self._end_stream()

    async def history(self) -> list[t.Step]:
        """The complete record of every step (fetched from the server in history mode "none")."""
        if self.mode == "none":
            steps: list[t.Step] = (await self.client.get_session(self.id))["history"]
            return steps
        return list(self._steps)

    # --- bookkeeping --------------------------------------------------------------------------

    def _apply_word(self, response: pb.StreamResponse) -> t.WordResult:
        result = response.word
        steps = [t.step(s, self.labels) for s in result.history.steps]
        if self.mode != "none":
            del self._steps[result.history.start :]
            self._steps.extend(steps)
        self.words.append(result.word)
        new = steps[len(steps) - len(result.tokens) :] if steps else []
        return t.WordResult(
            response.session_id,
            result.word_index,
            result.word,
            [t.token(x) for x in result.tokens],
            t.output(result.output, self.labels) if result.HasField("output") else None,
            t.state(result.state),
            new,
            result.history.length,
        )

    def _apply_position(self, position: pb.Position) -> None:
        del self.words[position.words :]
        del self._steps[position.steps :]
