"""The behavioural suite (wordstream/training/behaviour): its cases, its judging, and evaluate --behaviour."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest

from wordstream.training import behaviour
from wordstream.training.behaviour import Case, judge

ROOT = Path(__file__).resolve().parent.parent


def test_the_report_part_has_at_least_20_cases_per_category_each_well_formed() -> None:
    cases = behaviour.load()
    counts = Counter(c.category for c in cases)
    assert set(counts) == set(behaviour.CATEGORIES) and min(counts.values()) >= 20, counts
    texts = [(c.text, c.variant) for c in cases]
    assert len(texts) == len(set(texts)), "a case is written twice"
    labeled = [c for c in cases if c.category in behaviour.LABELED]
    assert Counter(c.label for c in labeled)["positive"] >= 0.4 * len(labeled)  # both labels, not one
    assert Counter(c.label for c in labeled)["negative"] >= 0.4 * len(labeled)


def test_the_report_part_shares_no_text_with_the_development_sets() -> None:
    mine = {t.lower() for c in behaviour.load() for t in (c.text, c.variant) if t}
    for name in ("chat-dev.csv", "review-dev.csv", "editorial-dev.csv"):
        with open(ROOT / "data" / name, newline="", encoding="utf-8") as f:
            theirs = {row["text"].lower() for row in csv.DictReader(f)}
        assert not mine & theirs, (name, sorted(mine & theirs)[:5])


@pytest.mark.parametrize(
    ("case", "typing", "variant", "passed"),
    [
        (Case("negated negative", "not bad at all", "positive"), [0.5, 0.2, 0.6, 0.7], [], True),
        (Case("negated negative", "not bad at all", "positive"), [0.5, 0.2, 0.3, 0.4], [], False),
        (Case("invariance", "a b", "negative", "a b @x"), [0.3, 0.2], [0.3, 0.2, 0.4], True),
        (Case("invariance", "a b", "negative", "a b @x"), [0.3, 0.2], [0.3, 0.2, 0.6], False),
        (Case("directional", "so good", "positive", "so good!!!", "not weaker"), [0.8], [0.785], True),
        (Case("directional", "so good", "positive", "so good!!!", "not weaker"), [0.8], [0.77], False),
        (Case("directional", "so bad", "negative", "so bad!!!", "not weaker"), [0.2], [0.215], True),
        (Case("directional", "so bad", "negative", "so bad!!!", "not weaker"), [0.2], [0.23], False),
        (Case("directional", "it was bad", "positive", "it was not bad", "more positive"), [0.2], [0.3], True),
        (Case("directional", "it was bad", "positive", "it was not bad", "more positive"), [0.2], [0.2], False),
    ],
)
def test_judging_reads_the_last_word_and_the_expectation(
    case: Case, typing: list[float], variant: list[float], passed: bool
) -> None:
    assert judge(case, typing, variant) is passed


def test_a_malformed_suite_file_is_refused_naming_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "suite.jsonl"
    bad.write_text('{"category": "contrast", "text": "fine but dull", "label": "negative"}\n{"category": "x"}\n')
    with pytest.raises(behaviour.SuiteError, match=r"suite.jsonl:2: a case needs"):
        behaviour.load(bad)
    bad.write_text('{"category": "directional", "text": "ok", "label": "positive", "variant": "ok!!!"}\n')
    with pytest.raises(behaviour.SuiteError, match=r":1: expect must be one of"):
        behaviour.load(bad)


def test_evaluate_behaviour_prints_the_table_vader_beside_and_each_failure_typed(
    tiny_models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from wordstream.training.evaluate import main

    assert main([str(tiny_models["gru"]), "--behaviour"]) == 0
    out = capsys.readouterr().out
    figures = json.loads(out.strip().splitlines()[-1])
    assert figures["suite"] == "report" and figures["behaviour"]["all"]["cases"] == len(behaviour.load())
    assert set(figures["vader"]) == set(figures["behaviour"]) == {*behaviour.CATEGORIES, "all"}
    assert "negated negative" in out and "VADER" in out
    failed = figures["behaviour"]["all"]["cases"] - figures["behaviour"]["all"]["passed"]
    if failed:  # each failure shows P(positive) after each of its words
        assert f"failures ({failed})" in out and "(0." in out
    own = tmp_path / "mine.jsonl"
    own.write_text(json.dumps({"category": "negated negative", "text": "not bad at all", "label": "positive"}) + "\n")
    assert main([str(tiny_models["gru"]), "--behaviour", str(own)]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["suite"] == str(own) and figures["behaviour"]["all"]["cases"] == 1
    assert figures["vader"]["negated negative"]["passed"] == 1  # VADER reads the negator


def test_synthetic_texts_follow_their_rule_and_never_repeat_a_report_case() -> None:
    from wordstream.training import synthetic

    words = synthetic.lexicon()
    assert "good" in words.positive and "bad" in words.negative and "boring" in words.negative
    assert min(map(len, (words.positive, words.negative))) > 200
    assert not {"clarity", "clearly", "award"} & {*words.positive, *words.negative}  # a noun, an adverb, a verb
    assert "😊" in words.positive_emoji and "😢" in words.negative_emoji and ":)" in words.positive_emoticons
    report = {t.lower() for c in behaviour.load() for t in (c.text, c.variant) if t}
    planted = {"not bad", "not bad!"}  # written by rule, excluded all the same
    assert {"complaint", "regret"} <= set(words.negative_nouns) and "joy" in words.positive_nouns
    assert "hate" in words.negative_verbs and ("disappoint", "disappointed") in words.negative_causes
    small = synthetic.Lexicon(
        ["good"], ["bad"], ["😊"], ["😢"], [":)"], [":("], ["joy"], ["problem"], ["love"], ["hate"],
        [("impress", "impressed")], [("annoy", "annoyed")], ["stoked"], ["yuck"],
    )  # fmt: skip
    written = synthetic.write(3000, 7, small, report | planted)
    assert len({w.text for w in written}) == 3000 and not {w.text.lower() for w in written} & (report | planted)
    negators = {"not", "never", "no", "zero", "nothing", "hardly", "nobody", "without"}
    positive = {"good", "😊", ":)", "joy", "joys", "love", "impress", "impressed", "stoked"}
    for w in written:  # the rule, read back independently: after "but" the second clause decides
        tokens = [x.strip("!,").lower() for x in w.text.split()]
        if "but" in tokens:
            tokens = tokens[tokens.index("but") :]
        plain = "positive" if positive & set(tokens) else "negative"
        negated = bool(negators & set(tokens)) or any(x.endswith("n't") for x in tokens)
        expected = {"positive": "negative", "negative": "positive"}[plain] if negated else plain
        assert w.label == expected, w
    forms = Counter(
        "sign"
        if {"😊", "😢", ":)", ":("} & set(w.text.split())
        else "scope"
        if " one " in w.text or "s at all" in w.text
        else ""
        for w in written
    )
    assert forms["sign"] > 150 and forms["scope"] > 150, forms  # the new forms are drawn
    nouns = sum(bool({"joy", "joys", "problem", "problems"} & set(w.text.split())) for w in written)
    verbs = sum(
        bool({"love", "hate", "impress", "impressed", "annoy", "annoyed"} & set(w.text.split())) for w in written
    )
    chat = sum(bool({"stoked", "yuck"} & {x.strip("!,") for x in w.text.split()}) for w in written)
    noisy = Counter(next((k for k in ("@", "https://", "#") if k in w.text), "") for w in written)
    assert nouns > 150 and verbs > 150 and chat > 50 and min(noisy["@"], noisy["https://"], noisy["#"]) > 50, (
        nouns,
        verbs,
        chat,
        noisy,
    )
    boosted = Counter(  # an intensifier before a word of either sign, unnegated: the label stays
        w.label
        for w in written
        if any(f" {i} good" in w.text or f" {i} bad" in w.text for i in synthetic.INTENSIFIERS)
        and "not" not in w.text
        and "n't" not in w.text
    )
    assert min(boosted.values()) > 100 and len(boosted) == 2, boosted
    readings = synthetic.vader_prefixes("the food was not bad")
    assert len(readings) == 5 and readings[-1] > 0.5 > synthetic.vader_prefixes("the food was bad")[-1]


def test_chat_terms_are_the_twitter_lexicons_feelings_not_its_topics() -> None:
    from wordstream.training import synthetic

    twitter = {"#stoked": 0.6, "yuuuck": -0.7, "good": 0.8, "meh": -0.1, "family": 0.64, "girls": 0.56, "cant": 0.31,
               "totally": 0.4, "not": -0.5, "no way": 0.5, "gutted": -0.6, "#gutted": -0.4, "sick": -0.7}  # fmt: skip
    tags: synthetic.Senses = {
        "family": [({"Noun"}, {"Kin"})],
        "girl": [({"Noun"}, set())],
        "sick": [(set(), {"Negativ"})],
    }
    positive, negative = synthetic.chat_terms(twitter, {"good": 1.9}, {}, tags)
    assert positive == ["stoked"] and negative == ["gutted", "sick", "yuuuck"], (positive, negative)
    words = synthetic.lexicon()  # the installed lexicon: slang stays, everyday words go
    assert {"stoked", "yum"} <= set(words.positive_chat) and {"cringe", "yuck"} <= set(words.negative_chat)
    assert (
        not {"family", "coffee", "girls", "cant", "absolutely"} & set(words.positive_chat)
        and "black" not in words.negative_chat
    )


def test_the_development_part_is_its_templates_written_out_and_apart_from_training_and_report() -> None:
    from wordstream.training import synthetic
    from wordstream.training.behaviour import development

    cases = behaviour.load("development")
    shipped = development.shipped_path().read_text(encoding="utf-8")
    assert shipped == development.to_jsonl(development.write(development.common_words(synthetic.lexicon())))
    counts = Counter(c.category for c in cases)
    assert set(counts) == set(behaviour.CATEGORIES) and min(counts.values()) >= 18, counts
    report = {t.lower() for c in behaviour.load() for t in (c.text, c.variant) if t}
    texts = {t.lower() for c in cases for t in (c.text, c.variant) if t}
    assert not texts & report
    trained = {w.text.lower() for seed in (13, 14, 15) for w in synthetic.write(6000, seed, synthetic.lexicon(), set())}
    assert not texts & trained  # other frames than training's


def test_evaluate_reads_the_development_part_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    from wordstream.training.evaluate import main

    assert main([str(ROOT / "models" / "sentiment-lstm.onnx"), "--behaviour", "development"]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["suite"] == "development" and figures["behaviour"]["all"]["cases"] == len(
        behaviour.load("development")
    )


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_the_shipped_model_reads_not_bad_at_all_as_positive_while_it_is_typed(cell: str) -> None:
    """The issue's typing view: P(positive) after "bad" and after "all" of "not bad at all" is
    above 0.5, read word by word as the server reads it, by the shipped LSTM and GRU."""
    from wordstream.modelfile import load_model
    from wordstream.training.evaluate import positive_reader

    read = positive_reader(load_model(ROOT / "models" / f"sentiment-{cell}.onnx", threads=1))
    (typing,) = read(["not bad at all"])
    assert typing[1] > 0.5 and typing[3] > 0.5, typing


def test_evaluate_typing_prints_each_words_reading_with_vaders_beside(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from wordstream.modelfile import load_model
    from wordstream.training.evaluate import main, positive_reader

    model = ROOT / "models" / "sentiment-gru.onnx"
    assert main([str(model), "--typing", "not bad at all", "ugh :("]) == 0
    lines = capsys.readouterr().out.splitlines()
    (expected,) = positive_reader(load_model(model, threads=1))(["not bad at all"])
    assert lines[0] == "sentiment-gru.onnx: " + " ".join(
        f"{w}({p:.2f})" for w, p in zip("not bad at all".split(), expected)
    )
    assert lines[1].strip().startswith("VADER: not(0.50) bad(") and len(lines) == 4
    assert lines[2].startswith("sentiment-gru.onnx: ugh(") and " :((" in lines[2]  # an emoticon is one word
    assert main([str(tmp_path / "missing.onnx"), "--typing", "hi"]) == 1
    assert "missing.onnx" in capsys.readouterr().err
