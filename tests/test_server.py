"""The service against a real server on port 0 over a real channel, with real tiny models."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.helpers import (
    CELLS,
    TEXT,
    MakeServer,
    ServerThread,
    Stream,
    expect_abort,
    offline_prefix_probs,
    open_stream,
    poll,
    state_of,
)
from wordstream.v1 import wordstream_pb2 as pb
from wordstream.v1 import wordstream_pb2_grpc as pb_grpc


@pytest.mark.parametrize("cell", CELLS)
def test_each_word_equals_the_offline_run_of_its_prefix(
    server: ServerThread, tiny_models: dict[str, Path], cell: str
) -> None:
    stream, opened = open_stream(server.target, model=f"tiny-{cell}")
    assert opened.opened.model.cell == cell and opened.session_id
    expected = offline_prefix_probs(tiny_models[cell], TEXT)
    for i, word in enumerate(TEXT):
        result = stream.word(word).word
        assert result.word == word and result.word_index == i
        np.testing.assert_allclose(result.output.probabilities, expected[i], atol=1e-6)
        assert result.output.label == opened.opened.model.labels[int(np.argmax(expected[i]))]
        names = ["h", "c"] if cell == "lstm" else ["h"]
        assert [t.name for t in result.state] == names
        assert all(len(t.values) == t.layers * t.hidden for t in result.state)
    stream.end()


def test_a_word_with_several_tokens_is_several_steps(server: ServerThread) -> None:
    stream, _ = open_stream(server.target)
    result = stream.word("great!").word
    assert [t.text for t in result.tokens] == ["great", "!"]
    assert result.history.length == 2 and [s.token.text for s in result.history.steps] == ["great", "!"]
    assert [s.index for s in result.history.steps] == [0, 1]
    unknown = stream.word("Zyzzyva").word
    assert unknown.tokens[0].unknown and unknown.tokens[0].id == 1 and unknown.tokens[0].text == "zyzzyva"
    stream.end()


@pytest.mark.parametrize("mode", [pb.HISTORY_MODE_DELTA, pb.HISTORY_MODE_FULL, pb.HISTORY_MODE_NONE])
def test_history_equals_the_steps_taken_in_every_mode(server: ServerThread, mode: pb.HistoryMode) -> None:
    stream, opened = open_stream(server.target, history=mode)
    rebuilt: list[pb.Step] = []
    for word in TEXT:
        update = stream.word(word).word.history
        if mode == pb.HISTORY_MODE_DELTA:
            assert update.start == len(rebuilt)
            rebuilt.extend(update.steps)
        elif mode == pb.HISTORY_MODE_FULL:
            assert update.start == 0
            rebuilt = list(update.steps)
        else:
            assert not update.steps
        assert update.length == len(stream.stub.GetSession(pb.GetSessionRequest(session_id=opened.session_id)).history)
    full = stream.stub.GetSession(pb.GetSessionRequest(session_id=opened.session_id))
    assert full.words == len(TEXT) and full.steps == len(full.history)
    assert [s.word for s in full.history][:3] == ["the", "film", "is"]
    if mode != pb.HISTORY_MODE_NONE:
        assert list(rebuilt) == list(full.history)
    part = stream.stub.GetSession(pb.GetSessionRequest(session_id=opened.session_id, start=2, end=4))
    assert part.start == 2 and list(part.history) == list(full.history[2:4])
    stream.end()


def test_history_records_the_state_after_every_step(server: ServerThread) -> None:
    stream, opened = open_stream(server.target)
    last = pb.WordResult()
    for word in TEXT[:4]:
        last = stream.word(word).word
    full = stream.stub.GetSession(pb.GetSessionRequest(session_id=opened.session_id))
    assert state_of(full.history[-1].state) == state_of(last.state)
    assert state_of(full.history[0].state) != state_of(full.history[-1].state)
    stream.end()


def test_rewind_then_new_words_equals_never_typing_the_undone_words(server: ServerThread) -> None:
    a, _ = open_stream(server.target)
    for word in ["the", "film", "is", "awful", "dull!"]:
        a.word(word)
    rewound = a.send(rewind=pb.Rewind(words=2)).rewound
    assert rewound.words == 3 and rewound.steps == 3
    after_a = a.word("great").word
    b, _ = open_stream(server.target)
    for word in ["the", "film", "is"]:
        b.word(word)
    after_b = b.word("great").word
    assert list(after_a.output.probabilities) == list(after_b.output.probabilities)
    assert state_of(after_a.state) == state_of(after_b.state)
    assert list(after_a.history.steps) == list(after_b.history.steps)
    reset = a.send(reset=pb.Reset()).rewound
    assert reset.words == 0 and reset.steps == 0 and not reset.HasField("output")
    assert all(v == 0.0 for t in reset.state for v in t.values)
    a.end()
    b.end()


def test_paste_processes_words_in_order_and_is_all_or_nothing(server: ServerThread) -> None:
    a, _ = open_stream(server.target)
    a.seq += 1
    a.requests.put(pb.StreamRequest(seq=a.seq, paste=pb.Paste(words=TEXT[:4])))
    pasted = [next(a.responses) for _ in range(4)]
    assert [r.word.word for r in pasted] == TEXT[:4]
    b, _ = open_stream(server.target)
    typed = [b.word(w) for w in TEXT[:4]]
    assert [list(r.word.output.probabilities) for r in pasted] == [list(r.word.output.probabilities) for r in typed]
    bad = a.send(paste=pb.Paste(words=["fine", "", "film"]))
    assert bad.error.code == "INVALID_ARGUMENT" and "empty word" in bad.error.message
    assert a.stub.GetSession(pb.GetSessionRequest(session_id=pasted[0].session_id)).words == 4
    a.end()
    b.end()


@pytest.mark.parametrize(
    ("request_kind", "code", "message"),
    [
        ({"word": ""}, "INVALID_ARGUMENT", "empty word"),
        ({"word": "   "}, "INVALID_ARGUMENT", "empty word"),
        ({"word": "two words"}, "INVALID_ARGUMENT", "must not contain whitespace"),
        ({"word": "x" * 101}, "INVALID_ARGUMENT", "over the limit of 100"),
        ({"word": "\u200b"}, "INVALID_ARGUMENT", "has no tokens"),
        ({"rewind": pb.Rewind(words=5)}, "INVALID_ARGUMENT", "cannot rewind 5 words: the session has 2"),
        ({"rewind": pb.Rewind(words=-1)}, "INVALID_ARGUMENT", "at least 1 word, got -1"),
        ({"rewind": pb.Rewind(words=0)}, "INVALID_ARGUMENT", "at least 1 word, got 0"),
        ({"open": pb.Open()}, "FAILED_PRECONDITION", "already has a session"),
        ({}, "INVALID_ARGUMENT", "empty request"),
    ],
)
def test_bad_requests_get_an_error_and_change_nothing(
    server: ServerThread, request_kind: dict[str, object], code: str, message: str
) -> None:
    stream, opened = open_stream(server.target)
    stream.word("fine")
    stream.word("film")
    before = stream.stub.GetSession(pb.GetSessionRequest(session_id=opened.session_id))
    response = stream.send(**request_kind)
    assert response.error.code == code and message in response.error.message
    after = stream.stub.GetSession(pb.GetSessionRequest(session_id=opened.session_id))
    assert list(after.history) == list(before.history) and after.words == before.words
    assert stream.word("again").word.word_index == 2  # the stream is still open
    stream.end()


def test_protocol_violations_end_the_stream_with_a_status(server: ServerThread) -> None:
    expect_abort(Stream(server.target), grpc.StatusCode.INVALID_ARGUMENT, "must be open or resume, got word", word="hi")
    expect_abort(Stream(server.target), grpc.StatusCode.NOT_FOUND, "unknown model 'nope'", open=pb.Open(model="nope"))
    expect_abort(
        Stream(server.target),
        grpc.StatusCode.NOT_FOUND,
        "not found (unknown, expired or closed)",
        resume=pb.Resume(session_id="no-such-session-but-well-formed"),
    )
    stream, opened = open_stream(server.target)
    expect_abort(
        Stream(server.target),
        grpc.StatusCode.FAILED_PRECONDITION,
        "attached to another stream",
        resume=pb.Resume(session_id=opened.session_id),
    )
    stream.end()


def test_unary_errors(server: ServerThread) -> None:
    stub = pb_grpc.WordstreamStub(grpc.insecure_channel(server.target))
    with pytest.raises(grpc.RpcError) as info:
        stub.GetSession(pb.GetSessionRequest(session_id="n" * 32))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND and "not found" in info.value.details()
    stream, opened = open_stream(server.target)
    stream.word("fine")
    with pytest.raises(grpc.RpcError) as info:
        stub.GetSession(pb.GetSessionRequest(session_id=opened.session_id, start=0, end=5))
    assert (
        info.value.code() == grpc.StatusCode.OUT_OF_RANGE and "outside the history of 1 steps" in info.value.details()
    )
    with pytest.raises(grpc.RpcError) as info:
        stub.CloseSession(pb.CloseSessionRequest(session_id="n" * 32))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    stream.end()


def test_resume_after_a_dropped_stream(server: ServerThread) -> None:
    first, opened = open_stream(server.target)
    for word in TEXT[:3]:
        first.word(word)
    first.responses.cancel()  # the connection drops
    first.end()
    deadline = time.monotonic() + 10
    while True:  # the server notices the cancelled stream and detaches the session
        again = Stream(server.target)
        again.requests.put(pb.StreamRequest(resume=pb.Resume(session_id=opened.session_id)))
        try:
            resumed = next(again.responses)
            break
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.FAILED_PRECONDITION and time.monotonic() < deadline
            again.end()
    assert resumed.opened.resumed and resumed.opened.position.words == 3
    assert resumed.session_id == opened.session_id
    continued = again.send(word=TEXT[3]).word
    fresh, _ = open_stream(server.target)
    for word in TEXT[:3]:
        fresh.word(word)
    assert list(continued.output.probabilities) == list(fresh.word(TEXT[3]).word.output.probabilities)
    again.end()
    fresh.end()


def test_idle_sessions_expire_and_attached_ones_do_not(make_server: MakeServer) -> None:
    server = make_server(idle_timeout=0.3, reap_interval=0.05)
    kept, kept_opened = open_stream(server.target)
    left, left_opened = open_stream(server.target)
    left.word("fine")
    left.end()
    store = server.service.store
    poll(lambda: not store.has(left_opened.session_id), "the idle session to be freed")
    with pytest.raises(grpc.RpcError) as info:
        kept.stub.GetSession(pb.GetSessionRequest(session_id=left_opened.session_id))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    idle_since = store.get(kept_opened.session_id).last_active
    # Sweeps well past the kept session's idle deadline: it is attached, so it stays.
    poll(lambda: server.service.last_sweep > idle_since + 0.3 + 0.2, "the reaper to sweep past the idle timeout")
    assert kept.word("still").word.word_index == 0  # attached: never expired
    assert len(server.service.store) == 1
    kept.end()


def test_close_ends_the_session(server: ServerThread) -> None:
    stream, opened = open_stream(server.target)
    stream.word("fine")
    closed = stream.send(close=pb.Close())
    assert closed.closed.words == 1 and closed.closed.steps == 1
    with pytest.raises(StopIteration):
        next(stream.responses)
    with pytest.raises(grpc.RpcError) as info:
        stream.stub.GetSession(pb.GetSessionRequest(session_id=opened.session_id))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    stream.end()


def test_limits(make_server: MakeServer) -> None:
    server = make_server(max_sessions=2, max_steps=3, max_word_chars=5)
    a, _ = open_stream(server.target)
    assert a.word("fine!").word.history.length == 2
    response = a.word("good!")
    assert response.error.code == "RESOURCE_EXHAUSTED" and "limit of 3 steps" in response.error.message
    assert a.word("ok").word.history.length == 3
    assert "over the limit of 5" in a.word("toolong").error.message
    b, _ = open_stream(server.target)
    expect_abort(
        Stream(server.target), grpc.StatusCode.RESOURCE_EXHAUSTED, "maximum of 2 live sessions", open=pb.Open()
    )
    a.end()
    b.end()


def test_history_byte_limits(make_server: MakeServer, tiny_models: dict[str, Path]) -> None:
    server = make_server(max_session_bytes=300)  # the 2-layer tiny LSTM: 180 bytes a step
    stream, _ = open_stream(server.target)
    assert stream.word("a").word.history.length == 1
    response = stream.word("b")
    assert response.error.code == "RESOURCE_EXHAUSTED" and "limit of 300 bytes" in response.error.message
    stream.end()


def test_list_models(server: ServerThread) -> None:
    stub = pb_grpc.WordstreamStub(grpc.insecure_channel(server.target))
    listed = stub.ListModels(pb.ListModelsRequest())
    assert [m.name for m in listed.models] == ["tiny-gru", "tiny-lstm", "tiny-rnn"]
    assert listed.default_model == "tiny-lstm"
    lstm = listed.models[1]
    assert lstm.cell == "lstm" and list(lstm.state_names) == ["h", "c"] and lstm.layers == 2
    assert list(lstm.labels) == ["negative", "positive"] and lstm.vocabulary_size > 10
    assert 0 < lstm.evaluation.accuracy <= 1 and set(lstm.evaluation.typing) == {"25%", "50%", "75%", "100%"}
    assert lstm.evaluation.split == "valid"  # trained with the defaults: scored on its validation part


def test_health_and_reflection(server: ServerThread) -> None:
    channel = grpc.insecure_channel(server.target)
    health = health_pb2_grpc.HealthStub(channel)
    for name in ("", "wordstream.v1.Wordstream"):
        assert (
            health.Check(health_pb2.HealthCheckRequest(service=name)).status == health_pb2.HealthCheckResponse.SERVING
        )
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    answers = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    services = {s.name for s in next(answers).list_services_response.service}
    assert {"wordstream.v1.Wordstream", "grpc.health.v1.Health"} <= services


def test_graceful_shutdown_answers_words_in_flight(make_server: MakeServer) -> None:
    server = make_server()
    stream, _ = open_stream(server.target)
    stream.requests.put(pb.StreamRequest(seq=7, paste=pb.Paste(words=TEXT)))
    health = health_pb2_grpc.HealthStub(grpc.insecure_channel(server.target))
    future = asyncio.run_coroutine_threadsafe(server.running.stop(2.0), server.loop)
    answered = [next(stream.responses) for _ in TEXT]
    assert [r.word.word for r in answered] == TEXT
    future.result(timeout=30)
    with pytest.raises(grpc.RpcError):
        health.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
    stream.end()


@pytest.mark.slow
def test_sigterm_stops_the_server_process_gracefully(tiny_models: dict[str, Path]) -> None:
    import signal
    import subprocess

    from tests.helpers import start_server_process

    models = tiny_models["lstm"].parent
    process, port = start_server_process(models, "--default-model", "tiny-lstm", "--grace", "3", stderr=subprocess.PIPE)
    try:
        stream, _ = open_stream(f"localhost:{port}")
        assert stream.word("fine").word.word == "fine"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        stderr = process.stderr.read() if process.stderr else ""
        logs = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
        events = [entry.get("event") for entry in logs]
        assert "start" in events and "shutdown" in events and "open" in events
        opened = next(entry for entry in logs if entry.get("event") == "open")
        assert len(opened["session"]) <= 9  # shortened in logs
        stream.end()
    finally:
        process.kill()


@pytest.mark.slow
def test_sigterm_drains_then_refuses_then_saves(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    """--drain: NOT_SERVING is observable while words and new streams are still served; then new
    streams get UNAVAILABLE while open streams are answered for the grace period; then the
    sessions are saved and the process exits 0."""
    import signal

    from tests.helpers import start_server_process
    from wordstream.server import persistence

    models = tiny_models["lstm"].parent
    state = tmp_path / "state"
    flags = ("--default-model", "tiny-lstm", "--drain", "3", "--grace", "2", "--state-dir", str(state))
    process, port = start_server_process(models, *flags)
    target = f"localhost:{port}"
    try:
        health = health_pb2_grpc.HealthStub(grpc.insecure_channel(target))
        attached, _ = open_stream(target)
        assert attached.word("fine").word.history.length == 1
        process.send_signal(signal.SIGTERM)
        not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
        poll(lambda: health.Check(health_pb2.HealthCheckRequest()).status == not_serving, "NOT_SERVING")
        assert attached.word("film").word.history.length == 2  # still served while draining
        during, _ = open_stream(target)  # a new stream too: the balancer has not noticed yet
        during.end()

        def refused() -> grpc.RpcError | None:
            try:
                stream, _ = open_stream(target)
            except grpc.RpcError as e:
                # A stream opened in the very instant its refusal began can end CANCELLED on a loaded
                # machine; the refusal the contract names is UNAVAILABLE: keep asking until it shows.
                return None if e.code() == grpc.StatusCode.CANCELLED else e
            stream.end()
            return None

        error = poll(refused, "new streams to be refused")
        assert error is not None and error.code() == grpc.StatusCode.UNAVAILABLE, error
        assert attached.word("late").word.history.length == 3  # a word in flight is answered
        assert process.wait(timeout=20) == 0
        sessions, faults = persistence.read(state / persistence.FILE_NAME)
        assert not faults and sorted(len(s.records) for s in sessions if s.records) == [3]  # and the polls' empty ones
    finally:
        process.kill()


def test_total_history_bytes_limit(make_server: MakeServer) -> None:
    server = make_server(max_total_bytes=600)  # the 2-layer tiny LSTM: 8 + 4 + 2*4 + 2*2*10*4 = 180 bytes a step
    a, _ = open_stream(server.target)
    b, _ = open_stream(server.target)
    assert a.word("a").word.history.length == 1
    assert b.word("b").word.history.length == 1
    response = b.word("c!")
    assert response.error.code == "RESOURCE_EXHAUSTED" and "server's history memory" in response.error.message
    a.send(reset=pb.Reset())  # freeing a's history makes room again
    assert b.word("c!").word.history.length == 3
    a.end()
    b.end()


@pytest.mark.parametrize("mode", [pb.HISTORY_MODE_DELTA, pb.HISTORY_MODE_FULL, pb.HISTORY_MODE_NONE])
def test_each_word_of_a_paste_is_answered_as_if_typed(server: ServerThread, mode: pb.HistoryMode) -> None:
    pasting, _ = open_stream(server.target, history=mode)
    pasting.seq += 1
    pasting.requests.put(pb.StreamRequest(seq=pasting.seq, paste=pb.Paste(words=["fine", "film!", "dull"])))
    pasted = [next(pasting.responses).word for _ in range(3)]
    typing, _ = open_stream(server.target, history=mode)
    typed = [typing.word(w).word for w in ["fine", "film!", "dull"]]
    for a, b in zip(pasted, typed):
        assert a.history.length == b.history.length and a.history.start == b.history.start
        assert list(a.history.steps) == list(b.history.steps)
        assert list(a.output.probabilities) == list(b.output.probabilities)
        assert state_of(a.state) == state_of(b.state)
    assert [p.history.length for p in pasted] == [1, 3, 4]
    pasting.end()
    typing.end()


def test_the_client_chooses_the_session_id_and_every_answer_names_the_replica(make_server: MakeServer) -> None:
    """x-session-id on open: a well-formed id is adopted, one in use is ALREADY_EXISTS, a malformed one
    INVALID_ARGUMENT; without it the server makes one. x-wordstream-replica names --replica-name."""
    server: ServerThread = make_server(replica_name="replica-a")
    stub = pb_grpc.WordstreamStub(grpc.insecure_channel(server.target))
    chosen = "A" * 10 + "b-_" + "9" * 19  # 32 URL-safe characters

    def open_with(session_id: str | None) -> tuple[pb.StreamResponse, dict[str, str]]:
        metadata = (("x-session-id", session_id),) if session_id is not None else ()
        call = stub.Stream(iter([pb.StreamRequest(open=pb.Open())]), metadata=metadata)
        answer = next(call)
        headers = dict(call.initial_metadata())
        call.cancel()
        return answer, headers

    answer, headers = open_with(chosen)
    assert answer.session_id == chosen and headers["x-wordstream-replica"] == "replica-a"
    poll(lambda: not server.service.store.get(chosen).attached, "the first stream to detach")
    with pytest.raises(grpc.RpcError) as taken:
        open_with(chosen)
    assert taken.value.code() == grpc.StatusCode.ALREADY_EXISTS and "already exists" in taken.value.details()
    for bad, reason in (("short", "5 characters, expected 22 to 64"), ("x" * 30 + "!?", "URL-safe base64")):
        with pytest.raises(grpc.RpcError) as malformed:
            open_with(bad)
        assert malformed.value.code() == grpc.StatusCode.INVALID_ARGUMENT and reason in malformed.value.details()
    made, _ = open_with(None)
    assert len(made.session_id) >= 32 and made.session_id != chosen
    _, unary_headers = stub.GetSession.with_call(pb.GetSessionRequest(session_id=chosen))
    assert dict(unary_headers.initial_metadata())["x-wordstream-replica"] == "replica-a"


def test_the_python_client_sends_the_id_it_chose(server: ServerThread, monkeypatch: pytest.MonkeyPatch) -> None:
    from wordstream.client import Client, _async

    monkeypatch.setattr(_async, "new_session_id", lambda: "client-chosen-id-" + "x" * 15)
    with Client(server.target) as client, client.session() as session:
        session.push("fine")
        assert session.id == "client-chosen-id-" + "x" * 15
        assert client.get_session(session.id)["words"] == 1
