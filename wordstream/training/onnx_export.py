"""Export a trained classifier as the step model of docs/MODEL-FORMAT.md, with its metadata inside."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import onnx
import torch

from wordstream.modelfile.contract import FORMAT_ID, PROBS, TOKEN_IDS, state_in, state_out
from wordstream.training.model import StepGraph, TextClassifier, state_names

OPSET = 17


def export_step_model(model: TextClassifier, path: str | Path, metadata: dict[str, Any]) -> None:
    """Write ``model`` as one self-contained .onnx file with ``metadata`` (JSON values) attached."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = state_names(model.config.cell)
    step = StepGraph(model).eval()
    example = (torch.zeros(2, dtype=torch.int64), *model.init_state(2))
    inputs = [TOKEN_IDS, *(state_in(n) for n in names)]
    outputs = [PROBS, *(state_out(n) for n in names)]
    dynamic = {TOKEN_IDS: {0: "batch"}, PROBS: {0: "batch"}}
    dynamic.update({name: {1: "batch"} for name in inputs[1:] + outputs[1:]})
    # The TorchScript exporter keeps the weights inside the one file (see issue 2).
    torch.onnx.export(
        step,
        example,
        str(path),
        input_names=inputs,
        output_names=outputs,
        dynamic_axes=dynamic,
        opset_version=OPSET,
        dynamo=False,
    )
    set_metadata(path, metadata)


def set_metadata(path: str | Path, metadata: dict[str, Any]) -> None:
    """Replace the model's metadata_props with ``metadata``, each value JSON-encoded, and check the graph."""
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    for key, value in {"format": FORMAT_ID, **metadata}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value, ensure_ascii=False)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
