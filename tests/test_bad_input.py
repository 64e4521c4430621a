"""The bad-input matrix (docs/RELIABILITY.md): each input, the answer it gets, and proof that
the session's state and history are unchanged afterwards. Real server, real channel."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import grpc
import pytest

from tests.helpers import MakeServer, ServerThread, Stream, expect_abort, open_stream, poll
from wordstream.v1 import wordstream_pb2 as pb
from wordstream.v1 import wordstream_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parent.parent

RAW_STREAM = "/wordstream.v1.Wordstream/Stream"


def snapshot(target: str, session_id: str) -> tuple[int, list[pb.Step]]:
    stub = pb_grpc.WordstreamStub(grpc.insecure_channel(target))
    record = stub.GetSession(pb.GetSessionRequest(session_id=session_id))
    return record.words, list(record.history)


@pytest.mark.parametrize(
    ("word", "message"),
    [
        ("\x07\x1b", "has no tokens after normalisation"),  # control characters only
        ("\u200b\u200d", "has no tokens after normalisation"),  # invisible format characters only
        ("a\tb", "must not contain whitespace"),
        ("\n", "empty word"),
        ("w" * 10_000, "10000 characters is over the limit of 100"),
    ],
)
def test_bad_words(server: ServerThread, word: str, message: str) -> None:
    stream, opened = open_stream(server.target)
    stream.word("fine")
    before = snapshot(server.target, opened.session_id)
    answer = stream.word(word)
    assert answer.error.code == "INVALID_ARGUMENT" and message in answer.error.message
    assert snapshot(server.target, opened.session_id) == before
    assert stream.word("film").word.word_index == 1
    stream.end()


def test_a_control_character_inside_a_word_separates_tokens(server: ServerThread) -> None:
    stream, _ = open_stream(server.target)
    assert [t.text for t in stream.word("fine\x00film").word.tokens] == ["fine", "film"]
    stream.end()


@pytest.mark.parametrize("words", [2**31 - 1, -(2**31), 3])
def test_huge_negative_and_past_the_start_rewinds(server: ServerThread, words: int) -> None:
    stream, opened = open_stream(server.target)
    stream.word("fine")
    stream.word("film")
    before = snapshot(server.target, opened.session_id)
    answer = stream.send(rewind=pb.Rewind(words=words))
    assert answer.error.code == "INVALID_ARGUMENT" and "rewind" in answer.error.message
    assert snapshot(server.target, opened.session_id) == before
    stream.end()


def test_invalid_utf8_and_malformed_protobuf_on_the_wire(server: ServerThread) -> None:
    stream, opened = open_stream(server.target)
    stream.word("fine")
    before = snapshot(server.target, opened.session_id)
    stream.end()
    channel = grpc.insecure_channel(server.target)
    raw = channel.stream_stream(RAW_STREAM)  # bytes in, bytes out
    resume = pb.StreamRequest(resume=pb.Resume(session_id=opened.session_id)).SerializeToString()
    invalid_utf8 = bytes([0x22, 0x02, 0xFF, 0xFE])  # field 4 (word), two bytes that are not UTF-8
    not_protobuf = bytes([0xFF, 0xFF, 0xFF])
    word = pb.StreamRequest(word="film").SerializeToString()

    def exchange() -> list[pb.StreamResponse] | None:
        try:
            return [pb.StreamResponse.FromString(b) for b in raw(iter([resume, invalid_utf8, not_protobuf, word]))]
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.FAILED_PRECONDITION, e  # the first stream may still be detaching
            return None

    answers = poll(exchange, "the session to be resumable")
    assert answers is not None
    kinds = [a.WhichOneof("kind") for a in answers]
    assert kinds == ["opened", "error", "error", "word"]
    for answer in answers[1:3]:
        assert answer.error.code == "INVALID_ARGUMENT" and "malformed request" in answer.error.message
    words, steps = snapshot(server.target, opened.session_id)
    assert (words, steps[:-1]) == (before[0] + 1, before[1])  # only the good word was added
    for method in ("GetSession", "ListModels", "CloseSession"):
        unary = channel.unary_unary(f"/wordstream.v1.Wordstream/{method}")
        with pytest.raises(grpc.RpcError) as info:
            unary(not_protobuf)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, method
        assert "malformed request" in info.value.details(), method


def test_an_unexpected_fault_in_a_unary_call_answers_internal_generically(
    server: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    """Fault injection: the domain raises an error the status table does not know."""

    def broken(*args: object) -> None:
        raise RuntimeError("secret detail of the fault")

    server.service.look = broken  # type: ignore[method-assign,assignment]
    server.service.close = broken  # type: ignore[method-assign,assignment]
    stub = pb_grpc.WordstreamStub(grpc.insecure_channel(server.target))
    with caplog.at_level(logging.ERROR, logger="wordstream.transport"):
        for call, request in (
            (stub.GetSession, pb.GetSessionRequest(session_id="x" * 32)),
            (stub.CloseSession, pb.CloseSessionRequest(session_id="x" * 32)),
        ):
            with pytest.raises(grpc.RpcError) as info:
                call(request)
            assert info.value.code() == grpc.StatusCode.INTERNAL
            assert info.value.details() == "internal error; the server log has the details"
    assert sum("secret detail of the fault" in (r.exc_text or "") for r in caplog.records) == 2


@pytest.mark.slow
def test_a_default_model_that_does_not_load_stops_the_server(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    import shutil
    import subprocess

    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(tiny_models["gru"], models / "tiny-gru.onnx")
    (models / "tiny-lstm.onnx").write_bytes(b"not an onnx file")
    command = [
        sys.executable,
        "-m",
        "wordstream.server",
        "--port",
        "0",
        "--models",
        str(models),
        "--default-model",
        "tiny-lstm",
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "ModelError: the default model 'tiny-lstm' is not among the models that loaded" in result.stderr
    assert "(tiny-gru)" in result.stderr


def test_unknown_expired_and_closed_sessions(make_server: MakeServer) -> None:
    server: ServerThread = make_server(idle_timeout=0.2, reap_interval=0.05)
    stream, opened = open_stream(server.target)
    stream.word("fine")
    stream.end()
    poll(lambda: not server.service.store.has(opened.session_id), "the idle session to expire")
    expect_abort(
        Stream(server.target),
        grpc.StatusCode.NOT_FOUND,
        "not found (unknown, expired or closed)",
        resume=pb.Resume(session_id=opened.session_id),
    )
    closing, closing_opened = open_stream(server.target)
    closing.send(close=pb.Close())
    closing.end()
    expect_abort(
        Stream(server.target),
        grpc.StatusCode.NOT_FOUND,
        "not found (unknown, expired or closed)",
        resume=pb.Resume(session_id=closing_opened.session_id),
    )
    unknown = "A" * 32  # well formed, never opened
    expect_abort(Stream(server.target), grpc.StatusCode.NOT_FOUND, "not found", resume=pb.Resume(session_id=unknown))


@pytest.mark.parametrize(
    ("session_id", "why"),
    [
        ("", "0 characters, expected 22 to 64"),
        ("nope", "4 characters, expected 22 to 64"),
        ("{" + "a" * 30 + "}", "only letters, digits"),  # a hash tag would pick another store slot
        ("a" * 10_000, "10000 characters, expected 22 to 64"),  # 10 KB in the request body
        ("a" * 31 + "/", "only letters, digits"),
    ],
)
def test_a_malformed_session_id_is_refused_on_every_entry_point(
    server: ServerThread, session_id: str, why: str
) -> None:
    """INVALID_ARGUMENT before any lookup, for resume, GetSession and CloseSession alike (a
    well-formed unknown id is NOT_FOUND: the test above)."""
    expect_abort(Stream(server.target), grpc.StatusCode.INVALID_ARGUMENT, why, resume=pb.Resume(session_id=session_id))
    stub = pb_grpc.WordstreamStub(grpc.insecure_channel(server.target))
    for call in (
        lambda: stub.GetSession(pb.GetSessionRequest(session_id=session_id)),
        lambda: stub.CloseSession(pb.CloseSessionRequest(session_id=session_id)),
    ):
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and why in info.value.details()


def test_a_long_session_id_in_the_header_is_refused(server: ServerThread) -> None:
    """About 1 KB in x-session-id (gRPC's own metadata limit is lower than a body's)."""
    stub = pb_grpc.WordstreamStub(grpc.insecure_channel(server.target))
    long_id = "b" * 1000
    responses = stub.Stream(iter([pb.StreamRequest(open=pb.Open())]), metadata=(("x-session-id", long_id),))
    with pytest.raises(grpc.RpcError) as info:
        next(responses)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "1000 characters" in info.value.details()


def test_a_second_stream_leaves_the_busy_session_intact(server: ServerThread) -> None:
    stream, opened = open_stream(server.target)
    stream.word("fine")
    before = snapshot(server.target, opened.session_id)
    expect_abort(
        Stream(server.target),
        grpc.StatusCode.FAILED_PRECONDITION,
        "attached to another stream",
        resume=pb.Resume(session_id=opened.session_id),
    )
    assert snapshot(server.target, opened.session_id) == before
    assert stream.word("film").word.word_index == 1  # the first stream goes on
    stream.end()


def test_a_session_at_its_step_limit_and_a_full_server(make_server: MakeServer) -> None:
    server: ServerThread = make_server(max_steps=2, max_sessions=1)
    stream, opened = open_stream(server.target)
    stream.word("fine!")
    before = snapshot(server.target, opened.session_id)
    answer = stream.word("again")
    assert answer.error.code == "RESOURCE_EXHAUSTED" and "limit of 2 steps" in answer.error.message
    assert snapshot(server.target, opened.session_id) == before
    expect_abort(
        Stream(server.target), grpc.StatusCode.RESOURCE_EXHAUSTED, "maximum of 1 live sessions", open=pb.Open()
    )
    assert snapshot(server.target, opened.session_id) == before  # never evicted
    stream.end()
