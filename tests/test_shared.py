"""wordstream/shared.py: the helpers the client, export and the server share, by known answers."""

from __future__ import annotations

import io

import pytest

from wordstream.shared import ProgressBar, file_format, macro_f1, parse_bool, rows


def test_parse_bool_takes_the_usual_words_and_names_anything_else() -> None:
    assert [parse_bool(v) for v in ("1", "TRUE", " yes", "on")] == [True] * 4
    assert [parse_bool(v) for v in ("0", "False", "no", "off ")] == [False] * 4
    with pytest.raises(ValueError, match="expected true or false, got 'maybe'"):
        parse_bool("maybe")


def test_macro_f1_counts_every_label_of_the_model() -> None:
    # Labels a, b, c; gold never has c, one prediction is c and one is None (no output).
    gold = ["a", "a", "b", "b"]
    predicted = ["a", "c", "b", None]
    # a: tp 1, fn 1 -> 2/3; b: tp 1, fn 1 -> 2/3; c: tp 0 -> 0. Mean over three labels: 4/9.
    assert macro_f1(gold, predicted, ["a", "b", "c"]) == pytest.approx(4 / 9)
    assert macro_f1([0, 1], [0, 1], range(2)) == 1.0


def test_rows_read_csv_tsv_and_jsonl_and_name_bad_records() -> None:
    assert list(rows("text,label\nfine,pos\n", "csv")) == [(2, {"text": "fine", "label": "pos"})]
    assert list(rows("text\tlabel\nfine\tpos\n", "tsv")) == [(2, {"text": "fine", "label": "pos"})]
    assert list(rows("text,label\na,b,c\n", "csv")) == [(2, "more cells than the header's 2")]
    jsonl = list(rows('{"text": "a"}\n\nnot json\n[1]\n', "jsonl"))
    assert jsonl[0] == (1, {"text": "a"}) and jsonl[1][0] == 3 and "not valid JSON" in str(jsonl[1][1])
    assert jsonl[2] == (4, "a JSON line must be an object")
    assert [file_format(n) for n in ("a.CSV", "b.tsv", "c.jsonl", "d.txt", "-")] == [
        "csv",
        "tsv",
        "jsonl",
        "lines",
        "lines",
    ]


def test_progress_bar_draws_the_last_state_with_a_newline() -> None:
    out = io.StringIO()
    bar = ProgressBar(4, "texts", prefix="epoch 1 ", stream=out)
    for _ in range(4):
        bar.advance(note="loss 0.5")
    last = out.getvalue().split("\r")[-1]
    assert last.startswith("epoch 1 [####################] 4/4 loss 0.5 ") and last.endswith("texts/s\n")
