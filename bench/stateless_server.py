"""The stateless peer: a classifier endpoint that is sent the whole text so far and answers once.

    python -m bench.stateless_server --model models/sentiment-lstm.onnx --port 0   # prints "port N"

This is how a user without Wordstream would get the tone of a text while it is typed: a
unary gRPC call per word carrying every word so far, answered by one ONNX Runtime call over
the whole prefix (bench/sequence.py: the same weights as the step model, the recurrent op
reading every token in one kernel call). Request: a ``wordstream.v1.Paste`` (the words so
far); answer: a ``wordstream.v1.Output``. Same gRPC server options, tokenizer and token cache
as the service, so the difference is the work, not the setup.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import grpc  # noqa: E402

from bench.echo_server import serve_peer  # noqa: E402
from bench.sequence import SequenceRunner  # noqa: E402
from wordstream.modelfile import load_model  # noqa: E402
from wordstream.v1 import wordstream_pb2 as pb  # noqa: E402

METHOD = "/bench.Stateless/Classify"


async def serve(model_path: Path, port: int) -> None:
    step = load_model(model_path)  # its codec and its token cache, as the service uses them
    runner = SequenceRunner.load(model_path)
    labels = list(step.labels)

    async def classify(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        words = pb.Paste.FromString(request).words
        ids = [token for word in words for token in step.encode(word).ids]
        probs = runner.run([ids])[0].tolist()
        return pb.Output(probabilities=probs, label=labels[probs.index(max(probs))]).SerializeToString()

    await serve_peer("bench.Stateless", {"Classify": grpc.unary_unary_rpc_method_handler(classify)}, port)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="models/sentiment-lstm.onnx")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(serve(Path(args.model), args.port))


if __name__ == "__main__":
    main()
