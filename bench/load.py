"""One load-generator process: many ping-pong streams against the service or the echo baseline.

    python -m bench.load --target localhost:50051 --kind service --streams 50 --words 40
    python -m bench.load --target localhost:50051 --kind multiplex --streams 1 --entries 100 --words 100

Each stream sends one message, waits for its answer, and repeats (the way a person
types: the next word does not leave before the answer to the last). With ``--texts FILE``
(one text per line; bench/texts.py writes the test split's) each service stream types those
words in order, each stream from its own place in them; without it, a fixed 30-word text.
Prints one JSON line: per-word latencies (seconds), the wall time of the measured phase, and
this process's CPU seconds. Streams are opened (and warmed up by one word) before ``--start-at``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import secrets
import sys
import time
from typing import Any, cast

import grpc

from bench.texts import read_words
from wordstream.v1 import wordstream_pb2 as pb

ECHO_METHOD = "/bench.Echo/Stream"
STREAM_METHOD = "/wordstream.v1.Wordstream/Stream"
MULTIPLEX_METHOD = "/wordstream.v1.Wordstream/Multiplex"
SHORT_TEXT = (
    "the film is a moving and funny portrait of love loss but its plot never quite holds together "
    "even so the cast is wonderful and the ending earns every tear it asks for"
).split()


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Words:
    """The words streams type, each request encoded once; stream ``n`` starts at its own place."""

    def __init__(self, words: list[str]) -> None:
        encoded = {word: pb.StreamRequest(word=word).SerializeToString() for word in set(words)}
        self.words = words
        self.requests = [encoded[word] for word in words]

    def offset(self, stream: int) -> int:
        return (stream * 7919) % len(self.words)  # a prime stride spreads the streams over the texts


class ServiceStream:
    """A service stream as lean as the echo's: requests encoded once, answers read as bytes and
    parsed by the protobuf library's C parser only as far as checking that each is a word answer."""

    def __init__(self, channel: grpc.aio.Channel, model: str, history: int, words: Words, number: int) -> None:
        # The session id as the client library sends it: a balancer hashes on it (deploy/envoy.yaml).
        self.call = channel.stream_stream(STREAM_METHOD)(metadata=(("x-session-id", secrets.token_urlsafe(24)),))
        self.model, self.history = model, history
        self.words, self.start = words, words.offset(number)

    async def open(self) -> None:
        history = cast("pb.HistoryMode", self.history)
        await self.call.write(pb.StreamRequest(open=pb.Open(model=self.model, history=history)).SerializeToString())
        answer = pb.StreamResponse.FromString(await self.call.read())
        if not answer.HasField("opened"):
            raise RuntimeError(f"unexpected answer: {answer}")

    async def send(self, i: int) -> None:
        requests = self.words.requests
        await self.call.write(requests[(self.start + i) % len(requests)])
        self.check(await self.call.read())

    async def paste(self, i: int, words: int) -> None:
        text = self.words.words
        batch = [text[(self.start + i * words + k) % len(text)] for k in range(words)]
        await self.call.write(pb.StreamRequest(paste=pb.Paste(words=batch)).SerializeToString())
        for _ in range(words):
            self.check(await self.call.read())

    @staticmethod
    def check(data: bytes) -> None:
        if pb.StreamResponse.FromString(data).WhichOneof("kind") != "word":
            raise RuntimeError(f"unexpected answer: {pb.StreamResponse.FromString(data)}")

    async def close(self) -> None:
        await self.call.write(pb.StreamRequest(close=pb.Close()).SerializeToString())
        await self.call.read()
        await self.call.done_writing()


class MultiplexStream:
    """``--entries`` sessions on one Multiplex stream: each message carries one word entry of every
    session, one message in flight; the answer is parsed whole (every entry's result decoded) and
    each result checked to be a word answer."""

    def __init__(self, channel: grpc.aio.Channel, model: str, history: int, words: Words, number: int, entries: int):
        self.call = channel.stream_stream(MULTIPLEX_METHOD)(metadata=(("x-session-id", secrets.token_urlsafe(24)),))
        self.model, self.history, self.words = model, history, words
        self.sessions = [secrets.token_urlsafe(24) for _ in range(entries)]
        self.starts = [words.offset(number * entries + k) for k in range(entries)]

    async def exchange(self, entries: list[pb.Entry], kind: str) -> None:
        await self.call.write(pb.MultiplexRequest(entries=entries).SerializeToString())
        answered = 0
        while answered < len(entries):
            results = pb.MultiplexResponse.FromString(await self.call.read()).results
            for result in results:
                if result.WhichOneof("kind") != kind:
                    raise RuntimeError(f"unexpected answer: {result}")
            answered += len(results)

    async def open(self) -> None:
        history = cast("pb.HistoryMode", self.history)
        opens = [pb.Entry(session_id=s, open=pb.Open(model=self.model, history=history)) for s in self.sessions]
        await self.exchange(opens, "opened")

    async def send(self, i: int) -> None:
        text = self.words.words
        entries = [
            pb.Entry(seq=i, session_id=s, word=text[(start + i) % len(text)])
            for s, start in zip(self.sessions, self.starts)
        ]
        await self.exchange(entries, "word")

    async def close(self) -> None:
        await self.exchange([pb.Entry(session_id=s, close=pb.Close()) for s in self.sessions], "closed")
        await self.call.done_writing()


class EchoStream:
    """The transport's own limit: the same message sizes, no work."""

    def __init__(self, channel: grpc.aio.Channel, request_bytes: int, response_bytes: int) -> None:
        self.call = channel.stream_stream(ECHO_METHOD)()
        self.request = response_bytes.to_bytes(4, "big") + bytes(max(0, request_bytes - 4))

    async def open(self) -> None:
        pass

    async def send(self, i: int) -> None:
        await self.call.write(self.request)
        await self.call.read()

    async def close(self) -> None:
        await self.call.done_writing()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    channels = [grpc.aio.insecure_channel(args.target) for _ in range(max(1, args.channels))]
    words = Words(read_words(args.texts) if args.texts else SHORT_TEXT)
    streams: list[Any] = []
    for i in range(args.streams):
        channel = channels[i % len(channels)]
        if args.kind == "echo":
            streams.append(EchoStream(channel, args.request_bytes, args.response_bytes))
        elif args.kind == "multiplex":
            streams.append(
                MultiplexStream(channel, args.model, args.history, words, args.first_stream + i, args.entries)
            )
        else:
            streams.append(ServiceStream(channel, args.model, args.history, words, args.first_stream + i))
    for start in range(0, len(streams), 200):  # open in waves, so the server is not flooded with opens
        await asyncio.gather(*(s.open() for s in streams[start : start + 200]))
    await asyncio.gather(*(s.send(0) for s in streams))  # warm-up word
    if args.start_at:
        await asyncio.sleep(max(0.0, args.start_at - time.time()))
    latencies: list[list[float]] = [[] for _ in streams]
    cpu_before = cpu_seconds()
    began = time.perf_counter()

    async def drive(n: int, stream: Any) -> None:
        for i in range(1, args.words + 1):
            sent = time.perf_counter()
            if args.paste:
                await stream.paste(i, args.paste)
            else:
                await stream.send(i)
            latencies[n].append(time.perf_counter() - sent)

    await asyncio.gather(*(drive(n, s) for n, s in enumerate(streams)))
    wall = time.perf_counter() - began
    cpu = cpu_seconds() - cpu_before
    if args.hold:  # report now, then keep the streams open while the caller measures the server
        print(json.dumps({"streams": len(streams), "holding": args.hold}), flush=True)
        await asyncio.sleep(args.hold)
    if not args.keep_open:
        await asyncio.gather(*(s.close() for s in streams))
    for channel in channels:
        await channel.close()
    return {
        "latencies": latencies,
        "wall": wall,
        "cpu": cpu,
        "streams": len(streams),
        "words": args.words,
        "paste": args.paste,
        "entries": args.entries if args.kind == "multiplex" else 1,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--target", required=True)
    p.add_argument("--kind", choices=("service", "echo", "multiplex"), required=True)
    p.add_argument("--streams", type=int, default=1)
    p.add_argument("--words", type=int, default=100, help="messages per stream in the measured phase")
    p.add_argument("--paste", type=int, default=0, help="send pastes of this many words instead of single words")
    p.add_argument(
        "--entries", type=int, default=100, help="multiplex: sessions per stream, one word of each per message"
    )
    p.add_argument("--model", default="")
    p.add_argument("--texts", help="a file of texts, one per line, whose words the streams type")
    p.add_argument("--first-stream", type=int, default=0, help="number of this process's first stream")
    p.add_argument("--history", type=int, default=pb.HISTORY_MODE_DELTA)
    p.add_argument("--request-bytes", type=int, default=16)
    p.add_argument("--response-bytes", type=int, default=1200)
    p.add_argument("--channels", type=int, default=1, help="TCP connections to spread the streams over")
    p.add_argument("--start-at", type=float, default=0.0, help="epoch seconds at which to start measuring")
    p.add_argument("--keep-open", action="store_true")
    p.add_argument("--hold", type=float, default=0.0, help="print a line, then hold the streams open this long")
    args = p.parse_args()
    result = asyncio.run(run(args))
    if not args.hold:
        json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
