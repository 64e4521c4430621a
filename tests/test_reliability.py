"""Restarts, saved sessions, authentication and TLS, against real servers and real channels."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.helpers import TEXT, MakeServer, ServerThread, Stream, extra, open_stream, self_signed_certificate
from wordstream.client import Client, NotFound, Unauthenticated
from wordstream.server import persistence
from wordstream.v1 import wordstream_pb2 as pb
from wordstream.v1 import wordstream_pb2_grpc as pb_grpc


def history(target: str, session_id: str, token: str | None = None) -> list[pb.Step]:
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    stub = pb_grpc.WordstreamStub(grpc.insecure_channel(target))
    return list(stub.GetSession(pb.GetSessionRequest(session_id=session_id), metadata=metadata).history)


def test_graceful_restart_keeps_every_session(make_server: MakeServer, tmp_path: Path) -> None:
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
        (persistence.MAGIC + b"\x00" * 40, "the file record is unreadable"),
    ],
)
def test_a_corrupt_state_file_is_refused_and_kept_aside(
    make_server: MakeServer, tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes, message: str
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / persistence.FILE_NAME).write_bytes(content)
    with caplog.at_level(logging.ERROR, logger="wordstream.persistence"):
        server: ServerThread = make_server(state_dir=str(state))
    assert len(server.service.store) == 0
    rejected = list(state.glob("*.rejected"))
    assert len(rejected) == 1 and rejected[0].read_bytes() == content
    assert any(message in extra(r, "error") for r in caplog.records)
    stream, _ = open_stream(server.target)  # and the server serves
    assert stream.word("fine").word.word == "fine"
    stream.end()


def state_file(path: Path, first: dict[str, Any], *sessions: dict[str, Any], end: int | None = None) -> Path:
    """A state file whose every record has a valid checksum, with the headers given (no arrays)."""
    with open(path, "wb") as f:
        f.write(persistence.MAGIC)
        for header in (first, *sessions, {"end": len(sessions) if end is None else end}):
            persistence.write_record(f, header, [])
    return path


FILE_RECORD = {"format": persistence.FORMAT, "version": persistence.VERSION}


def test_a_foreign_or_newer_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.wss"
    with pytest.raises(persistence.StateFileError, match="not a Wordstream sessions file"):
        persistence.read(state_file(path, {"format": "something.else", "version": persistence.VERSION}))
    with pytest.raises(persistence.StateFileError, match="version 4 is not supported"):
        persistence.read(state_file(path, {"format": persistence.FORMAT, "version": 4}))


@pytest.mark.parametrize(
    ("change", "fault"),
    [
        ({"idle_seconds": None}, "field 'idle_seconds' is missing"),
        ({"idle_seconds": -1e9}, "'idle_seconds' must be a finite number of at least 0"),
        ({"words": "abc"}, "field 'words' is missing or not a list"),
        ({"words": [-1]}, "'words' must be a list of record sizes"),
        ({"words": [True]}, "'words' must be a list of record sizes"),
        ({"words": [1000]}, "the word records take 1000 bytes, the record's payload is 0"),
        ({"mode": "sideways"}, "not a history mode"),
    ],
)
def test_every_field_of_a_session_record_is_checked(tmp_path: Path, change: dict[str, object], fault: str) -> None:
    good: dict[str, Any] = {
        "id": "a" * 32,
        "model": "m",
        "fingerprint": "f",
        "mode": "delta",
        "owner": None,
        "idle_seconds": 1.0,
        "words": [],
    }
    bad = {**good, "id": "b" * 32, **change}
    sessions, faults = persistence.read(state_file(tmp_path / "x.wss", FILE_RECORD, good, bad))
    assert [s.id for s in sessions] == ["a" * 32]  # the good record stands
    assert len(faults) == 1 and fault in faults[0] and "bbbbbbbb" in faults[0], faults


def saved_sessions(make_server: MakeServer, state: Path, count: int) -> tuple[list[str], dict[str, list[pb.Step]]]:
    """``count`` sessions of three words each, saved to ``state`` by a graceful stop."""
    first: ServerThread = make_server(state_dir=str(state))
    ids, histories = [], {}
    for _ in range(count):
        stream, opened = open_stream(first.target)
        for word in TEXT[:3]:
            stream.word(word)
        ids.append(opened.session_id)
        histories[opened.session_id] = history(first.target, opened.session_id)
        stream.end()
    first.stop(grace=1.0)
    return ids, histories


def test_the_state_file_is_private(make_server: MakeServer, tmp_path: Path) -> None:
    state = tmp_path / "state"
    saved_sessions(make_server, state, 1)
    assert (state / persistence.FILE_NAME).stat().st_mode & 0o777 == 0o600


def test_one_damaged_session_costs_that_session_only(make_server: MakeServer, tmp_path: Path) -> None:
    state = tmp_path / "state"
    ids, histories = saved_sessions(make_server, state, 3)
    path = state / persistence.FILE_NAME
    data = bytearray(path.read_bytes())
    at = data.index(ids[1].encode())  # inside the second session's record
    data[at + 3] ^= 0x01  # one flipped bit
    path.write_bytes(bytes(data))
    second: ServerThread = make_server(state_dir=str(state))
    assert len(second.service.store) == 2
    for session_id in (ids[0], ids[2]):
        assert history(second.target, session_id) == histories[session_id]
    assert len(list(state.glob("*.rejected"))) == 1  # kept for a person to look at


def test_a_truncated_file_restores_the_sessions_before_the_cut(make_server: MakeServer, tmp_path: Path) -> None:
    state = tmp_path / "state"
    ids, histories = saved_sessions(make_server, state, 3)
    path = state / persistence.FILE_NAME
    data = path.read_bytes()
    path.write_bytes(data[: data.index(ids[2].encode()) + 10])  # cut inside the third session's record
    second: ServerThread = make_server(state_dir=str(state))
    assert sorted(s.id for s in second.service.store.sessions()) == sorted(ids[:2])
    assert history(second.target, ids[1]) == histories[ids[1]]


def test_a_malformed_but_checksum_valid_file_does_not_stop_the_server(make_server: MakeServer, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    state_file(state / persistence.FILE_NAME, FILE_RECORD, {"id": "x" * 32}, ["not", "a", "dict"])  # type: ignore[arg-type]
    server: ServerThread = make_server(state_dir=str(state))
    assert len(server.service.store) == 0
    assert len(list(state.glob("*.rejected"))) == 1
    stream, _ = open_stream(server.target)
    assert stream.word("fine").word.word == "fine"
    stream.end()


def test_sessions_of_a_changed_model_are_not_restored(
    make_server: MakeServer, tmp_path: Path, tiny_models: dict[str, Path]
) -> None:
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


def test_bearer_tokens_and_session_ownership(make_server: MakeServer) -> None:
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


@pytest.mark.slow
def test_tls(make_server: MakeServer, tmp_path: Path) -> None:
    key, cert = self_signed_certificate(tmp_path)
    server: ServerThread = make_server(tls_cert=str(cert), tls_key=str(key))
    with Client(server.target, root_certificates=cert.read_bytes()) as client, client.session() as session:
        assert session.push("fine").word == "fine"
    with pytest.raises(grpc.RpcError):  # plaintext cannot talk to it
        pb_grpc.WordstreamStub(grpc.insecure_channel(server.target)).ListModels(pb.ListModelsRequest(), timeout=3)


def test_streams_per_connection_are_limited(make_server: MakeServer) -> None:
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


def test_refused_tokens_and_cross_token_attempts_are_logged_without_the_token(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    server: ServerThread = make_server(tokens="alpha-token,beta-token")
    stub = pb_grpc.WordstreamStub(grpc.insecure_channel(server.target))
    with Client(server.target, token="alpha-token") as alpha, alpha.session() as session:
        session.push("fine")
        with caplog.at_level(logging.WARNING, logger="wordstream"):
            for _ in range(30):  # a flood of bad tokens: at most a burst of lines
                with pytest.raises(grpc.RpcError):
                    stub.ListModels(pb.ListModelsRequest(), metadata=(("authorization", "Bearer wrong-token"),))
            with pytest.raises(grpc.RpcError):
                stub.GetSession(pb.GetSessionRequest(session_id=session.id))
            with Client(server.target, token="beta-token") as beta, pytest.raises(NotFound):
                beta.get_session(session.id)
    refused = [r for r in caplog.records if getattr(r, "event", "") == "unauthenticated"]
    assert 1 <= len(refused) <= 10, len(refused)
    assert {extra(r, "method") for r in refused} == {"/wordstream.v1.Wordstream/ListModels"}
    assert all(extra(r, "peer").startswith(("ipv4:", "ipv6:")) for r in refused)
    cross = [r for r in caplog.records if getattr(r, "event", "") == "not_owner"]
    assert len(cross) == 1 and extra(cross[0], "method") == "GetSession" and extra(cross[0], "session") == session.id
    for record in caplog.records:
        text = record.getMessage() + repr(vars(record))
        assert "alpha-token" not in text and "beta-token" not in text and "wrong-token" not in text


def test_a_throttled_log_line_says_how_many_were_dropped(caplog: pytest.LogCaptureFixture) -> None:
    from wordstream.server.logs import Throttled

    now = [0.0]
    throttled = Throttled(logging.getLogger("wordstream.test"), burst=2, interval=10.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="wordstream.test"):
        for _ in range(5):
            throttled.warning("refused", event="x")
        now[0] = 10.0
        throttled.warning("refused", event="x")
    assert len(caplog.records) == 3
    assert getattr(caplog.records[-1], "dropped_since_last", None) == 3
