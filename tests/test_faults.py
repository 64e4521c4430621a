"""Faults: a client killed mid-word, a server killed with SIGKILL. Real processes, real channels."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from client import Client
from tests.conftest import ServerThread
from tests.helpers import start_server_process
from tests.test_server import Stream
from wordstream.v1 import wordstream_pb2 as pb

ROOT = Path(__file__).resolve().parent.parent

TYPIST = """
import sys, json
from client import Client
client = Client(sys.argv[1])
sessions = [client.session() for _ in range(20)]
for s in sessions:
    s.open()
print(json.dumps([s.id for s in sessions]), flush=True)
while True:
    for s in sessions:
        s.push("fine")
"""


def test_a_killed_client_leaves_resumable_sessions_that_expire_without_a_leak(make_server) -> None:  # type: ignore[no-untyped-def]
    server: ServerThread = make_server(idle_timeout=1.5, reap_interval=0.1)
    bank = server.service.store.bank(server.service.models["tiny-lstm"])
    free_before = len(bank._free)
    typist = subprocess.Popen(
        [sys.executable, "-c", TYPIST, server.target], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    ids = json.loads(typist.stdout.readline() if typist.stdout else "[]")
    time.sleep(0.5)  # words in flight
    typist.send_signal(signal.SIGKILL)
    typist.wait()
    assert len(server.service.store) == 20
    with Client(server.target) as client:  # still resumable, and it continues where it was
        words = client.get_session(ids[0])["words"]
        resumed = client.resume(ids[0])
        for _ in range(50):
            try:
                resumed.open()
                break
            except Exception:  # noqa: BLE001 - the server may not have noticed the dead stream yet
                time.sleep(0.1)
        assert resumed.push("film").word_index == words
        resumed._client._run(resumed._inner.close())
    deadline = time.monotonic() + 15
    while len(server.service.store) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(server.service.store) == 0
    assert server.service.store.total_bytes == 0
    assert len(bank._free) + len(bank._release_later) >= free_before and not bank.busy


def start_server(models: Path, port: int = 0) -> tuple[subprocess.Popen[str], int]:
    return start_server_process(models, "--default-model", "tiny-gru", port=port)


def test_a_server_killed_with_sigkill_loses_no_words(tiny_models: dict[str, Path]) -> None:
    models = tiny_models["gru"].parent
    first, port = start_server(models)
    second = None
    try:
        replays: list[tuple[str, str, int]] = []
        with Client(f"localhost:{port}") as client:
            session = client.session(on_replay=lambda *a: replays.append(a))
            session.open()
            for word in "the film is great but dull".split():
                session.push(word)
            before = session.history
            first.send_signal(signal.SIGKILL)
            first.wait()
            second, _ = start_server(models, port)
            result = session.push("fun")
            assert len(replays) == 1 and replays[0][2] == 6
            assert session.history[:-1] == before and result.word_index == 6
            assert session.history == client.get_session(session.id)["history"]
            session.close()
        stream = Stream(f"localhost:{port}")  # the new server serves others as usual
        assert stream.send(open=pb.Open()).opened.model.name == "tiny-gru"
        stream.end()
    finally:
        first.kill()
        if second:
            second.kill()
