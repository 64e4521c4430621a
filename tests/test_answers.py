"""The hand-encoded word answers (server/answers.py) against the protobuf library's own messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.helpers import CELLS, ServerThread, Stream, open_stream
from wordstream.modelfile import load_model
from wordstream.server import answers
from wordstream.server.history import HistoryMode, WordUpdate
from wordstream.server.sessions import SessionView
from wordstream.v1 import wordstream_pb2 as pb

WORDS = ["The", "film's", "Zyzzyva", "well-made", "!!", "plot", "é"]


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 16_383, 16_384, 2**32 - 1, 2**64 - 1])
def test_varints_match_the_protobuf_library(value: int) -> None:
    encoded = answers.uint(1, value)
    assert pb.StreamResponse.FromString(encoded).seq == value
    assert encoded == pb.StreamResponse(seq=value).SerializeToString()


def reference(stream: Stream, session_id: str, seq: int, mode: int, word_index: int, steps: range) -> pb.StreamResponse:
    """The answer built from protobuf objects out of GetSession (which does not use the hand encoding)."""
    full = stream.stub.GetSession(pb.GetSessionRequest(session_id=session_id, end=steps.stop))
    own = full.history[steps.start : steps.stop]
    shown = full.history if mode == pb.HISTORY_MODE_FULL else own if mode == pb.HISTORY_MODE_DELTA else []
    word = pb.WordResult(
        word_index=word_index,
        word=own[0].word,
        tokens=[step.token for step in own],
        output=own[-1].output,
        state=own[-1].state,
        history=pb.HistoryUpdate(
            length=steps.stop, start=0 if mode == pb.HISTORY_MODE_FULL else len(full.history) - len(shown), steps=shown
        ),
    )
    return pb.StreamResponse(seq=seq, session_id=session_id, word=word)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("mode", [pb.HISTORY_MODE_DELTA, pb.HISTORY_MODE_FULL, pb.HISTORY_MODE_NONE])
def test_word_answers_equal_the_messages_the_protobuf_library_builds(
    server: ServerThread, cell: str, mode: pb.HistoryMode
) -> None:
    stream, opened = open_stream(server.target, model=f"tiny-{cell}", history=mode)
    session_id = opened.session_id
    answers = []
    for word in WORDS:
        answers.append(stream.word(word))
    stream.seq = 2**64 - 2  # the largest seq a client may send
    stream.requests.put(pb.StreamRequest(seq=2**64 - 1, paste=pb.Paste(words=["a", "superb", "cast"])))
    answers.extend(next(stream.responses) for _ in range(3))
    start = 0
    for word_index, answer in enumerate(answers):
        length = answer.word.history.length
        steps = range(start, length)
        assert len(steps) == len(answer.word.tokens) >= 1
        expected = reference(stream, session_id, answer.seq, mode, word_index, steps)
        assert answer == expected, f"word {word_index}"
        start = length
    assert answers[-1].seq == 2**64 - 1
    assert answers[2].word.tokens[0].unknown and answers[0].word.output.label
    stream.end()


def test_a_token_id_read_from_two_texts_answers_each_its_own_text(tiny_models: dict[str, Path]) -> None:
    """The encoder remembers a known token's message by id; "soo" read as "so" shares the id, not the text."""
    model = load_model(tiny_models["lstm"])
    session = SessionView("s", model, HistoryMode.DELTA, 0.0, None)
    encoder = answers.WordAnswers(model)
    token_id = model.codec.vocab.id("film")
    session.history.reserve(3, 3)
    for index, text in enumerate(["film", "fiilm", "film"]):
        session.words.append(text)
        session.word_starts.append(index)
        session.history.append(index, text, token_id, np.full(session.history.width, 0.25, np.float32))
        update = WordUpdate(index, range(index, index + 1))
        answer = pb.StreamResponse.FromString(encoder.word(index, answers.session_id("s"), session, update))
        assert [t.text for t in answer.word.tokens] == [text]
        assert answer.word.history.steps[0].token.text == text and answer.word.tokens[0].id == token_id
