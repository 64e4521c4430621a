"""Server parts on their own: model loading and the contract check, settings, import boundaries."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import onnx
import pytest
from onnx import TensorProto, helper

from tests.helpers import MakeServer, ServerThread, extra
from wordstream.modelfile import ModelError, load_model
from wordstream.server.config import Settings
from wordstream.server.inference import load_models
from wordstream.v1 import wordstream_pb2 as pb
from wordstream.v1 import wordstream_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parent.parent


def graph_model(path: Path, inputs: list[Any], outputs: list[Any], nodes: list[Any], axes: int | None = None) -> Path:
    """A small ONNX graph; ``axes`` adds the int64 initializer "axes" that Squeeze/Unsqueeze read."""
    initializers = [] if axes is None else [helper.make_tensor("axes", TensorProto.INT64, [1], [axes])]
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=initializers)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_truncated_and_foreign_files_are_refused_naming_the_file(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    truncated = tmp_path / "cut.onnx"
    truncated.write_bytes(tiny_models["gru"].read_bytes()[:5000])
    with pytest.raises(ModelError, match=r"cut\.onnx: not a loadable ONNX model"):
        load_model(truncated)
    no_state = graph_model(
        tmp_path / "nostate.onnx",
        [helper.make_tensor_value_info("token_ids", TensorProto.INT64, ["batch"])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 2])],
        [
            helper.make_node("Cast", ["token_ids"], ["t"], to=TensorProto.FLOAT),
            helper.make_node("Unsqueeze", ["t", "axes"], ["u"]),
            helper.make_node("Concat", ["u", "u"], ["probs"], axis=1),
        ],
        axes=1,
    )
    with pytest.raises(ModelError, match=r"nostate\.onnx: no state_in\.<name> inputs"):
        load_model(no_state)
    unpaired = graph_model(
        tmp_path / "unpaired.onnx",
        [
            helper.make_tensor_value_info("token_ids", TensorProto.INT64, ["batch"]),
            helper.make_tensor_value_info("state_in.h", TensorProto.FLOAT, [1, "batch", 4]),
        ],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_node("Squeeze", ["state_in.h", "axes"], ["probs"])],
        axes=0,
    )
    with pytest.raises(ModelError, match=r"unpaired\.onnx: input state_in\.h has no matching output state_out\.h"):
        load_model(unpaired)
    wrong_input = graph_model(
        tmp_path / "words.onnx",
        [helper.make_tensor_value_info("words", TensorProto.FLOAT, ["batch"])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch"])],
        [helper.make_node("Identity", ["words"], ["probs"])],
    )
    with pytest.raises(ModelError, match=r"words\.onnx: missing input token_ids int64 \[batch\]"):
        load_model(wrong_input)


def test_missing_metadata_is_named(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    model = onnx.load(str(tiny_models["rnn"]))
    kept = [p for p in model.metadata_props if p.key not in ("vocabulary", "tokenizer")]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    path = tmp_path / "bare.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ModelError, match=r"bare\.onnx: metadata lacks vocabulary, tokenizer"):
        load_model(path)


@pytest.mark.parametrize(
    ("format_value", "message"),
    [
        ('"wordstream.step-model/2"', "wordstream.step-model version 2 is not supported (this code reads version 1)"),
        ('"someone.elses-model/1"', "not a wordstream.step-model file"),
        (None, "metadata lacks format"),
    ],
)
def test_the_format_version_is_checked_on_load(
    tmp_path: Path, tiny_models: dict[str, Path], format_value: str | None, message: str
) -> None:
    model = onnx.load(str(tiny_models["rnn"]))
    kept = [p for p in model.metadata_props if p.key != "format"]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    if format_value is not None:
        entry = model.metadata_props.add()
        entry.key, entry.value = "format", format_value
    path = tmp_path / "versioned.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ModelError, match=re.escape(message)):
        load_model(path)


def test_a_bad_file_is_skipped_and_the_others_serve(
    tmp_path: Path, tiny_models: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "good.onnx").write_bytes(tiny_models["gru"].read_bytes())
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    with caplog.at_level(logging.ERROR, logger="wordstream.models"):
        models = load_models(tmp_path)
    assert list(models) == ["good"]
    assert any("bad.onnx: not a loadable ONNX model" in extra(r, "error") for r in caplog.records)
    with pytest.raises(ModelError, match="models directory not found"):
        load_models(tmp_path / "nowhere")


def test_settings_from_flags_and_environment() -> None:
    settings = Settings.from_args(
        ["--port", "7000", "--idle-timeout", "5"], environ={"WORDSTREAM_PORT": "6000", "WORDSTREAM_MAX_SESSIONS": "3"}
    )
    assert (settings.port, settings.idle_timeout, settings.max_sessions) == (7000, 5.0, 3)
    assert Settings.from_args([], environ={}) == Settings()
    with pytest.raises(ValueError, match="max_steps must be at least 1, got 0"):
        Settings.from_args(["--max-steps", "0"], environ={})
    with pytest.raises(SystemExit):
        Settings.from_args(["--port", "many"], environ={})


def test_message_size_limit(make_server: MakeServer) -> None:
    server: ServerThread = make_server(max_message_bytes=2000)
    stub = pb_grpc.WordstreamStub(grpc.insecure_channel(server.target))
    requests = iter([pb.StreamRequest(open=pb.Open()), pb.StreamRequest(paste=pb.Paste(words=["word"] * 1000))])
    responses = stub.Stream(requests)
    assert next(responses).opened.model.name == "tiny-lstm"
    with pytest.raises(grpc.RpcError) as info:
        next(responses)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in info.value.details()


@pytest.mark.slow
def test_session_and_model_code_import_no_grpc_and_the_server_no_torch() -> None:
    domain = (
        "import sys, wordstream.server.sessions, wordstream.server.service, wordstream.server.inference;"
        " assert 'grpc' not in sys.modules, 'grpc'; assert 'redis' not in sys.modules, 'redis'"
    )
    serving = (
        "import sys, wordstream.server.app, wordstream.server.__main__, wordstream.client;"
        " assert 'torch' not in sys.modules, 'torch'"
    )
    for code in (domain, serving):
        result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


def test_the_service_does_not_know_what_keeps_its_sessions() -> None:
    """The ledger port (ledger.py): the service calls it and never names an implementation."""
    service = (ROOT / "wordstream" / "server" / "service.py").read_text()
    assert not re.search(r"durable|redis", service, re.IGNORECASE)


def test_only_the_history_reads_its_arrays() -> None:
    arrays = re.compile(r"\b(history|h)\.(token_ids|word_index|probs|states|arrays)\b")
    readers = [
        f"{path.relative_to(ROOT)}:{n}"
        for folder in ("wordstream", "tests", "bench", "deploy", "scripts")
        for path in (ROOT / folder).rglob("*.py")
        if path.name != "history.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if arrays.search(line)
    ]
    assert not readers


def test_session_ids_are_long_and_random(server: ServerThread) -> None:
    stub = pb_grpc.WordstreamStub(grpc.insecure_channel(server.target))
    ids = {next(stub.Stream(iter([pb.StreamRequest(open=pb.Open())]))).session_id for _ in range(20)}
    assert len(ids) == 20 and all(len(i) >= 32 for i in ids)  # 24 random bytes, base64url: 192 bits


def test_loop_histogram_exports_what_prometheus_client_would() -> None:
    from prometheus_client import CollectorRegistry, Histogram, generate_latest
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import Collector

    from wordstream.server.metrics import LoopHistogram

    buckets = (0.001, 0.01, 0.1)
    values = [0.05, 0.05, 0.0005, 0.001, 0.0011, 0.01, 0.1, 0.2, 3.0]  # bounds included: le means <=
    reference_registry = CollectorRegistry()
    reference = Histogram("h_seconds", "doc", buckets=buckets, registry=reference_registry)
    for value in values:
        reference.observe(value)
    ours = LoopHistogram("h_seconds", "doc", buckets)
    ours.observe(0.05, times=2)  # equal observations at once, as for the words of a paste
    for value in values[2:]:
        ours.observe(value)

    class Ours(Collector):
        def collect(self) -> Iterator[Metric]:
            yield ours.family()

    registry = CollectorRegistry()
    registry.register(Ours())
    expected = [line for line in generate_latest(reference_registry).decode().splitlines() if "_created" not in line]
    assert generate_latest(registry).decode().splitlines() == expected
    assert ours.count == len(values)


def test_empty_histories_are_shared_by_shape_not_by_model_name(tiny_models: dict[str, Path]) -> None:
    import numpy as np

    from wordstream.server.history import History

    lstm, gru = load_model(tiny_models["lstm"]), load_model(tiny_models["gru"])
    gru.name = lstm.name  # two models under one name, with other state shapes
    for model in (lstm, gru):
        history = History(model)
        history.reserve(1, 1)
        history.append(0, "a", 2, np.ones(history.width, np.float32))
        assert [a.shape for a in history.step(0).states] == [(s.layers, s.hidden) for s in model.states]


def test_history_slack_is_small_whether_typed_or_pasted(tiny_models: dict[str, Path]) -> None:
    """Allocated steps against recorded ones: a few steps while short, at most a quarter when long."""
    import numpy as np

    from wordstream.server.history import History

    model = load_model(tiny_models["gru"])
    typed, pasted = History(model), History(model)
    cap = 10**6
    for steps in range(1, 400):
        typed.reserve(1, cap)
        typed.append(0, "a", 2, np.zeros(typed.width, np.float32))
        assert typed.capacity - steps <= max(History.MIN_GROWTH, steps // 4), steps
    pasted.reserve(250, cap)
    assert pasted.capacity == 250
    assert typed.nbytes == typed.capacity * typed.step_bytes
    assert typed.owns_exact_buffers()  # no view into a larger buffer


async def _two_pastes_at_once(server: ServerThread) -> list[Any]:
    import asyncio

    from wordstream.server.history import HistoryMode

    service = server.service
    a, b = await service.open("", HistoryMode.NONE), await service.open("", HistoryMode.NONE)
    words = ["fine"] * 3
    return list(
        await asyncio.gather(service.push_words(a, words), service.push_words(b, words), return_exceptions=True)
    )


def test_the_total_history_limit_holds_for_pastes_side_by_side(make_server: MakeServer) -> None:
    """The check and the reservation of one paste happen together: a second paste that starts while
    the first is still in the model cannot take the same room."""
    from wordstream.server.errors import SessionLimit

    step = 8 + 4 + 2 * 4 + 2 * 2 * 10 * 4  # the 2-layer tiny LSTM: 180 bytes a step
    server: ServerThread = make_server(max_total_bytes=4 * step)  # room for one paste of three words, not two
    results = server.call(_two_pastes_at_once(server))
    assert [type(r).__name__ for r in results] == ["list", "SessionLimit"]
    assert isinstance(results[1], SessionLimit) and "server's history memory" in str(results[1])
    store = server.service.store
    assert store.total_bytes == sum(s.history_bytes for s in store.sessions()) <= 4 * step


def test_accounted_bytes_follow_every_operation(server: ServerThread) -> None:
    from tests.helpers import open_stream

    store = server.service.store
    stream, _ = open_stream(server.target)
    other, other_opened = open_stream(server.target)
    for word in ("a", "fine", "film!", "but", "dull"):
        stream.word(word)
        other.word(word)
    stream.send(paste=pb.Paste(words=["x"] * 30))
    for _ in range(29):
        next(stream.responses)
    stream.send(rewind=pb.Rewind(words=10))
    assert store.total_bytes == sum(s.history_bytes for s in store.sessions())
    other.send(reset=pb.Reset())
    assert store.get(other_opened.session_id).history_bytes == 0  # a reset frees the arrays
    assert store.total_bytes == sum(s.history_bytes for s in store.sessions())
    stream.send(close=pb.Close())
    assert store.total_bytes == sum(s.history_bytes for s in store.sessions())
    other.end()


def listening() -> list[tuple[str, int]]:
    """(address as the kernel writes it in hex, port) of every listening TCP socket."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A":  # LISTEN
                address, port = local.split(":")
                found.append((address, int(port, 16)))
    return found


def test_every_listener_defaults_to_loopback(tiny_models: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """The server, its metrics endpoint and the gateway listen on loopback unless told otherwise:
    the defaults, and the sockets a server started with them really holds (read from /proc/net)."""
    from wordstream.gateway.__main__ import parser as gateway_parser

    monkeypatch.delenv("WORDSTREAM_HOST", raising=False)
    assert gateway_parser().parse_args([]).host == "127.0.0.1"
    settings = Settings(port=0, metrics_port=0, models=str(tiny_models["lstm"].parent), default_model="tiny-lstm")
    assert (settings.host, settings.metrics_host) == ("localhost", "localhost")
    server = ServerThread(settings)
    try:
        ports = {server.port, server.running.metrics_port}
        found = [(address, port) for address, port in listening() if port in ports]
        loopback = ("0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F")
        assert found and all(address in loopback for address, _ in found), found
        assert {port for _, port in found} == ports
    finally:
        server.stop()
