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


@given(st.lists(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=12), max_size=8))
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
    with pytest.raises(ValueError, match="unknown tokenizer settings for version 2: \\['stem'\\]"):
        Tokenizer.from_settings({**tok.settings(), "stem": True})
    with pytest.raises(ValueError, match="tokenizer version 99 is not supported"):
        Tokenizer.from_settings({**tok.settings(), "version": 99})


CHAT = Tokenizer(chat=True)


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("sooo good :) lol", ["soo", "good", ":)", "lol"]),
        ("ugh :-( #SoBad @bob http://x.com/a?b=1", ["ugh", ":-(", "so", "bad", "<user>", "<url>"]),
        ("<3 xD :D :P ;) :/", ["<3", "xd", ":d", ":p", ";)", ":/"]),
        ("I loooove it!!!!!", ["i", "loove", "it", "!!!"]),
        ("^_^ -_- T_T", ["^_^", "-_-", "t_t"]),
        ("#great www.test.com", ["great", "<url>"]),
        ("😀😡 omg", ["😀", "😡", "omg"]),
        # What the chat rules leave alone: times, numbers, contractions, words with a colon.
        ("10:30 it's 3.5 stars", ["10:30", "it", "'s", "3.5", "stars"]),
        ("x:D a:b (see above)", ["x", ":", "d", "a", ":", "b", "(", "see", "above", ")"]),
    ],
)
def test_chat_rules(text: str, tokens: list[str]) -> None:
    assert CHAT.tokenize(text) == tokens


def test_version_1_files_keep_the_version_1_rules() -> None:
    old = Tokenizer.from_settings({"lowercase": True, "split_contractions": True, "version": 1})
    assert not old.chat and old.tokenize(":) sooo #great") == [":", ")", "sooo", "#", "great"]
    with pytest.raises(ValueError, match="unknown tokenizer settings for version 1: \\['chat'\\]"):
        Tokenizer.from_settings({"lowercase": True, "split_contractions": True, "chat": True, "version": 1})
    assert Tokenizer.from_settings(CHAT.settings()) == CHAT


@given(st.text())
def test_chat_tokens_are_never_empty_and_a_typed_word_reads_the_same_alone(text: str) -> None:
    tokens = CHAT.tokenize(text)
    assert all(tokens) and not any(t.isspace() for t in tokens)
    for word in text.split():
        assert CHAT.tokenize(word) == CHAT.tokenize(f" {word} ")


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
