"""The compiled hot path (setup.py: mypyc in wheel installs and with WORDSTREAM_COMPILE=1) against
the pure one: the same answers byte for byte; and a machine without a C compiler still installs
and serves, pure. Each build is a real `pip install --target` of this checkout."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from bench.servers import install_copy
from tests.helpers import announced_port, start_server_process
from wordstream.client import Client
from wordstream.v1 import wordstream_pb2 as pb

pytestmark = pytest.mark.slow  # pip builds the package, then server processes
ROOT = Path(__file__).resolve().parent.parent
HOT = [
    "server/answers",
    "server/history",
    "server/sessions",
    "server/batching",
    "server/statebank",
    "textcodec/tokenizer",
]
WORDS = "the film is great! but the plot is dull and boring... superb cast :)".split()


def serve_from(target: Path, models: Path) -> tuple[subprocess.Popen[str], int]:
    """python -m wordstream.server run from ``target``'s build (not the checkout's package)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "wordstream.server", "--port", "0", "--models", str(models)]
        + ["--default-model", "tiny-lstm"],
        cwd=target,
        env={**os.environ, "PYTHONPATH": str(target)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    return process, announced_port(process, r"on port (\d+)", "the server")


def compiled_modules(target: Path) -> set[str]:
    return {
        re.sub(r"\.cpython.*", "", str(p.relative_to(target / "wordstream")))
        for p in target.rglob("wordstream/**/*.so")
    }


def answers(port: int) -> list[bytes]:
    """The bytes of every answer to one scripted session (open under a fixed id, words, a paste,
    a rewind, a reset, more words), as the server sent them."""
    session_id = "B" * 32
    requests = [pb.StreamRequest(seq=1, open=pb.Open(history=pb.HISTORY_MODE_FULL))]
    requests += [pb.StreamRequest(seq=2 + i, word=w) for i, w in enumerate(WORDS)]
    requests += [
        pb.StreamRequest(seq=100, paste=pb.Paste(words=WORDS[:4])),
        pb.StreamRequest(seq=101, rewind=pb.Rewind(words=3)),
    ]
    requests += [pb.StreamRequest(seq=102, reset=pb.Reset()), pb.StreamRequest(seq=103, word="lovely")]
    with grpc.insecure_channel(f"localhost:{port}") as channel:
        raw = channel.stream_stream(
            "/wordstream.v1.Wordstream/Stream",
            request_serializer=pb.StreamRequest.SerializeToString,
            response_deserializer=lambda b: b,
        )
        return list(raw(iter(requests), metadata=(("x-session-id", session_id),), timeout=60))


@pytest.fixture
def models(tiny_models: dict[str, Path]) -> Path:
    return tiny_models["lstm"].parent


def test_compiled_and_pure_builds_answer_byte_for_byte(tmp_path: Path, models: Path) -> None:
    compiled = install_copy(tmp_path / "compiled", WORDSTREAM_COMPILE="1")
    assert compiled_modules(compiled) >= set(HOT), compiled_modules(compiled)
    process, port = serve_from(compiled, models)
    pure, pure_port = start_server_process(models, "--default-model", "tiny-lstm")
    try:
        theirs, ours = answers(port), answers(pure_port)
        assert len(ours) == 1 + len(WORDS) + 4 + 1 + 1 + 1  # opened, words, the paste's 4, rewound twice, a word
        # The opened answer holds the model's figures in a protobuf map, whose order on the wire
        # varies from process to process: compared as messages. Every other answer is the hand
        # encoder's (answers.py, compiled in one build): compared as bytes.
        assert pb.StreamResponse.FromString(theirs[0]) == pb.StreamResponse.FromString(ours[0])
        assert theirs[1:] == ours[1:]
        with Client(f"localhost:{port}") as client:
            assert client.get_session("B" * 32)["words"] == 1
    finally:
        process.kill()
        pure.kill()


def test_a_build_without_a_c_compiler_installs_pure_python_and_serves_a_word(tmp_path: Path, models: Path) -> None:
    pure = install_copy(tmp_path / "pure", WORDSTREAM_COMPILE="1", CC="false")
    assert compiled_modules(pure) == set() and not list(pure.rglob("*__mypyc*"))
    process, port = serve_from(pure, models)
    try:
        with Client(f"localhost:{port}") as client, client.session() as session:
            assert session.push("great").output is not None
    finally:
        process.kill()
