"""The model pipeline end to end: tiny real models, ONNX graph contract, parity with PyTorch."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from tests.helpers import CELLS, counting_model, synthetic_texts, write_csv
from wordstream.modelfile import load_model
from wordstream.training.config import TrainConfig
from wordstream.training.data import Example
from wordstream.training.evaluate import evaluate
from wordstream.training.evaluate import main as evaluate_main
from wordstream.training.model import TextClassifier

PARITY_TEXTS = 200


def load_torch(onnx_path: Path) -> TextClassifier:
    checkpoint = torch.load(onnx_path.with_suffix(".pt"), weights_only=True)  # plain tensors and values only
    config = TrainConfig.from_dict(checkpoint["config"])
    model = TextClassifier(
        config,
        len(checkpoint["vocabulary"]),
        len(checkpoint["labels"]),
        checkpoint["learned_size"],
        checkpoint["lexicon_dim"],
        checkpoint.get("pretrained_dim", 0),
    )
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()


@pytest.mark.parametrize("cell", CELLS)
def test_graph_follows_the_step_model_contract(tiny_models: dict[str, Path], cell: str) -> None:
    proto = onnx.load(str(tiny_models[cell]))
    onnx.checker.check_model(proto)
    assert not list(tiny_models[cell].parent.glob("*.onnx.data")), "weights must live inside the one file"
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    states = ["h", "c"] if cell == "lstm" else ["h"]
    assert [i.name for i in proto.graph.input] == ["token_ids", *(f"state_in.{s}" for s in states)]
    assert [o.name for o in proto.graph.output] == ["probs", *(f"state_out.{s}" for s in states)]
    token_ids = proto.graph.input[0].type.tensor_type
    assert token_ids.elem_type == onnx.TensorProto.INT64 and token_ids.shape.dim[0].dim_param
    meta = {p.key: json.loads(p.value) for p in proto.metadata_props}
    assert meta["labels"] == ["negative", "positive"]
    assert meta["vocabulary"][:2] == ["<pad>", "<unk>"]
    assert meta["model"]["cell"] == cell
    assert set(meta["evaluation"]) >= {"accuracy", "macro_f1", "n", "typing"}
    assert len(meta["data_hash"]) == 64 and meta["training"]["cell"] == cell and "lowercase" in meta["tokenizer"]


@pytest.mark.parametrize("cell", CELLS)
def test_onnx_steps_match_pytorch_full_sequence(tiny_models: dict[str, Path], cell: str) -> None:
    runner = load_model(tiny_models[cell])
    model = load_torch(tiny_models[cell])
    texts = [text for text, _ in synthetic_texts(PARITY_TEXTS, seed=99)]
    # Words the affect lexicons know but the synthetic training texts never had: their ids lie past
    # the learned embeddings (they share <unk>'s vector and differ by their lexicon features).
    texts += ["a magnificent dreadful film", "the wonderful plot is tedious and dreadful", "superb but tedious"]
    learned = runner.metadata.learned_vocab_size
    assert learned is not None
    lexicon_only = {i for text in texts for i in runner.codec.encode_ids(text) if i >= learned}
    assert len(lexicon_only) >= 4, "the parity texts must reach lexicon-only ids"
    worst = 0.0
    for text in texts:
        ids = runner.codec.encode_ids(text)
        with torch.no_grad():
            logits, _ = model(torch.tensor([ids]), model.init_state(1))
        expected = torch.softmax(logits[0], -1).numpy()  # (time, labels)
        state = runner.initial_state(1)
        for t, token in enumerate(ids):
            probs, state = runner.run(np.array([token], np.int64), state)
            worst = max(worst, float(np.abs(probs[0] - expected[t]).max()))
    assert worst <= 1e-5


@pytest.mark.parametrize("cell", CELLS)
def test_batch_rows_are_independent(tiny_models: dict[str, Path], cell: str) -> None:
    runner = load_model(tiny_models[cell])
    tokens = np.array([2, 3, 4, 5, 6], np.int64)
    batch_probs, batch_state = runner.run(tokens, runner.initial_state(5))
    for row, _token in enumerate(tokens):
        probs, state = runner.run(tokens[row : row + 1], runner.initial_state(1))
        np.testing.assert_allclose(probs[0], batch_probs[row], atol=1e-6)
        for name in state:
            np.testing.assert_allclose(state[name][:, 0], batch_state[name][:, row], atol=1e-6)


# (text, gold label): the counting model's reading after each word is worked out by hand below.
KNOWN = [
    ("good film", "positive"),  # +1 +1: P P
    ("bad film", "negative"),  # -1 -1: N N
    ("good bad bad", "negative"),  # +1 0 -1: P N N (a tie reads negative)
    ("film good", "positive"),  # 0 +1: N P
    ("bad good good good", "positive"),  # -1 0 +1 +2: N N P P
    ("good good bad", "negative"),  # +1 +2 +1: P P P, wrong at the end
]


def test_evaluate_gives_the_known_answers_of_a_model_with_set_weights(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = counting_model(tmp_path / "counting.onnx")
    result = evaluate(load_model(model), [Example(text, label) for text, label in KNOWN])
    # At the end: predictions P N N P P P against gold P N N P P N: 5 of 6 right. Positive: 3 true,
    # 1 false positive, 0 missed: F1 6/7; negative: 2 true, 0 false, 1 missed: F1 4/5.
    assert result["n"] == 6 and result["accuracy"] == round(5 / 6, 4)
    assert result["macro_f1"] == round((6 / 7 + 4 / 5) / 2, 4)
    # After ceil(p * n) words (at least one): 25 %: P N P N N P, right 2 of 6; 50 %: P N N N N P,
    # right 3; 75 %: P N N P P P, right 5.
    assert result["typing"] == {"25%": round(2 / 6, 4), "50%": 0.5, "75%": round(5 / 6, 4), "100%": round(5 / 6, 4)}

    data = tmp_path / "small.jsonl"
    data.write_text("\n".join(json.dumps({"text": t, "label": label}) for t, label in KNOWN) + "\n")
    plot = tmp_path / "typing.png"
    assert evaluate_main([str(model), "--data", str(data), "--plot", str(plot)]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed == {k: v for k, v in result.items() if k != "report"}
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # --report: gold P N N P P N against predictions P N N P P P.
    assert evaluate_main([str(model), "--data", str(data), "--report"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out.strip().splitlines()[-1])["report"]
    assert report["confusion"] == {
        "negative": {"negative": 2, "positive": 1},
        "positive": {"negative": 0, "positive": 3},
    }
    assert report["classes"]["positive"] == {"precision": 0.75, "recall": 1.0, "f1": round(6 / 7, 4), "support": 3}
    assert report["classes"]["negative"] == {"precision": 1.0, "recall": round(2 / 3, 4), "f1": 0.8, "support": 3}
    assert "confusion (rows: true label, columns: predicted)" in out


def test_vader_beside_the_model_on_the_same_texts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """VADER's compound sign is the label; a compound of exactly 0 ("the table") reads positive."""
    model = counting_model(tmp_path / "counting.onnx")
    data = write_csv(
        tmp_path / "v.csv", [("a good film", "positive"), ("a bad film", "negative"), ("the table", "negative")]
    )
    assert evaluate_main([str(model), "--data", str(data), "--vader"]) == 0
    vader = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["vader"]
    assert vader["n"] == 3 and vader["zero_scores"] == 1 and vader["accuracy"] == round(2 / 3, 4)
    assert "exactly 0 counts as positive" in vader["rule"]


def test_evaluate_scores_the_validation_part_unless_told_test(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --data, evaluate scores the model's own validation part and says so; the test part
    only with an explicit --split test, named in the output."""
    import json

    from wordstream.textcodec import Tokenizer
    from wordstream.training.data import load_file, split_examples
    from wordstream.training.evaluate import main as evaluate_main
    from wordstream.training.onnx_export import set_metadata

    rows = [(f"{'good ' * (i % 3)}film {i}", "positive" if i % 3 else "negative") for i in range(200)]
    data = write_csv(tmp_path / "data.csv", rows)
    split = split_examples(load_file(data), Tokenizer(), seed=13, labels=("negative", "positive"))
    model = counting_model(tmp_path / "counting.onnx", data={"source": str(data), "text_column": "text"})
    meta = load_model(model).metadata.to_dict()
    meta.update({"training": {"seed": 13}, "data_hash": split.data_hash})
    set_metadata(model, meta)
    for flags, part, name, size in (
        ([], "valid", "validation", len(split.valid)),
        (["--split", "test"], "test", "TEST", len(split.test)),
    ):
        assert evaluate_main([str(model), *flags]) == 0
        out = capsys.readouterr()
        result = json.loads(out.out.splitlines()[-1])
        assert result["split"] == part and result["n"] == size
        assert f"scoring the model's {name} split" in out.err


def test_evaluate_reads_the_models_own_test_split(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A model whose metadata names its data: evaluate rebuilds the test part (a tenth) and scores
    it; the expected accuracy comes from the counting rule applied directly to those texts."""
    from wordstream.textcodec import Tokenizer
    from wordstream.training.data import load_file, split_examples
    from wordstream.training.evaluate import model_split

    rows = [
        (f"{'good ' * (i % 3)}{'bad ' * (i % 2)}film number {i}", "positive" if i % 4 else "negative")
        for i in range(200)
    ]
    data = write_csv(tmp_path / "data.csv", rows)
    split = split_examples(load_file(data), Tokenizer(), seed=13, labels=("negative", "positive"))
    source: dict[str, object] = {"source": str(data), "text_column": "text", "label_column": "label"}
    model = counting_model(tmp_path / "counting.onnx", data=source)
    meta = dataclasses.replace(load_model(model).metadata, training={"seed": 13}, data_hash=split.data_hash)
    test = model_split(meta, "test")
    assert len(test) == 20 and not {e.text for e in test} & {e.text for e in split.train}

    def rule(text: str) -> str:
        words = text.split()
        return "positive" if words.count("good") > words.count("bad") else "negative"

    expected = sum(rule(e.text) == e.label for e in test) / len(test)
    assert evaluate(load_model(model), test)["accuracy"] == round(expected, 4)


@pytest.mark.slow
def test_evaluate_does_not_import_torch(tiny_models: dict[str, Path]) -> None:
    import subprocess
    import sys

    code = (
        "import sys, wordstream.training, wordstream.training.evaluate as e; e.main([sys.argv[1]]);"
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    result = subprocess.run([sys.executable, "-c", code, str(tiny_models["lstm"])], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_a_chat_model_with_pretrained_vectors_exports_and_matches_pytorch(tmp_path: Path) -> None:
    """--chat --pretrained: the chat tokenizer and lexicons, MiniLM vectors as int8 in the graph;
    ONNX Runtime step by step equals PyTorch over whole texts, and int8 stays near float32."""
    from wordstream.training.train import main as train_main

    out = tmp_path / "chat.onnx"
    data = write_csv(tmp_path / "d.csv", synthetic_texts(600))
    flags = ["--cell", "lstm", "--out", str(out), "--data", str(data), "--dry-run", "--chat", "true"]
    assert train_main([*flags, "--pretrained", "true", "--checkpoint", str(out.with_suffix(".pt"))]) == 0
    runner = load_model(out)
    assert runner.metadata.tokenizer["chat"] is True
    assert runner.metadata.lexicon_features[-3:] == ["vader", "afinn", "chat_known"]
    parity = runner.metadata.training["pretrained_parity"]
    assert parity["max_abs_diff"] < 1e-3 and parity["final_label_agreement"] >= 0.99, parity
    # Chat words the synthetic texts never had are in the vocabulary (lexicons, MiniLM), as units.
    for word, tokens in (("lol", ["lol"]), (":-)", [":-)"]), ("soooo", ["soo"]), ("#SoGood", ["so", "good"])):
        encoded = runner.codec.encode(word)
        assert list(encoded.tokens) == tokens and not any(encoded.unknown), (word, encoded)
    model = load_torch(out)
    worst = 0.0
    for text in ["omg this is sooo good :)", "ugh worst day ever :( #fail", "lol the film is great <3"]:
        ids = runner.codec.encode_ids(text)
        with torch.no_grad():
            expected = torch.softmax(model(torch.tensor([ids]), model.init_state(1))[0][0], -1).numpy()
        state = runner.initial_state(1)
        for t, token in enumerate(ids):
            probs, state = runner.run(np.array([token], np.int64), state)
            worst = max(worst, float(np.abs(probs[0] - expected[t]).max()))
    assert worst <= 1e-5


def test_the_default_models_fit_the_file_size_budget() -> None:
    for path in sorted((Path(__file__).resolve().parent.parent / "models").glob("*.onnx")):
        assert path.stat().st_size <= 16 * 2**20, (path.name, path.stat().st_size)


def test_the_shipped_files_read_unchanged_into_the_typed_metadata() -> None:
    """The shipped files were written before ModelMetadata: they read as they are, their figures
    named as the test part's (read once, for shipping), their data the default corpus."""
    for path in sorted((Path(__file__).resolve().parent.parent / "models").glob("*.onnx")):
        meta = load_model(path).metadata
        assert meta.evaluation.split == "test" and meta.evaluation.n == 1276, path.name
        assert meta.data.is_default_corpus and meta.split_by == "random" and len(meta.data_hash) == 64
        assert meta.cell in path.name and meta.labels == ("negative", "positive")


def test_the_default_models_training_metadata_reads_back_as_their_configuration() -> None:
    for path in sorted((Path(__file__).resolve().parent.parent / "models").glob("*.onnx")):
        training = load_model(path).metadata.training
        config = TrainConfig.from_dict(training).to_dict()
        assert set(config) <= set(training), path.name  # every setting is recorded
        assert config == {name: training.get(name, config[name]) for name in config}, path.name


def test_distillation_from_a_minilm_teacher(tmp_path: Path) -> None:
    """--distill: MiniLM sentence vectors (the encoder written out in wordstream/training/teacher.py) and a
    logistic regression make soft targets; unlabelled sentences join training with those alone."""
    from wordstream.training import teacher
    from wordstream.training.train import main as train_main

    cache = tmp_path / "cache"
    vectors = teacher.sentence_vectors(
        ["the film is great", "a wonderful movie", "the stock market fell sharply"], cache
    )
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert vectors[0] @ vectors[1] > 0.5 > vectors[0] @ vectors[2]  # a paraphrase is near, another topic far
    assert list((tmp_path / "cache").glob("vectors-*.npy"))  # cached for the next run
    out = tmp_path / "distilled.onnx"
    data = write_csv(tmp_path / "d.csv", synthetic_texts(400))
    flags = ["--cell", "gru", "--out", str(out), "--data", str(data), "--dry-run", "--distill", "0.5"]
    flags += ["--cache-dir", str(cache)]
    assert train_main([*flags, "--teacher", "lr", "--unlabelled", "50", "--pretrained", "false"]) == 0
    training = load_model(out).metadata.training
    assert training["distill"] == 0.5 and training["unlabelled"] == 50 and training["teacher_l2"] in (1e-4, 1e-3, 1e-2)
    assert 0.5 <= training["teacher_valid_accuracy"] <= 1.0


@pytest.mark.slow
def test_distillation_from_a_fine_tuned_teacher_that_reads_prefixes(tmp_path: Path) -> None:
    """--teacher tuned: MiniLM fine-tuned out of fold reads every training text after each fifth
    of its words; each token is trained towards the reading of the prefix it has passed."""
    from wordstream.textcodec import Tokenizer
    from wordstream.training import teacher
    from wordstream.training.config import DRY_RUN
    from wordstream.training.data import load_file, split_examples
    from wordstream.training.train import build_model, encode, prefix_distilled
    from wordstream.training.train import main as train_main

    assert teacher.word_prefix("one two three four five", 0.2) == "one"
    assert teacher.word_prefix("one two three four five", 0.5) == "one two three"
    assert teacher.word_prefix("one", 0.2) == "one"
    with pytest.raises(ValueError, match="teacher must be one of"):
        TrainConfig(teacher="oracle")

    cache = tmp_path / "cache"
    data = write_csv(tmp_path / "d.csv", synthetic_texts(120))
    out = tmp_path / "tuned.onnx"
    flags = ["--cell", "lstm", "--out", str(out), "--data", str(data), "--dry-run", "--pretrained", "false"]
    flags += ["--cache-dir", str(cache)]
    assert train_main([*flags, "--distill", "0.5", "--teacher", "tuned"]) == 0
    training = load_model(out).metadata.training
    assert training["teacher"] == "tuned" and training["teacher_model"] == "all-MiniLM-L6-v2 fine-tuned, 2 folds"
    assert TrainConfig.from_dict(training).teacher == "tuned"  # the metadata reads back as the configuration
    assert list(training["teacher_valid_typing"]) == ["20%", "40%", "60%", "80%", "100%"]
    assert 0.0 <= training["teacher_out_of_fold_accuracy"] <= 1.0
    (cached,) = (tmp_path / "cache").glob("tuned-*.npz")
    with np.load(cached, allow_pickle=False) as arrays:  # numbers and a JSON string, no pickle
        assert arrays["probs"].shape[1:] == (len(teacher.PREFIX_POINTS), 2)

    # The targets of one token each: gold and the teacher's reading so far, mixed half and half.
    config = TrainConfig.from_dict({**DRY_RUN, "distill": 0.5, "teacher": "tuned", "pretrained": False, "chat": False})
    examples = random.Random(config.seed).sample(load_file(data), 120)  # as --dry-run samples them
    split = split_examples(examples, Tokenizer(), seed=config.split_seed)
    _, codec = build_model(config, split, Tokenizer())
    plain = encode(split.train, codec, split.labels, config.max_tokens)
    mixed, _ = prefix_distilled(plain, split, codec, config, cache)  # the teacher from the cache above
    probs, _, _ = teacher.tuned_teacher(
        [e.text for e in split.train],
        [split.labels.index(e.label) for e in split.train],
        [e.text for e in split.valid],
        [split.labels.index(e.label) for e in split.valid],
        2,
        seed=config.split_seed,
        cache=cache,
    )
    changing = 0
    for i, (ids, steps) in enumerate(zip(mixed.ids, mixed.step_targets)):
        gold = np.asarray(plain.targets[i])
        assert steps.shape == (len(ids), 2) and np.allclose(steps.sum(1), 1)
        assert np.allclose(steps[0], 0.5 * gold + 0.5 * probs[i, 0])  # before the first fifth: its reading
        assert np.allclose(steps[-1], 0.5 * gold + 0.5 * probs[i, -1])  # the whole text
        assert np.allclose(mixed.targets[i], steps[-1])
        changing += int(not np.allclose(steps[0], steps[-1]))
    assert changing > len(mixed.ids) // 2  # the teacher reads a prefix differently from the whole text

    # Unlabelled sentences join with the teacher's reading of the whole sentence at every token.
    with_extra, info = prefix_distilled(plain, split, codec, dataclasses.replace(config, unlabelled=20), cache)
    assert info["unlabelled_read"] == 20 and with_extra.labels[-20:] == [-1] * 20
    assert len(with_extra.ids) == len(with_extra.step_targets) == len(with_extra.targets) == len(plain.ids) + 20
    for ids, steps, target in zip(with_extra.ids[-20:], with_extra.step_targets[-20:], with_extra.targets[-20:]):
        assert steps.shape == (len(ids), 2) and np.allclose(steps, target) and np.isclose(sum(target), 1)
