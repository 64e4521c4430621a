from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wordstream.textcodec import PAD_ID, UNK_ID, TextCodec, Tokenizer, Vocabulary

tok = Tokenizer()


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("great!", ["great", "!"]),
        ("Don\u2019t", ["do", "n't"]),
        ("it's", ["it", "'s"]),
        ("can't", ["ca", "n't"]),
        ("o'brien", ["o'brien"]),
        ("3.5 stars, 1,000 times", ["3.5", "stars", ",", "1,000", "times"]),
        ("the '70s", ["the", "'70s"]),
        ("cringe-inducing", ["cringe-inducing"]),
        ("wow!!! ...", ["wow", "!!!", "..."]),
        ("?!", ["?", "!"]),
        ("\u2764\ufe0f\U0001f44d ok", ["\u2764", "\U0001f44d", "ok"]),
        ("\uff26\uff35\uff2c\uff2c", ["full"]),  # full-width letters, NFKC
        ("a\x00b", ["a", "b"]),
        ("soft\u00adhyphen", ["softhyphen"]),
        ("", []),
        ("  \t", []),
    ],
)
def test_tokenize_examples(text: str, tokens: list[str]) -> None:
    assert tok.tokenize(text) == tokens


@given(st.text())
def test_tokens_are_nonempty_and_whitespace_free(text: str) -> None:
    for token in tok.tokenize(text):
        assert token and not any(ch.isspace() for ch in token)


@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12), max_size=8))
def test_words_tokenize_like_the_whole_text(words: list[str]) -> None:
    # The server tokenizes word by word; training tokenizes whole texts. They must agree.
    text = " ".join(words)
    assert [t for w in text.split() for t in tok.tokenize(w)] == tok.tokenize(text)


@given(st.text())
def test_lowercase_and_nfkc(text: str) -> None:
    for token in tok.tokenize(text):
        assert token == tok.normalize(token)


def test_tokenizer_settings_round_trip_and_refuse_unknown() -> None:
    assert Tokenizer.from_settings(tok.settings()) == tok
    with pytest.raises(ValueError, match="unknown tokenizer settings: \\['stem'\\]"):
        Tokenizer.from_settings({**tok.settings(), "stem": True})
    with pytest.raises(ValueError, match="tokenizer version 99 is not supported"):
        Tokenizer.from_settings({**tok.settings(), "version": 99})


def test_vocabulary_build_is_deterministic_and_bounded() -> None:
    texts = [["b", "a", "a"], ["c", "b", "a"], ["d"]]
    vocab = Vocabulary.build(texts, min_freq=2, max_size=10)
    assert vocab.tokens == ("<pad>", "<unk>", "a", "b")
    assert Vocabulary.build(texts, min_freq=1, max_size=4).tokens == ("<pad>", "<unk>", "a", "b")
    assert vocab.ids(["a", "zzz"]) == [2, UNK_ID]
    assert vocab.id("<pad>") == PAD_ID


def test_vocabulary_errors() -> None:
    with pytest.raises(ValueError, match="must start with"):
        Vocabulary(("a", "b"))
    with pytest.raises(ValueError, match="min_freq must be at least 1"):
        Vocabulary.build([], min_freq=0)
    with pytest.raises(ValueError, match="max_size must be at least 3"):
        Vocabulary.build([], max_size=2)


def test_codec_encode_marks_unknown_and_round_trips_metadata() -> None:
    codec = TextCodec(tok, Vocabulary.build([["great", "!"]], min_freq=1))
    encoded = codec.encode("Great!?")
    assert encoded.tokens == ("great", "!", "?")
    assert encoded.unknown == (False, False, True)
    again = TextCodec.from_metadata(**codec.to_metadata())
    assert again.encode_ids("great!") == codec.encode_ids("great!")
