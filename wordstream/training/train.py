"""Train a recurrent text classifier, export it to ONNX and evaluate it, in one go.

    python -m wordstream.training.train --cell lstm --out models/sentiment-lstm.onnx
    python -m wordstream.training.train --cell gru --out /tmp/tiny.onnx --dry-run     # seconds

Every field of :class:`export.config.TrainConfig` is also a flag (``--hidden 256``).
The last line printed is JSON: the model file, its evaluation and the training time.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from wordstream.modelfile import load_model
from wordstream.modelfile.metadata import DataSource, Evaluation, ModelMetadata
from wordstream.shared import ProgressBar, parse_bool
from wordstream.textcodec import PAD_ID, UNK_ID, TextCodec, Tokenizer, Vocabulary
from wordstream.textcodec.vocab import PAD
from wordstream.training.config import DRY_RUN, TrainConfig
from wordstream.training.data import DataError, Example, Split, load_file, load_rotten_tomatoes, split_examples
from wordstream.training.evaluate import evaluate
from wordstream.training.features.lexicon import (
    CHAT_FEATURES,
    FEATURES,
    chat_features,
    emoji_descriptions,
    features,
    load_chat_lexicon,
    load_lexicon,
)
from wordstream.training.features.pretrained import minilm_words, quantize, word_vectors
from wordstream.training.model import TextClassifier
from wordstream.training.onnx_export import export_step_model, set_metadata
from wordstream.training.teacher import DEFAULT_CACHE

DRY_RUN_EXAMPLES = 600
PRETRAINED_DIM = 384  # MiniLM's word-piece vectors


@dataclasses.dataclass
class EncodedSplit:
    """A split's texts as token id lists, with label indices (-1: unlabelled) and the target
    distribution each is trained towards (one-hot, or mixed with a teacher's probabilities).
    ``step_targets``, when given, holds a target for every token of every text (a teacher that
    read the text's prefixes); otherwise every prefix is trained towards the text's target."""

    ids: list[list[int]]
    labels: list[int]
    targets: list[list[float]]
    step_targets: list[np.ndarray] = dataclasses.field(default_factory=list)


def encode(examples: Sequence[Example], codec: TextCodec, labels: Sequence[str], max_tokens: int) -> EncodedSplit:
    index = {label: i for i, label in enumerate(labels)}
    ids = [codec.encode_ids(e.text)[:max_tokens] or [UNK_ID] for e in examples]
    gold = [index[e.label] for e in examples]
    return EncodedSplit(ids, gold, [[float(i == g) for i in range(len(labels))] for g in gold])


def batches(
    data: EncodedSplit, batch_size: int, rng: random.Random | None
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
    """Padded (tokens (batch, time), targets (batch, labels), step targets (batch, time, labels)
    or None) batches.

    Training batches group texts of similar length (less padding, faster epochs) in a
    random order; without ``rng`` the order is fixed.
    """
    order = list(range(len(data.ids)))
    if rng is not None:
        rng.shuffle(order)
        pool = batch_size * 50
        order = [
            i for s in range(0, len(order), pool) for i in sorted(order[s : s + pool], key=lambda i: len(data.ids[i]))
        ]
    chunks = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    if rng is not None:
        rng.shuffle(chunks)
    for chunk in chunks:
        width = max(len(data.ids[i]) for i in chunk)
        tokens = torch.full((len(chunk), width), PAD_ID, dtype=torch.long)
        for row, i in enumerate(chunk):
            tokens[row, : len(data.ids[i])] = torch.tensor(data.ids[i])
        steps = None
        if data.step_targets:
            steps = torch.zeros((len(chunk), width, len(data.targets[0])))
            for row, i in enumerate(chunk):
                steps[row, : len(data.ids[i])] = torch.from_numpy(data.step_targets[i])
        yield tokens, torch.tensor([data.targets[i] for i in chunk]), steps


def prefix_loss(
    logits: torch.Tensor,
    tokens: torch.Tensor,
    targets: torch.Tensor,
    step_share: float,
    steps: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy on every prefix (weight ``step_share``) and on the whole text (the rest).

    logits (batch, time, labels); each prefix is trained towards ``steps`` (batch, time,
    labels) when given, else towards the text's target. Padding comes after each text, so it
    never changes the outputs at real positions, and it is masked out of the loss.
    """
    mask = (tokens != PAD_ID).float()  # (batch, time)
    lengths = mask.sum(1)
    if steps is not None:
        spread = steps.transpose(1, 2)  # (batch, labels, time)
    else:
        spread = targets[:, :, None].expand(-1, -1, tokens.shape[1])  # every prefix, the text's target
    every = F.cross_entropy(logits.transpose(1, 2), spread, reduction="none")
    step_loss = ((every * mask).sum(1) / lengths).mean()
    last = logits[torch.arange(len(tokens)), lengths.long() - 1]  # (batch, labels)
    return step_share * step_loss + (1 - step_share) * F.cross_entropy(last, targets)


@torch.no_grad()
def final_accuracy(model: TextClassifier, data: EncodedSplit, batch_size: int = 256) -> float:
    model.eval()
    correct = 0
    for tokens, targets, _ in batches(data, batch_size, None):
        logits, _ = model(tokens, model.init_state(len(tokens)))
        lengths = (tokens != PAD_ID).sum(1)
        correct += int((logits[torch.arange(len(tokens)), lengths - 1].argmax(-1) == targets.argmax(-1)).sum())
    return correct / len(data.labels)


def build_model(config: TrainConfig, split: Split, tokenizer: Tokenizer) -> tuple[TextClassifier, TextCodec]:
    """The vocabulary from the training split (plus the words the lexicons and the pretrained
    table know), and an untrained model over it with those fixed features."""
    torch.manual_seed(config.seed)
    base = Vocabulary.build((tokenizer.tokenize(e.text) for e in split.train), config.min_freq, config.max_vocab)
    Lookup = Callable[[str, dict[str, tuple[float, ...]]], tuple[float, ...] | None]
    lexicons: list[tuple[dict[str, tuple[float, ...]], tuple[str, ...], Lookup]] = []  # table, features, lookup
    if config.lexicon:
        lexicons.append((load_lexicon(), FEATURES, features))
    if config.chat:
        lexicons.append((load_chat_lexicon(), CHAT_FEATURES, chat_features))
    extra_words: set[str] = {w for table, _, _ in lexicons for w in table}
    if config.chat and config.synthetic:  # the emoji the written texts carry, and the rest of VADER's
        extra_words |= {e for e in emoji_descriptions() if len(e) == 1}
    if config.pretrained:
        extra_words |= set(minilm_words()[: config.pretrained_words])
    # Words the lexicons or the pretrained table know but training saw too rarely (or never) still
    # carry their fixed features; only words that are one token as they stand can be looked up.
    known = set(base.tokens)
    extra = sorted(w for w in extra_words if w not in known and tokenizer.tokenize(w) == [w])
    vocab = Vocabulary((*base.tokens, *extra))
    width = sum(len(names) for _, names, _ in lexicons)
    dim = PRETRAINED_DIM if config.pretrained else 0
    model = TextClassifier(config, len(vocab), len(split.labels), len(base), lexicon_dim=width, pretrained_dim=dim)
    if lexicons:
        rows = [
            [v for table, names, lookup in lexicons for v in (lookup(token, table) or (0.0,) * len(names))]
            for token in vocab.tokens
        ]
        model.lexicon.copy_(torch.tensor(rows))
    if config.pretrained:
        vectors, _ = word_vectors(list(vocab.tokens), emoji_descriptions() if config.chat else {})
        table, scale = quantize(vectors)
        model.pretrained.copy_(torch.from_numpy(table))
        model.pretrained_scale.copy_(torch.from_numpy(scale))
    return model, TextCodec(tokenizer, vocab)


@torch.no_grad()
def int8_parity(model: TextClassifier, data: EncodedSplit, vocabulary: Sequence[str]) -> dict[str, float]:
    """The int8 pretrained table against the float32 table it was made from, on ``data``: the largest
    difference of any probability after any token, and the share of final labels that agree."""
    import copy

    vectors, _ = word_vectors(list(vocabulary), emoji_descriptions() if model.config.chat else {})
    exact = copy.deepcopy(model)
    exact.pretrained = torch.from_numpy(vectors)  # float32 rows; the scale 1 leaves them as they are
    exact.pretrained_scale = torch.ones_like(exact.pretrained_scale)
    worst, agree = 0.0, 0
    for tokens, _, _ in batches(data, 256, None):
        mask = tokens != PAD_ID
        p8 = torch.softmax(model(tokens, model.init_state(len(tokens)))[0], -1)
        p32 = torch.softmax(exact(tokens, exact.init_state(len(tokens)))[0], -1)
        worst = max(worst, float((p8 - p32).abs()[mask].max()))
        last = mask.sum(1) - 1
        rows = torch.arange(len(tokens))
        agree += int((p8[rows, last].argmax(-1) == p32[rows, last].argmax(-1)).sum())
    return {"max_abs_diff": round(worst, 6), "final_label_agreement": round(agree / len(data.labels), 4)}


def lexicon_features(config: TrainConfig) -> list[str]:
    return [*(FEATURES if config.lexicon else ()), *(CHAT_FEATURES if config.chat else ())]


def distilled(
    data: EncodedSplit, split: Split, codec: TextCodec, config: TrainConfig, cache: Path
) -> tuple[EncodedSplit, dict[str, Any]]:
    """The training data with the logistic-regression teacher's probabilities mixed into each
    target (weight ``config.distill``), plus ``config.unlabelled`` sentences with the teacher's alone."""
    from wordstream.training.teacher import fit_teacher, sentence_vectors, unlabelled_sentences

    index = {label: i for i, label in enumerate(split.labels)}
    train_vectors = sentence_vectors([e.text for e in split.train], cache)
    valid_vectors = sentence_vectors([e.text for e in split.valid], cache)
    head, l2, valid_accuracy = fit_teacher(
        train_vectors,
        np.array([index[e.label] for e in split.train]),
        valid_vectors,
        np.array([index[e.label] for e in split.valid]),
        len(split.labels),
    )
    extra = unlabelled_sentences(config.unlabelled) if config.unlabelled else []
    with torch.no_grad():
        soft = torch.softmax(head(torch.from_numpy(train_vectors)), -1).tolist()
        extra_soft = torch.softmax(head(torch.from_numpy(sentence_vectors(extra, cache))), -1).tolist() if extra else []
    a = config.distill
    targets = [[(1 - a) * t + a * p for t, p in zip(one_hot, probs)] for one_hot, probs in zip(data.targets, soft)]
    extra_ids = [codec.encode_ids(text)[: config.max_tokens] or [UNK_ID] for text in extra]
    info = {"teacher_l2": l2, "teacher_valid_accuracy": round(valid_accuracy, 4), "unlabelled_read": len(extra)}
    return EncodedSplit(data.ids + extra_ids, data.labels + [-1] * len(extra), targets + extra_soft), info


def prefix_distilled(
    data: EncodedSplit, split: Split, codec: TextCodec, config: TrainConfig, cache: Path
) -> tuple[EncodedSplit, dict[str, Any]]:
    """The training data with a target for every token: the gold label mixed (weight
    ``config.distill``) with what a fine-tuned MiniLM read in the text so far (wordstream/training/teacher.py:
    out of fold, after each of PREFIX_POINTS of the words; a token takes the teacher's reading
    of the longest such prefix it has passed, the first one before that), plus
    ``config.unlabelled`` sentences with the teacher's reading alone."""
    from wordstream.training.teacher import PREFIX_POINTS, tuned_teacher, unlabelled_sentences

    index = {label: i for i, label in enumerate(split.labels)}
    unlabelled = unlabelled_sentences(config.unlabelled) if config.unlabelled else []
    probs, extra, info = tuned_teacher(
        [e.text for e in split.train],
        [index[e.label] for e in split.train],
        [e.text for e in split.valid],
        [index[e.label] for e in split.valid],
        len(split.labels),
        seed=config.split_seed,
        unlabelled=unlabelled,
        cache=cache,
    )
    a = config.distill
    targets, steps = [], []
    for i, (example, ids) in enumerate(zip(split.train, data.ids)):
        gold = np.asarray(data.targets[i], np.float32)
        ends = np.cumsum([len(codec.encode_ids(word)) for word in example.text.split()])
        marks = [ends[max(1, math.ceil(share * len(ends))) - 1] if len(ends) else 1 for share in PREFIX_POINTS]
        point = np.zeros(len(ids), np.int64)
        for j, mark in enumerate(marks[1:], start=1):
            point[max(mark, 1) - 1 :] = j  # from the token that completes the prefix on
        steps.append((1 - a) * gold + a * probs[i, point])
        targets.append(((1 - a) * gold + a * probs[i, -1]).tolist())
    # Unlabelled sentences: the teacher's reading of the whole sentence at every token.
    extra_ids = [codec.encode_ids(text)[: config.max_tokens] or [UNK_ID] for text in unlabelled]
    targets += [p.tolist() for p in extra]
    steps += [np.repeat(p[None], len(ids), 0) for p, ids in zip(extra, extra_ids)]
    info["unlabelled_read"] = len(unlabelled)
    return EncodedSplit(data.ids + extra_ids, data.labels + [-1] * len(extra_ids), targets, steps), info


def with_synthetic(
    data: EncodedSplit, split: Split, codec: TextCodec, config: TrainConfig
) -> tuple[EncodedSplit, dict[str, Any]]:
    """The training data plus ``config.synthetic`` texts written by rule (synthetic.py), each token
    trained towards the rule's label mixed (weight ``config.distill``) with VADER's reading of the
    text so far; none equal to a case of the behavioural suite's report part. The split's labels
    are negative/positive (train_export_evaluate checks)."""
    from wordstream.training import behaviour, synthetic

    report = {t.lower() for c in behaviour.load() for t in (c.text, c.variant) if t}
    written = synthetic.write(config.synthetic, config.seed, synthetic.lexicon(), report)
    index = {label: i for i, label in enumerate(split.labels)}
    a = config.distill
    ids, labels, targets, steps = list(data.ids), list(data.labels), list(data.targets), list(data.step_targets)
    for w in written:
        tokens = codec.encode_ids(w.text)[: config.max_tokens] or [UNK_ID]
        gold = np.eye(len(split.labels), dtype=np.float32)[index[w.label]]
        readings = np.zeros((len(tokens), len(split.labels)), np.float32)
        token = 0
        for word, p in zip(w.text.split(), synthetic.vader_prefixes(w.text)):
            n = len(codec.encode_ids(word))
            readings[token : token + n, index["positive"]] = p
            readings[token : token + n, index["negative"]] = 1 - p
            token += n
        readings[token:] = readings[max(token - 1, 0)]
        ids.append(tokens)
        labels.append(index[w.label])
        targets.append(((1 - a) * gold + a * readings[-1]).tolist())
        if data.step_targets:
            steps.append((1 - a) * gold + a * readings)
    return EncodedSplit(ids, labels, targets, steps), {"synthetic_texts": len(written)}


def fit_epoch(
    model: TextClassifier,
    data: EncodedSplit,
    config: TrainConfig,
    rng: random.Random,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    epoch: int,
) -> None:
    """One pass over the training data in shuffled batches, with word dropout and clipping."""
    model.train()
    progress = ProgressBar(len(data.ids), "ex", prefix=f"epoch {epoch:2d} ")
    seen, loss_sum, correct_sum = 0, 0.0, 0
    for tokens, targets, step_targets in batches(data, config.batch_size, rng):
        if config.word_dropout:
            drop = (torch.rand(tokens.shape) < config.word_dropout) & (tokens != PAD_ID)
            tokens = tokens.masked_fill(drop, UNK_ID)
        logits, _ = model(tokens, model.init_state(len(tokens)))
        loss = prefix_loss(logits, tokens, targets, config.step_loss, step_targets)
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]  # torch's own annotation
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
        optimizer.step()
        schedule.step()
        lengths = (tokens != PAD_ID).sum(1)
        correct = int((logits[torch.arange(len(tokens)), lengths - 1].argmax(-1) == targets.argmax(-1)).sum())
        seen, loss_sum, correct_sum = seen + len(tokens), loss_sum + loss.item() * len(tokens), correct_sum + correct
        progress.advance(len(tokens), f"loss {loss_sum / seen:.4f} acc {correct_sum / seen:.3f}")


def train(
    model: TextClassifier, config: TrainConfig, split: Split, codec: TextCodec, cache: Path
) -> tuple[TextClassifier, dict[str, Any]]:
    """Fit with AdamW, gradient clipping and early stopping on validation accuracy (a teacher's
    readings are cached in ``cache``)."""
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    train_data = encode(split.train, codec, split.labels, config.max_tokens)
    valid_data = encode(split.valid, codec, split.labels, config.max_tokens)
    teacher_info: dict[str, Any] = {}
    if config.distill > 0:
        with_teacher = prefix_distilled if config.teacher == "tuned" else distilled
        train_data, teacher_info = with_teacher(train_data, split, codec, config, cache)
    if config.synthetic:
        train_data, written = with_synthetic(train_data, split, codec, config)
        teacher_info.update(written)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps = config.max_epochs * -(-len(train_data.ids) // config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.lr, total_steps=steps, pct_start=0.1)
    best: tuple[float, int, dict[str, torch.Tensor]] = (-1.0, 0, {})
    history = []
    start = time.perf_counter()
    for epoch in range(1, config.max_epochs + 1):
        fit_epoch(model, train_data, config, rng, optimizer, schedule, epoch)
        valid_acc = final_accuracy(model, valid_data)
        history.append({"epoch": epoch, "valid_accuracy": round(valid_acc, 4)})
        print(f"  valid acc {valid_acc:.4f}", file=sys.stderr)
        if valid_acc > best[0]:
            best = (valid_acc, epoch, {k: v.clone() for k, v in model.state_dict().items()})
        elif epoch - best[1] >= config.patience:
            break
        if time.perf_counter() - start > config.max_minutes * 60:
            print("  time budget reached", file=sys.stderr)
            break
    model.load_state_dict(best[2])
    model.eval()
    info: dict[str, Any] = {
        "best_epoch": best[1],
        "valid_accuracy": round(best[0], 4),
        "epochs": history,
        "train_seconds": round(time.perf_counter() - start, 1),
        **teacher_info,
    }
    clash = set(info) & set(config.to_dict())
    if clash:  # the metadata's "training" holds both: a clash would overwrite a setting
        raise ValueError(f"training outcome names {sorted(clash)} are configuration fields")
    return model, info


def load_examples(args: argparse.Namespace) -> tuple[list[Example], DataSource, tuple[str, ...] | None]:
    """The examples, where they came from (for the metadata) and the fixed label order, if any."""
    if args.data:
        source = DataSource(str(args.data), args.text_column, args.label_column, args.skip_bad)
        return load_file(args.data, args.text_column, args.label_column, args.skip_bad), source, None
    return load_rotten_tomatoes(), DataSource(), ("negative", "positive")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    overrides = {
        f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if getattr(args, f.name) is not None
    }
    return TrainConfig(**{**(DRY_RUN if args.dry_run else {}), **overrides})


def run(args: argparse.Namespace) -> dict[str, Any]:
    config = config_from_args(args)
    examples, source, labels = load_examples(args)
    if args.dry_run:
        examples = random.Random(config.seed).sample(examples, min(DRY_RUN_EXAMPLES, len(examples)))
        source = dataclasses.replace(source, extra={**source.extra, "dry_run_sample": DRY_RUN_EXAMPLES})
    checkpoint = Path(args.checkpoint) if args.checkpoint else None
    if checkpoint is None and not args.dry_run:
        checkpoint = Path(args.out).with_suffix(".pt")
    return train_export_evaluate(
        config, examples, source, labels, Path(args.out), checkpoint, args.evaluate_split, Path(args.cache_dir)
    )


def save_checkpoint(
    model: TextClassifier, config: TrainConfig, codec: TextCodec, labels: Sequence[str], checkpoint: Path
) -> None:
    """The state dict and the configuration: plain tensors and JSON-able values, no pickled module."""
    vocab = codec.vocab
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "state_dict": model.state_dict(),
            "config": config.to_dict(),
            "vocabulary": list(vocab.tokens),
            "labels": list(labels),
            "learned_size": model.learned_size,
            "lexicon_dim": model.lexicon.shape[1],
            "pretrained_dim": model.pretrained.shape[1],
        },
        checkpoint,
    )


def model_metadata(
    model: TextClassifier,
    config: TrainConfig,
    codec: TextCodec,
    split: Split,
    split_tokenizer: Tokenizer,
    info: dict[str, Any],
    source: DataSource,
) -> ModelMetadata:
    """The model file's metadata (docs/MODEL-FORMAT.md), before its evaluation is added."""
    vocab = codec.vocab
    return ModelMetadata(
        labels=tuple(split.labels),
        tokenizer=codec.tokenizer.settings(),
        vocabulary=list(vocab.tokens),
        model={
            "cell": config.cell,
            "layers": config.layers,
            "hidden": config.hidden,
            "embed_dim": config.embed_dim,
            "vocab_size": len(vocab),
            "learned_vocab_size": model.learned_size,
            "lexicon_features": lexicon_features(config),
            "pretrained": "all-MiniLM-L6-v2 word-piece means, int8 per row" if config.pretrained else None,
            "parameters": sum(p.numel() for p in model.parameters()),
        },
        training={**config.to_dict(), **info},
        data=source,
        data_hash=split.data_hash,
        split_tokenizer=split_tokenizer.settings(),
        pad_token=PAD,
    )


def train_export_evaluate(
    config: TrainConfig,
    examples: list[Example],
    source: DataSource,
    labels: tuple[str, ...] | None,
    out: Path,
    checkpoint: Path | None,
    evaluate_on: str,
    cache: Path = DEFAULT_CACHE,
) -> dict[str, Any]:
    """Split, train, export to ``out`` and evaluate on ``evaluate_on`` ("test" or "valid").

    Model selection (experiments) evaluates on the validation split only; the test split is
    read once per model that is shipped.
    """
    # The split is made with the plain rules whatever the model reads, so every variant sees the same parts.
    split_tokenizer = Tokenizer()
    split = split_examples(examples, split_tokenizer, seed=config.split_seed, labels=labels, by=config.split)
    if config.synthetic and set(split.labels) != {"negative", "positive"}:
        raise ValueError(
            f"the texts written by rule are labelled negative/positive, the data has {list(split.labels)}: "
            "train with --synthetic 0"
        )
    model, codec = build_model(config, split, Tokenizer(chat=config.chat))
    vocab = codec.vocab
    print(
        f"data: {len(split.train)} train, {len(split.valid)} valid, {len(split.test)} test ({config.split} split); "
        f"labels {list(split.labels)}; vocabulary {len(vocab)} ({model.learned_size} learned)",
        file=sys.stderr,
    )
    model, info = train(model, config, split, codec, cache)
    if config.pretrained:
        valid = encode(split.valid, codec, split.labels, config.max_tokens)
        info["pretrained_parity"] = int8_parity(model, valid, codec.vocab.tokens)

    if checkpoint is not None:
        save_checkpoint(model, config, codec, split.labels, checkpoint)
    metadata = model_metadata(model, config, codec, split, split_tokenizer, info, source)
    export_step_model(model, out, metadata.to_dict())
    scored, name = (split.test, "TEST") if evaluate_on == "test" else (split.valid, "validation")
    print(f"scoring the exported model on the {name} split", file=sys.stderr)
    evaluation = evaluate(load_model(out, threads=0), scored)
    evaluation["split"] = evaluate_on
    set_metadata(out, dataclasses.replace(metadata, evaluation=Evaluation.from_dict(evaluation)).to_dict())
    return {
        "model": str(out),
        "evaluation": evaluation,
        "train_seconds": info["train_seconds"],
        "valid_accuracy": info["valid_accuracy"],
        "bytes": out.stat().st_size,
    }


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m wordstream.training.train", description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="where to write the .onnx model")
    p.add_argument("--data", help="labelled CSV, TSV or JSONL file (default: the Rotten Tomatoes corpus)")
    p.add_argument("--text-column", default="text")
    p.add_argument("--label-column", default="label")
    p.add_argument("--skip-bad", action="store_true", help="skip bad rows of --data (with a count) instead of failing")
    p.add_argument("--checkpoint", help="where to write the checkpoint (default: next to --out, .pt)")
    p.add_argument("--dry-run", action="store_true", help="a tiny model on a small sample, in seconds")
    p.add_argument(
        "--evaluate-split",
        choices=("valid", "test"),
        default="valid",
        help="the part the exported model is scored on (default: valid; test only for a model that is shipped: "
        "--split chooses how the data is divided, random or by film)",
    )
    p.add_argument(
        "--cache-dir",
        default=str(DEFAULT_CACHE),
        help="where a teacher's readings are cached (default %(default)s, relative to the working directory)",
    )
    for field in dataclasses.fields(TrainConfig):
        kind: Any = _flag_bool if isinstance(field.default, bool) else type(field.default)
        p.add_argument(
            f"--{field.name.replace('_', '-')}",
            type=kind,
            default=None,
            dest=field.name,
            help=f"(default {field.default})",
        )
    return p


def _flag_bool(value: str) -> bool:
    try:
        return parse_bool(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        result = run(args)
    except (DataError, ValueError) as e:
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
