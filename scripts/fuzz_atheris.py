"""Coverage-guided fuzzing (atheris) of request decoding and the tokenizer, for a bounded time.

    python scripts/fuzz_atheris.py --seconds 60

Each input is raw bytes as they would arrive on the wire. The server's tolerant parser must
turn them into a request or a ``Malformed`` marker without raising; every word (and the
bytes read as text) must tokenize into non-empty tokens without whitespace, and encode to
valid vocabulary ids. A crash prints the input and exits non-zero.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

with atheris.instrument_imports():
    from wordstream.server.registration import Malformed, tolerant
    from wordstream.textcodec import TextCodec, Tokenizer, Vocabulary
    from wordstream.v1 import wordstream_pb2 as pb

PARSE = tolerant(pb.StreamRequest.FromString)
CODEC = TextCodec(Tokenizer(), Vocabulary(("<pad>", "<unk>", "great", "!", "film", "n't")))


def check_text(text: str) -> None:
    tokens = CODEC.tokenizer.tokenize(text)
    for token in tokens:
        assert token and not any(ch.isspace() for ch in token), (text, token)
    ids = CODEC.encode_ids(text)
    assert len(ids) == len(tokens) and all(0 < i < len(CODEC.vocab) for i in ids), (text, ids)


def one_input(data: bytes) -> None:
    request = PARSE(data)
    if not isinstance(request, Malformed):
        kind = request.WhichOneof("kind")
        if kind == "word":
            check_text(request.word)
        elif kind == "paste":
            for word in request.paste.words:
                check_text(word)
    check_text(data.decode("utf-8", errors="replace"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=60)
    args, rest = parser.parse_known_args()
    seeds = [pb.StreamRequest(word="great!").SerializeToString(), pb.StreamRequest(open=pb.Open()).SerializeToString()]
    corpus = Path(__file__).resolve().parent.parent / "runs" / "fuzz-corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(seeds):
        (corpus / f"seed-{i}").write_bytes(seed)
    atheris.Setup([sys.argv[0], f"-max_total_time={args.seconds}", "-rss_limit_mb=4096", str(corpus), *rest], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
