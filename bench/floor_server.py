"""The floor: the least a stateful model server does per word, in the service's own stack.

    python -m bench.floor_server --port 0             # prints "port N"
    python -m bench.floor_server --port 0 --inline    # each word's model call alone, in its stream's task

One grpc.aio bidirectional stream per session, as the echo (bench/echo_server.py: its requests,
the first four bytes giving the answer's size), with the service's gRPC server options, and per
word only what no stateful server can skip: the session's state gathered from a bank, one ONNX
Runtime step of the real model for every word waiting in this round of the event loop (one
Future per word, resolved by the call), the new state scattered back, and the answer made of
the output and state row (padded to the service's answer size: the same bytes on the wire).

What it leaves out, and the service does: reading a word (protobuf, tokenizing: a cached look-up),
sessions (ids, owners, admission, the store), the history, encoding the answer, metrics. So the
service's CPU per word over the floor's is what those cost, and the floor's over the echo's is
what no design in this stack (Python, grpc.aio, ONNX Runtime) can do without.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import grpc  # noqa: E402
import numpy as np  # noqa: E402

from bench.echo_server import serve_peer  # noqa: E402
from wordstream.modelfile import StepModel, load_model  # noqa: E402

SLOTS = 4096  # sessions at once


class Floor:
    """The state bank and the batched model call: one call per round of the loop."""

    def __init__(self, model: StepModel) -> None:
        self.model = model
        self.names = model.state_names
        self.states = {s.name: np.zeros((s.layers, SLOTS, s.hidden), np.float32) for s in model.states}
        self.free = list(range(SLOTS))
        self.waiting: list[tuple[int, asyncio.Future[bytes]]] = []

    def call(self, slots: list[int]) -> list[bytes]:
        """One model step for ``slots`` (a token each); each slot's [probs | states] row as bytes."""
        probs, new = self.model.run(np.ones(len(slots), np.int64), {n: self.states[n][:, slots] for n in self.names})
        for name in self.names:
            self.states[name][:, slots] = new[name]
        parts = [probs, *(new[n].transpose(1, 0, 2).reshape(len(slots), -1) for n in self.names)]
        return [row.tobytes() for row in np.concatenate(parts, 1)]

    async def step(self, slot: int) -> bytes:
        """Wait for this round's call, which carries every word waiting in it."""
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((slot, future))
        if len(self.waiting) == 1:
            asyncio.get_running_loop().call_soon(self.drain)
        return await future

    def drain(self) -> None:
        batch, self.waiting = self.waiting, []
        for (_, future), row in zip(batch, self.call([slot for slot, _ in batch])):
            future.set_result(row)


async def serve(model_path: Path, port: int, inline: bool) -> None:
    floor = Floor(load_model(model_path))

    async def stream(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        slot = floor.free.pop()
        try:
            async for request in requests:
                size = int.from_bytes(request[:4], "big")
                row = floor.call([slot])[0] if inline else await floor.step(slot)
                yield row + bytes(max(0, size - len(row)))
        finally:
            floor.free.append(slot)

    await serve_peer("bench.Echo", {"Stream": grpc.stream_stream_rpc_method_handler(stream)}, port)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="models/sentiment-lstm.onnx")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--inline", action="store_true", help="no batching: each word's call in its own task")
    args = parser.parse_args()
    asyncio.run(serve(Path(args.model), args.port, args.inline))


if __name__ == "__main__":
    main()
