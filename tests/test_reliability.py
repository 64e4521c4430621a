"""Restarts, saved sessions, authentication and TLS, against real servers and real channels."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

import grpc
import pytest

from client import Client, NotFound, Unauthenticated
from server import persistence
from tests.conftest import ServerThread
from tests.test_server import TEXT, Stream, open_stream
from wordstream.v1 import wordstream_pb2 as pb
from wordstream.v1 import wordstream_pb2_grpc as pb_grpc


def history(target: str, session_id: str, token: str | None = None) -> list[pb.Step]:
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    stub = pb_grpc.WordstreamStub(grpc.insecure_channel(target))
    return list(stub.GetSession(pb.GetSessionRequest(session_id=session_id), metadata=metadata).history)


def test_graceful_restart_keeps_every_session(make_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    state = tmp_path / "state"
    first: ServerThread = make_server(state_dir=str(state))
    ids, before = [], {}
    for model in ("tiny-lstm", "tiny-gru", "tiny-rnn"):
        stream, opened = open_stream(first.target, model=model)
        for word in TEXT[:5]:
            stream.word(word)
        stream.send(rewind=pb.Rewind(words=1))
        ids.append(opened.session_id)
        before[opened.session_id] = history(first.target, opened.session_id)
        stream.end()
    empty, empty_opened = open_stream(first.target)  # a session with no words yet
    empty.end()
    first.stop(grace=1.0)
    assert (state / persistence.FILE_NAME).is_file()

    second: ServerThread = make_server(state_dir=str(state))
    assert not (state / persistence.FILE_NAME).exists()  # read once, then removed
    assert len(second.service.store) == 4
    for session_id in ids:
        assert history(second.target, session_id) == before[session_id]
        resumed = Stream(second.target)
        opened = resumed.send(resume=pb.Resume(session_id=session_id))
        assert opened.opened.resumed and opened.opened.position.words == 4
        after = resumed.word(TEXT[5]).word
        # The restored state continues exactly where it stopped: compare with a fresh session.
        fresh, _ = open_stream(second.target, model=opened.opened.model.name)
        for word in TEXT[:4] + [TEXT[5]]:
            expected = fresh.word(word).word
        assert list(after.output.probabilities) == list(expected.output.probabilities)
        resumed.end()
        fresh.end()
    assert history(second.target, empty_opened.session_id) == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"garbage", "not a Wordstream state file (bad magic bytes)"),
        (persistence.MAGIC + b"\x00" * 40, "checksum mismatch"),
    ],
)
def test_a_corrupt_state_file_is_refused_and_kept_aside(
    make_server, tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes, message: str
) -> None:  # type: ignore[no-untyped-def]
    state = tmp_path / "state"
    state.mkdir()
    (state / persistence.FILE_NAME).write_bytes(content)
    with caplog.at_level(logging.ERROR, logger="wordstream.persistence"):
        server: ServerThread = make_server(state_dir=str(state))
    assert len(server.service.store) == 0
    rejected = list(state.glob("*.rejected"))
    assert len(rejected) == 1 and rejected[0].read_bytes() == content
    assert any(message in r.error for r in caplog.records)  # type: ignore[attr-defined]
    stream, _ = open_stream(server.target)  # and the server serves
    assert stream.word("fine").word.word == "fine"
    stream.end()


def test_a_foreign_or_newer_file_is_refused(tmp_path: Path) -> None:
    import hashlib
    import json

    def make(header: dict[str, object]) -> Path:
        raw = json.dumps(header).encode()
        body = persistence.MAGIC + len(raw).to_bytes(8, "little") + raw
        path = tmp_path / "x.wss"
        path.write_bytes(body + hashlib.sha256(body).digest())
        return path

    with pytest.raises(persistence.StateFileError, match="not a Wordstream sessions file"):
        persistence.read(make({"format": "something.else", "version": 1, "sessions": []}))
    with pytest.raises(persistence.StateFileError, match="version 2 is not supported"):
        persistence.read(make({"format": persistence.FORMAT, "version": 2, "sessions": []}))
    bad_array = {"id": "x" * 32, "arrays": {"probs": {"offset": 0, "dtype": "<f4", "shape": [1000]}}}
    with pytest.raises(persistence.StateFileError, match="runs past the end"):
        persistence.read(make({"format": persistence.FORMAT, "version": 1, "sessions": [bad_array]}))
    objects = {"id": "x" * 32, "arrays": {"probs": {"offset": 0, "dtype": "|O", "shape": [1]}}}
    with pytest.raises(persistence.StateFileError, match="non-numeric dtype"):
        persistence.read(make({"format": persistence.FORMAT, "version": 1, "sessions": [objects]}))


def test_sessions_of_a_changed_model_are_not_restored(
    make_server, tmp_path: Path, tiny_models: dict[str, Path]
) -> None:  # type: ignore[no-untyped-def]
    models = tmp_path / "models"
    models.mkdir()
    for cell in ("lstm", "gru"):
        shutil.copy(tiny_models[cell], models / f"tiny-{cell}.onnx")
    state = tmp_path / "state"
    first: ServerThread = make_server(models=str(models), state_dir=str(state))
    kept, kept_opened = open_stream(first.target, model="tiny-lstm")
    kept.word("fine")
    kept.end()
    gone, gone_opened = open_stream(first.target, model="tiny-gru")
    gone.word("fine")
    gone.end()
    first.stop(grace=1.0)
    shutil.copy(tiny_models["rnn"], models / "tiny-gru.onnx")  # another model under the same name
    second: ServerThread = make_server(models=str(models), state_dir=str(state))
    assert len(history(second.target, kept_opened.session_id)) == 1
    with pytest.raises(grpc.RpcError) as info:
        history(second.target, gone_opened.session_id)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_bearer_tokens_and_session_ownership(make_server) -> None:  # type: ignore[no-untyped-def]
    server: ServerThread = make_server(tokens="alpha-token,beta-token")
    channel = grpc.insecure_channel(server.target)
    stub = pb_grpc.WordstreamStub(channel)
    for metadata, message in (
        ((), "missing bearer token"),
        ((("authorization", "Bearer nope"),), "invalid bearer token"),
    ):
        with pytest.raises(grpc.RpcError) as info:
            stub.ListModels(pb.ListModelsRequest(), metadata=metadata)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED and info.value.details() == message
        with pytest.raises(grpc.RpcError) as info:
            next(stub.Stream(iter([pb.StreamRequest(open=pb.Open())]), metadata=metadata))
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with Client(server.target, token="nope") as client:
        with pytest.raises(Unauthenticated, match="invalid bearer token"):
            client.models()
        assert client.health() == "SERVING"  # health stays open for orchestrators

    with Client(server.target, token="alpha-token") as alpha, Client(server.target, token="beta-token") as beta:
        with alpha.session() as session:
            session.push("fine")
            with pytest.raises(NotFound):
                beta.get_session(session.id)
            with pytest.raises(NotFound):
                beta.close_session(session.id)
            intruder = beta.resume(session.id)
            with pytest.raises(NotFound):
                intruder.open()
            assert len(alpha.get_session(session.id)["history"]) == 1  # untouched


def test_tls(make_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )
    server: ServerThread = make_server(tls_cert=str(cert), tls_key=str(key))
    with Client(server.target, root_certificates=cert.read_bytes()) as client, client.session() as session:
        assert session.push("fine").word == "fine"
    with pytest.raises(grpc.RpcError):  # plaintext cannot talk to it
        pb_grpc.WordstreamStub(grpc.insecure_channel(server.target)).ListModels(pb.ListModelsRequest(), timeout=3)


def test_streams_per_connection_are_limited(make_server) -> None:  # type: ignore[no-untyped-def]
    import queue

    server: ServerThread = make_server(max_streams_per_connection=2)
    # A connection of its own (channels in one process otherwise share their subchannels).
    channel = grpc.insecure_channel(server.target, options=[("grpc.use_local_subchannel_pool", 1)])
    stub = pb_grpc.WordstreamStub(channel)
    feeds: list[queue.Queue[pb.StreamRequest | None]] = []
    calls = []  # kept, so the streams stay open

    def held_stream(timeout: float | None = None) -> pb.StreamResponse:
        feed: queue.Queue[pb.StreamRequest | None] = queue.Queue()
        feeds.append(feed)
        feed.put(pb.StreamRequest(open=pb.Open()))
        calls.append(stub.Stream(iter(feed.get, None), timeout=timeout))
        return next(calls[-1])

    assert held_stream().opened.model.name and held_stream().opened.model.name  # two streams, one connection
    with pytest.raises(grpc.RpcError) as info:  # a third waits for a free stream (or is refused), never served
        held_stream(timeout=1.5)
    assert info.value.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE)
    other, _ = open_stream(server.target)  # another connection is served
    assert other.word("fine").word.word == "fine"
    other.end()
    for feed in feeds:
        feed.put(None)
