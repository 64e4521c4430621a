"""Property-based fuzzing of real streams: random valid and invalid messages, disconnects and
resumes. The server never answers INTERNAL, and each session's final state equals an offline
recomputation over the words it accepted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import ServerThread, Stream, poll
from wordstream.modelfile import StepModel, load_model
from wordstream.v1 import wordstream_pb2 as pb

GOOD = st.sampled_from(["the", "film", "great!", "dull", "it's", "Zyzzyva", "3.5", "🙂", "...", "o'brien"])
BAD = st.sampled_from(["", " ", "a b", "\x07", "x" * 101, "\u200b"])
OPS = st.one_of(
    st.tuples(st.just("word"), st.one_of(GOOD, GOOD, BAD, st.text(max_size=8))),
    st.tuples(st.just("paste"), st.lists(st.one_of(GOOD, BAD), max_size=4)),
    st.tuples(st.just("rewind"), st.integers(-3, 6)),
    st.tuples(st.just("reset"), st.none()),
    st.tuples(st.just("drop"), st.none()),
)


def offline_state(runner: StepModel, words: list[str]) -> dict[str, np.ndarray]:
    state = runner.initial_state(1)
    for token in (i for w in words for i in runner.codec.encode_ids(w)):
        _, state = runner.run(np.array([token], np.int64), state)
    return state


class Client:
    """Drives one session and tracks the words it should hold."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.stream = Stream(target)
        opened = self.stream.send(open=pb.Open(model="tiny-lstm"))
        self.session_id = opened.session_id
        self.words: list[str] = []

    def apply(self, op: str, arg: Any) -> None:
        if op == "drop":
            self.stream.responses.cancel()
            self.stream.end()
            self.stream = Stream(self.target)

            def resume() -> pb.StreamResponse | None:
                try:
                    return self.stream.send(resume=pb.Resume(session_id=self.session_id))
                except grpc.RpcError as e:  # until the server has noticed the old stream is gone
                    assert e.code() == grpc.StatusCode.FAILED_PRECONDITION, e
                    self.stream.end()
                    self.stream = Stream(self.target)
                    return None

            answer = poll(resume, "the dropped session to be resumable", every=0.0)
            assert answer is not None and answer.opened.position.words == len(self.words)
            return
        if op == "word":
            answers = [self.stream.send(word=arg)]
        elif op == "paste":
            self.stream.seq += 1
            self.stream.requests.put(pb.StreamRequest(seq=self.stream.seq, paste=pb.Paste(words=arg)))
            first = next(self.stream.responses)
            answers = [first] + ([next(self.stream.responses) for _ in arg[1:]] if first.HasField("word") else [])
        elif op == "rewind":
            answers = [self.stream.send(rewind=pb.Rewind(words=arg))]
        else:
            answers = [self.stream.send(reset=pb.Reset())]
        for answer in answers:
            kind = answer.WhichOneof("kind")
            assert kind != "error" or answer.error.code in ("INVALID_ARGUMENT", "RESOURCE_EXHAUSTED"), answer.error
            if kind == "word":
                self.words.append(answer.word.word)
            elif kind == "rewound":
                del self.words[answer.rewound.words :]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(OPS, max_size=12))
def test_random_streams_keep_sessions_exact(
    server: ServerThread, tiny_models: dict[str, Path], ops: list[tuple[str, Any]]
) -> None:
    client = Client(server.target)
    for op, arg in ops:
        client.apply(op, arg)
    record = client.stream.stub.GetSession(pb.GetSessionRequest(session_id=client.session_id))
    assert record.words == len(client.words)
    runner = load_model(tiny_models["lstm"])
    expected_steps = sum(len(runner.codec.encode_ids(w)) for w in client.words)
    assert record.steps == expected_steps
    assert [s.word for s in record.history] == [w for w in client.words for _ in runner.codec.encode_ids(w)]
    if expected_steps:
        expected = offline_state(runner, client.words)
        for tensor in record.history[-1].state:
            np.testing.assert_allclose(
                np.array(tensor.values).reshape(tensor.layers, tensor.hidden), expected[tensor.name][:, 0], atol=1e-5
            )
    client.stream.send(close=pb.Close())
    client.stream.end()


@pytest.mark.slow
def test_coverage_guided_fuzzing_of_decoding_and_tokenizer_runs_clean() -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, "scripts/fuzz_atheris.py", "--seconds", "3"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Done " in result.stderr and " runs in " in result.stderr
