"""``wordstream score``: many texts, each streamed word by word as its own session, in flight at once."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from client import errors
from client._async import AsyncClient


@dataclass(frozen=True)
class Text:
    line: int
    text: str
    label: str | None


def read_texts(source: str, fmt: str, text_column: str, label_column: str) -> list[Text]:
    """Texts (and labels, when there is a label column) from a file or standard input."""
    if source == "-":
        content, name = sys.stdin.read(), "<stdin>"
    else:
        path = Path(source)
        if not path.is_file():
            raise errors.InvalidRequest(f"{source}: no such file")
        content, name = path.read_text(encoding="utf-8"), source
    if fmt == "auto":
        suffix = Path(name).suffix.lower()
        fmt = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}.get(suffix, "lines")
    if fmt == "lines":
        return [Text(i, line.strip(), None) for i, line in enumerate(content.splitlines(), 1) if line.strip()]
    if fmt == "jsonl":
        texts = []
        for i, line in enumerate(content.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise errors.InvalidRequest(f"{name}:{i}: not valid JSON ({e.msg})") from None
            texts.append(_row(row, name, i, text_column, label_column))
        return texts
    reader = csv.DictReader(io.StringIO(content), delimiter="," if fmt == "csv" else "\t")
    return [_row(row, name, reader.line_num, text_column, label_column) for row in reader]


def _row(row: Any, name: str, line: int, text_column: str, label_column: str) -> Text:
    if not isinstance(row, dict) or row.get(text_column) is None:
        raise errors.InvalidRequest(f"{name}:{line}: missing column {text_column!r}")
    label = row.get(label_column)
    return Text(line, str(row[text_column]), None if label in (None, "") else str(label))


async def score_one(client: AsyncClient, text: Text, model: str, per_word: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {"line": text.line, "text": text.text}
    if text.label is not None:
        entry["gold"] = text.label
    trajectory, skipped, last = [], [], None
    async with client.session(model=model, history="none") as session:
        for word in text.text.split():
            try:
                result = await session.push(word)
            except errors.InvalidRequest as e:  # e.g. a word with no tokens: score the rest
                skipped.append({"word": word, "error": str(e)})
                continue
            last = result.output
            if per_word and last:
                trajectory.append({"word": word, "label": last.label, "probabilities": last.probabilities})
    entry["label"] = last.label if last else None
    entry["probabilities"] = last.probabilities if last else None
    if per_word:
        entry["per_word"] = trajectory
    if skipped:
        entry["skipped"] = skipped
    return entry


def macro_f1(gold: list[str], predicted: list[str | None]) -> float:
    labels = sorted(set(gold))
    scores = []
    for label in labels:
        tp = sum(g == p == label for g, p in zip(gold, predicted))
        fp = sum(p == label != g for g, p in zip(gold, predicted))
        fn = sum(g == label != p for g, p in zip(gold, predicted))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores) if scores else 0.0


class ProgressBar:
    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.done, self.enabled, self.start, self.drawn = total, 0, enabled, time.monotonic(), 0.0

    def advance(self) -> None:
        self.done += 1
        now = time.monotonic()
        if self.enabled and (now - self.drawn > 0.2 or self.done == self.total):
            self.drawn = now
            filled = int(30 * self.done / self.total)
            rate = self.done / max(now - self.start, 1e-9)
            print(
                f"\r[{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total} {rate:.0f} texts/s",
                end="\n" if self.done == self.total else "",
                file=sys.stderr,
                flush=True,
            )


async def score_texts(server: str, connection: dict[str, Any], texts: list[Text], args: argparse.Namespace) -> int:
    if args.concurrency < 1:
        raise errors.InvalidRequest(f"--concurrency must be at least 1, got {args.concurrency}")
    progress = ProgressBar(len(texts), enabled=not args.no_progress and len(texts) >= 50)
    results: dict[int, dict[str, Any]] = {}
    printed = 0
    async with AsyncClient(server, **connection) as client:
        gate = asyncio.Semaphore(args.concurrency)

        async def run(i: int, text: Text) -> None:
            nonlocal printed
            async with gate:
                results[i] = await score_one(client, text, args.model, args.per_word)
            progress.advance()
            while printed in results:  # print in input order, as soon as possible
                print(json.dumps(results[printed]), flush=True)
                printed += 1

        await asyncio.gather(*(run(i, text) for i, text in enumerate(texts)))
    labelled = [r for r in results.values() if "gold" in r]
    if labelled:
        gold = [r["gold"] for r in labelled]
        predicted = [r["label"] for r in labelled]
        accuracy = sum(g == p for g, p in zip(gold, predicted)) / len(gold)
        print(
            json.dumps(
                {
                    "summary": True,
                    "accuracy": round(accuracy, 4),
                    "n": len(gold),
                    "macro_f1": round(macro_f1(gold, predicted), 4),
                }
            )
        )
    return 0
