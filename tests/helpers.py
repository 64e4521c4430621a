"""Small real models and data, made in seconds, for the tests."""

from __future__ import annotations

import contextlib
import csv
import logging
import os
import queue
import random
import re
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
import numpy as np
import pytest

from wordstream.modelfile import load_model
from wordstream.v1 import wordstream_pb2 as pb
from wordstream.v1 import wordstream_pb2_grpc as pb_grpc

if TYPE_CHECKING:
    from deploy.cluster import RedisCluster
    from wordstream.client.types import Output, WordResult
    from wordstream.server.config import Settings

T = TypeVar("T")

POSITIVE = ["good", "great", "superb", "lovely", "fun", "moving", "smart", "warm"]
NEGATIVE = ["bad", "awful", "dull", "boring", "messy", "flat", "silly", "cold"]
FILLER = ["the", "film", "is", "a", "story", "with", "and", "but", "plot", "cast", "very", "it's", "not", "quite"]


def synthetic_texts(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """(text, label) pairs whose label follows the majority of its sentiment words."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        pos, neg = rng.randint(0, 3), rng.randint(0, 3)
        if pos == neg:
            pos += 1
        words = rng.choices(POSITIVE, k=pos) + rng.choices(NEGATIVE, k=neg) + rng.choices(FILLER, k=rng.randint(1, 8))
        rng.shuffle(words)
        if rng.random() < 0.3:
            words[-1] += rng.choice(["!", ".", "?!", "..."])
        rows.append((" ".join(words), "positive" if pos > neg else "negative"))
    return rows


def write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def train_tiny(cell: str, directory: Path, n: int = 2000, layers: int = 1) -> Path:
    """A tiny real model (trained, exported, evaluated) on synthetic data; returns the .onnx path."""
    from wordstream.training.train import main

    data = write_csv(directory / f"data-{cell}.csv", synthetic_texts(n))
    out = directory / f"tiny-{cell}.onnx"
    code = main(
        [
            "--cell",
            cell,
            "--out",
            str(out),
            "--data",
            str(data),
            "--embed-dim",
            "12",
            "--hidden",
            "10",
            "--layers",
            str(layers),
            "--max-epochs",
            "2",
            "--checkpoint",
            str(out.with_suffix(".pt")),
            # The plain reading (film-review words, no MiniLM table, no teacher): small and fast; the
            # chat model with pretrained vectors and distillation have their own tests (test_export.py).
            "--chat",
            "false",
            "--pretrained",
            "false",
            "--distill",
            "0",
            "--synthetic",
            "0",
        ]
    )
    assert code == 0
    return out


def announced_port(process: subprocess.Popen[str], pattern: str, what: str) -> int:
    """The port a process names in its first line of output (it is listening by then)."""
    line = process.stdout.readline() if process.stdout else ""
    match = re.search(pattern, line)
    if not match:
        process.kill()
        raise RuntimeError(f"{what} did not start: {line!r}")
    return int(match.group(1))


def start_server_process(
    models: Path, *flags: str, port: int = 0, stderr: int = subprocess.DEVNULL, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], int]:
    """``python -m wordstream.server`` in a process of its own on localhost; returns it and its real port."""
    command = [
        sys.executable,
        "-m",
        "wordstream.server",
        "--host",
        "localhost",
        "--port",
        str(port),
        "--models",
        str(models),
    ]
    process = subprocess.Popen(
        command + list(flags),
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env=env or {**os.environ},
    )
    return process, announced_port(process, r"on port (\d+)", "the server")


def poll(check: Callable[[], T], what: str, timeout: float = 20.0, every: float = 0.02) -> T:
    """The first true value of ``check()`` within ``timeout`` seconds; an assertion naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def self_signed_certificate(directory: Path, name: str = "localhost") -> tuple[Path, Path]:
    """(key, certificate) PEM files of a fresh self-signed certificate for ``name``, made by openssl."""
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert)]
        + ["-days", "1", "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}"],
        check=True,
        capture_output=True,
    )
    return key, cert


COUNTING_VOCABULARY = ["<pad>", "<unk>", "good", "bad", "film"]


def counting_model(path: Path, data: dict[str, object] | None = None) -> Path:
    """A step model with set weights, built by hand (no training): its state counts the words,
    +1 for "good", -1 for "bad", 0 for any other, and probs = softmax(-count, +count) over
    (negative, positive). So a text reads positive exactly while it has more "good" than "bad";
    a tie reads 0.5/0.5, and the first label (negative) wins it."""
    import json

    import onnx
    from onnx import TensorProto, helper

    scores = [0.0, 0.0, 1.0, -1.0, 0.0]  # per vocabulary id
    nodes = [
        helper.make_node("Gather", ["scores", "token_ids"], ["delta"]),  # (batch,)
        helper.make_node("Reshape", ["delta", "state_shape"], ["delta3"]),  # (1, batch, 1)
        helper.make_node("Add", ["state_in.h", "delta3"], ["state_out.h"]),
        helper.make_node("Squeeze", ["state_out.h", "axis0"], ["count"]),  # (batch, 1)
        helper.make_node("Neg", ["count"], ["negated"]),
        helper.make_node("Concat", ["negated", "count"], ["logits"], axis=1),  # (batch, 2)
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "counting",
        [
            helper.make_tensor_value_info("token_ids", TensorProto.INT64, ["batch"]),
            helper.make_tensor_value_info("state_in.h", TensorProto.FLOAT, [1, "batch", 1]),
        ],
        [
            helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 2]),
            helper.make_tensor_value_info("state_out.h", TensorProto.FLOAT, [1, "batch", 1]),
        ],
        [
            helper.make_tensor("scores", TensorProto.FLOAT, [len(scores)], scores),
            helper.make_tensor("state_shape", TensorProto.INT64, [3], [1, -1, 1]),
            helper.make_tensor("axis0", TensorProto.INT64, [1], [0]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    metadata = {
        "format": "wordstream.step-model/1",
        "labels": ["negative", "positive"],
        "vocabulary": COUNTING_VOCABULARY,
        "tokenizer": {"lowercase": True, "split_contractions": True, "version": 1},
        "model": {"cell": "counting", "layers": 1, "hidden": 1},
        **({"data": data} if data else {}),
    }
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


CELLS = ("rnn", "lstm", "gru")


class ServerThread:
    """A real server (server.app.start) on port 0, on an event loop in a background thread."""

    def __init__(self, settings: Settings) -> None:
        import asyncio
        import threading

        from wordstream.server.app import start

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.running = self.call(start(settings))
        self.port = self.running.port
        self.target = f"localhost:{self.port}"
        self.service = self.running.service

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        import asyncio

        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=60)

    def stop(self, grace: float = 0.0) -> None:
        if self.loop.is_running():
            self.call(self.running.stop(grace))
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)


MakeServer = Callable[..., ServerThread]


def extra(record: logging.LogRecord, key: str) -> str:
    """A field the server logged with ``extra=`` (LogRecord attributes that its type does not name)."""
    return str(record.__dict__.get(key, ""))


def output_of(result: WordResult) -> Output:
    """A word's output (every word the tests send has tokens, so it has one)."""
    assert result.output is not None, result
    return result.output  # the make_server fixture: Settings overrides -> a started server


TEXT = "the film is great! but the plot is dull and boring... superb cast".split()


class Stream:
    """A ping-pong driver for one bidirectional stream."""

    def __init__(self, target: str, metadata: tuple[tuple[str, str], ...] = ()) -> None:
        self.channel = grpc.insecure_channel(target)
        self.stub = pb_grpc.WordstreamStub(self.channel)
        self.requests: queue.Queue[pb.StreamRequest | None] = queue.Queue()
        self.responses = self.stub.Stream(self._iter(), metadata=metadata)
        self.seq = 0

    def _iter(self) -> Iterator[pb.StreamRequest]:
        while (request := self.requests.get()) is not None:
            yield request

    def send(self, **kind: object) -> pb.StreamResponse:
        self.seq += 1
        self.requests.put(pb.StreamRequest(seq=self.seq, **kind))  # type: ignore[arg-type]
        response = next(self.responses)
        assert response.seq == self.seq
        return response

    def word(self, word: str) -> pb.StreamResponse:
        return self.send(word=word)

    def end(self) -> None:
        self.requests.put(None)
        self.channel.close()


def open_stream(
    target: str, model: str = "", history: pb.HistoryMode = pb.HISTORY_MODE_DELTA
) -> tuple[Stream, pb.StreamResponse]:
    stream = Stream(target)
    return stream, stream.send(open=pb.Open(model=model, history=history))


def offline_prefix_probs(model_path: Path, words: list[str]) -> list[np.ndarray]:
    """The probabilities after each word, computed offline by re-running each whole prefix."""
    runner = load_model(model_path)
    results = []
    for n in range(1, len(words) + 1):
        ids = [i for w in words[:n] for i in runner.codec.encode_ids(w)]
        state = runner.initial_state(1)
        probs = np.zeros((1, len(runner.labels)), np.float32)
        for token in ids:
            probs, state = runner.run(np.array([token], np.int64), state)
        results.append(probs[0])
    return results


def offline_steps(model_path: Path, words: list[str]) -> list[tuple[list[float], dict[str, np.ndarray]]]:
    """Every step of ``words`` computed offline in one uninterrupted run: (probabilities, state as
    name -> (layers, hidden)) after each token."""
    runner = load_model(model_path)
    state, steps = runner.initial_state(1), []
    for token in [i for w in words for i in runner.codec.encode_ids(w)]:
        probs, state = runner.run(np.array([token], np.int64), state)
        steps.append((probs[0].tolist(), {name: value[:, 0, :] for name, value in state.items()}))
    return steps


def same_steps(history: list[Any], offline: list[tuple[list[float], dict[str, np.ndarray]]]) -> bool:
    """Whether a client's history (client.types.Step) equals an offline run, step by step."""
    assert len(history) == len(offline), (len(history), len(offline))
    for step, (probs, state) in zip(history, offline):
        if not np.allclose(list(step.output.probabilities.values()), probs, atol=1e-5):
            return False
        for name, value in state.items():
            if not np.allclose(np.array(step.state[name]), value, atol=1e-5):
                return False
    return True


def state_of(tensors: list[pb.Tensor]) -> dict[str, list[float]]:
    return {t.name: list(t.values) for t in tensors}


def expect_abort(stream: Stream, code: grpc.StatusCode, message: str, **kind: object) -> None:
    stream.requests.put(pb.StreamRequest(**kind))  # type: ignore[arg-type]
    with pytest.raises(grpc.RpcError) as info:
        next(stream.responses)
    assert info.value.code() == code and message in info.value.details()
    stream.end()


class ReplyDroppingProxy:
    """A TCP proxy on 127.0.0.1 in front of a Redis unix socket that, when armed with some bytes,
    forwards the next request holding them, reads Redis's reply, throws it away and closes the
    client's connection: the call landed, its caller cannot know (an unknown outcome)."""

    def __init__(self, upstream: Path) -> None:
        import asyncio
        import threading

        self.upstream = upstream
        self.armed: bytes | None = None
        self.dropped = 0
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        server = asyncio.run_coroutine_threadsafe(asyncio.start_server(self._serve, "127.0.0.1", 0), self.loop).result(
            10
        )
        self.port = int(server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def _serve(self, reader: Any, writer: Any) -> None:
        import asyncio

        up_reader, up_writer = await asyncio.open_unix_connection(str(self.upstream))

        async def replies() -> None:
            while data := await up_reader.read(65536):
                writer.write(data)
                await writer.drain()

        forwarding = asyncio.ensure_future(replies())
        try:
            while data := await reader.read(65536):
                if self.armed is not None and self.armed in data:
                    self.armed = None
                    forwarding.cancel()
                    await asyncio.gather(forwarding, return_exceptions=True)
                    up_writer.write(data)
                    await up_writer.drain()
                    await up_reader.read(65536)  # Redis ran it and answered: the answer is lost
                    self.dropped += 1
                    break
                up_writer.write(data)
                await up_writer.drain()
        finally:
            forwarding.cancel()
            writer.close()
            up_writer.close()


def lose_the_tail(cluster: RedisCluster, session_id: str, typing: Callable[[], None]) -> None:
    """What ``typing`` writes reaches the shard's primary only (its replica is paused and the
    primary has dropped the replication link, so nothing waits in the replica's socket either);
    then the primary dies and the stale replica takes over: the store has lost those writes."""
    from deploy.cluster import wait_for
    from wordstream.server import redis_ledger

    primary = cluster.primary_of(redis_ledger.keys(session_id)[0])
    replica = cluster.replica_of(primary)
    replica.pause()
    primary.client().execute_command("CLIENT", "KILL", "TYPE", "replica")
    try:
        typing()
    finally:
        primary.kill()
        replica.resume()
    replica.client().execute_command("CLUSTER", "FAILOVER", "TAKEOVER")
    wait_for(cluster.ready, "the stale replica to serve the shard")


def start_gateway(server: str, port: int = 0, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], int]:
    """``python -m wordstream.gateway`` in front of ``server`` (``env``: its environment); the
    process and its real port."""
    gateway = subprocess.Popen(
        [sys.executable, "-m", "wordstream.gateway", "--host", "127.0.0.1", "--port", str(port)] + ["--server", server],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    return gateway, announced_port(gateway, r"http://localhost:(\d+)/", "the gateway")


@contextlib.contextmanager
def gateway_stack(models: Path, model: str = "tiny-lstm") -> Iterator[tuple[subprocess.Popen[str], int, int]]:
    """A server process and a gateway process in front of it: (the gateway, its port, the server's port)."""
    server, port = start_server_process(models, "--default-model", model)
    try:
        gateway, gateway_port = start_gateway(f"localhost:{port}")
        try:
            yield gateway, gateway_port, port
        finally:
            gateway.kill()
    finally:
        server.kill()
