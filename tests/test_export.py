"""The model pipeline end to end: tiny real models, ONNX graph contract, parity with PyTorch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from export.config import TrainConfig
from export.data import Example
from export.evaluate import StepRunner, evaluate
from export.evaluate import main as evaluate_main
from export.model import TextClassifier
from tests.conftest import CELLS
from tests.helpers import synthetic_texts

PARITY_TEXTS = 200


def load_torch(onnx_path: Path) -> TextClassifier:
    checkpoint = torch.load(onnx_path.with_suffix(".pt"), weights_only=True)  # plain tensors and values only
    config = TrainConfig.from_dict(checkpoint["config"])
    model = TextClassifier(
        config,
        len(checkpoint["vocabulary"]),
        len(checkpoint["labels"]),
        checkpoint["learned_size"],
        checkpoint["lexicon_dim"],
    )
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()


@pytest.mark.parametrize("cell", CELLS)
def test_graph_follows_the_step_model_contract(tiny_models: dict[str, Path], cell: str) -> None:
    proto = onnx.load(str(tiny_models[cell]))
    onnx.checker.check_model(proto)
    assert not list(tiny_models[cell].parent.glob("*.onnx.data")), "weights must live inside the one file"
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    states = ["h", "c"] if cell == "lstm" else ["h"]
    assert [i.name for i in proto.graph.input] == ["token_ids", *(f"state_in.{s}" for s in states)]
    assert [o.name for o in proto.graph.output] == ["probs", *(f"state_out.{s}" for s in states)]
    token_ids = proto.graph.input[0].type.tensor_type
    assert token_ids.elem_type == onnx.TensorProto.INT64 and token_ids.shape.dim[0].dim_param
    meta = {p.key: json.loads(p.value) for p in proto.metadata_props}
    assert meta["labels"] == ["negative", "positive"]
    assert meta["vocabulary"][:2] == ["<pad>", "<unk>"]
    assert meta["model"]["cell"] == cell
    assert set(meta["evaluation"]) >= {"accuracy", "macro_f1", "n", "typing"}
    assert len(meta["data_hash"]) == 64 and meta["training"]["cell"] == cell and "lowercase" in meta["tokenizer"]


@pytest.mark.parametrize("cell", CELLS)
def test_onnx_steps_match_pytorch_full_sequence(tiny_models: dict[str, Path], cell: str) -> None:
    runner = StepRunner.load(tiny_models[cell])
    model = load_torch(tiny_models[cell])
    texts = [text for text, _ in synthetic_texts(PARITY_TEXTS, seed=99)]
    worst = 0.0
    for text in texts:
        ids = runner.codec.encode_ids(text)
        with torch.no_grad():
            logits, _ = model(torch.tensor([ids]), model.init_state(1))
        expected = torch.softmax(logits[0], -1).numpy()  # (time, labels)
        state = runner.init_state(1)
        for t, token in enumerate(ids):
            probs, state = runner.step(np.array([token], np.int64), state)
            worst = max(worst, float(np.abs(probs[0] - expected[t]).max()))
    assert worst <= 1e-5


@pytest.mark.parametrize("cell", CELLS)
def test_batch_rows_are_independent(tiny_models: dict[str, Path], cell: str) -> None:
    runner = StepRunner.load(tiny_models[cell])
    tokens = np.array([2, 3, 4, 5, 6], np.int64)
    batch_probs, batch_state = runner.step(tokens, runner.init_state(5))
    for row, _token in enumerate(tokens):
        probs, state = runner.step(tokens[row : row + 1], runner.init_state(1))
        np.testing.assert_allclose(probs[0], batch_probs[row], atol=1e-6)
        for name in state:
            np.testing.assert_allclose(state[name][:, 0], batch_state[name][:, row], atol=1e-6)


def test_evaluate_known_small_file(
    tiny_models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runner = StepRunner.load(tiny_models["gru"])
    examples = [
        Example("great superb fun", "positive"),
        Example("awful dull boring", "negative"),
        Example("great", "negative"),
        Example("the film", "positive"),
    ]
    result = evaluate(runner, examples)
    # Expected values computed here by hand from the model's own per-text predictions.
    preds = []
    for e in examples:
        state, probs = runner.init_state(1), None
        for token in runner.codec.encode_ids(e.text):
            probs, state = runner.step(np.array([token], np.int64), state)
        preds.append(runner.labels[int(np.argmax(probs))])
    assert result["n"] == 4
    assert result["accuracy"] == sum(p == e.label for p, e in zip(preds, examples)) / 4
    assert set(result["typing"]) == {"25%", "50%", "75%", "100%"}
    assert result["typing"]["100%"] == result["accuracy"]

    data = tmp_path / "small.jsonl"
    data.write_text("\n".join(json.dumps({"text": e.text, "label": e.label}) for e in examples) + "\n")
    plot = tmp_path / "typing.png"
    assert evaluate_main([str(tiny_models["gru"]), "--data", str(data), "--plot", str(plot)]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["accuracy"] == result["accuracy"] and printed["n"] == 4
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_own_test_split(tiny_models: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert evaluate_main([str(tiny_models["rnn"])]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    meta = StepRunner.load(tiny_models["rnn"]).metadata
    assert printed["accuracy"] == meta["evaluation"]["accuracy"] and printed["n"] == meta["evaluation"]["n"]


def test_evaluate_does_not_import_torch(tiny_models: dict[str, Path]) -> None:
    import subprocess
    import sys

    code = (
        "import sys, export.evaluate as e; e.main([sys.argv[1]]);"
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    result = subprocess.run([sys.executable, "-c", code, str(tiny_models["lstm"])], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
