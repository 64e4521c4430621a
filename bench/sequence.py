"""The stateless peer's model: the same weights as a step model, run over a whole prefix in one call.

A client of a stateless classifier endpoint sends the whole text so far and gets one answer;
such an endpoint runs a sequence graph, where the recurrent op reads every token in one
kernel call. This module makes that graph from a Wordstream step model (docs/MODEL-FORMAT.md)
without torch and without new weights: the step graph already holds the recurrent op (ONNX
``LSTM``/``GRU``/``RNN``, which take a time axis); only the first op, which adds a time axis of
length 1 to ``token_ids``, and the last gather, which takes time step 0, are changed, so that
the graph takes ``tokens`` ``[batch, time]`` and answers ``probs`` after the last token.

    runner = SequenceRunner.load("models/sentiment-lstm.onnx")
    probs = runner.run([[3, 17, 5]])   # (1, labels): the output after the third token

tests/test_bench_smoke.py checks that its output equals the step model's, token by token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

LAST = "/sequence/last_step"


def sequence_model(step_path: str | Path) -> onnx.ModelProto:
    """The step model at ``step_path`` as a sequence model: input ``tokens`` int64 [batch, time]
    (and the ``state_in.*`` inputs, zeros for a fresh text); output ``probs`` after the last token."""
    model = onnx.load(str(step_path))
    graph = model.graph
    nodes = list(graph.node)
    unsqueeze = next(n for n in nodes if n.op_type == "Unsqueeze" and n.input[0] == "token_ids")
    final = next(n for n in nodes if n.output[0] == next(s for s in nodes if s.op_type == "Softmax").input[0])
    if final.op_type != "Gather":
        raise ValueError(f"{step_path}: expected the output to gather one time step, found {final.op_type}")
    # token_ids [batch] -> [batch, 1] becomes tokens [batch, time] as they are.
    identity = helper.make_node("Identity", ["tokens"], list(unsqueeze.output), name="/sequence/tokens")
    # logits[:, 0, :] becomes logits[:, -1, :].
    last = helper.make_node("Constant", [], [LAST], value=helper.make_tensor(LAST, TensorProto.INT64, [], [-1]))
    gather = helper.make_node("Gather", [final.input[0], LAST], list(final.output), axis=1, name="/sequence/last")
    rebuilt = []
    for node in nodes:
        if node is unsqueeze:
            rebuilt.append(identity)
        elif node is final:
            rebuilt += [last, gather]
        else:
            rebuilt.append(node)
    used = {name for node in rebuilt for name in node.input} | {o.name for o in graph.output}
    rebuilt = [n for n in rebuilt if n.op_type != "Constant" or n.output[0] in used]  # the old time index 0
    del graph.node[:]
    graph.node.extend(rebuilt)
    tokens = helper.make_tensor_value_info("tokens", TensorProto.INT64, ["batch", "time"])
    inputs = [tokens, *(i for i in graph.input if i.name != "token_ids")]
    del graph.input[:]
    graph.input.extend(inputs)
    onnx.checker.check_model(model)
    return model


@dataclass
class SequenceRunner:
    """A sequence model in ONNX Runtime (one thread, like the server's model calls)."""

    session: ort.InferenceSession
    state_shapes: dict[str, tuple[int, int]]  # state_in.<name> -> (layers, hidden)

    @classmethod
    def load(cls, step_path: str | Path, threads: int = 1) -> SequenceRunner:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(
            sequence_model(step_path).SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        shapes = {i.name: (i.shape[0], i.shape[2]) for i in session.get_inputs() if i.name.startswith("state_in.")}
        return cls(session, shapes)

    def run(self, tokens: Sequence[Sequence[int]]) -> np.ndarray:
        """tokens: one list of ids per row, all of one length -> probs (rows, labels) after the last."""
        batch = np.asarray(tokens, np.int64)
        feeds = {"tokens": batch}
        for name, (layers, hidden) in self.state_shapes.items():
            feeds[name] = np.zeros((layers, len(batch), hidden), np.float32)
        probs: np.ndarray = self.session.run(["probs"], feeds)[0]
        return probs
