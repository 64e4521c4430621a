"""``wordstream score``: many texts, each streamed word by word as its own session, in flight at once."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from wordstream.client import errors
from wordstream.client._async import AsyncClient
from wordstream.client.multiplex import Multiplexer
from wordstream.client.types import WordResult
from wordstream.shared import ProgressBar, file_format, macro_f1, rows


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
        fmt = file_format(name)
    if fmt == "lines":
        return [Text(i, line.strip(), None) for i, line in enumerate(content.splitlines(), 1) if line.strip()]
    texts = []
    for line, row in rows(content, fmt):
        if isinstance(row, str):
            raise errors.InvalidRequest(f"{name}:{line}: {row}")
        texts.append(_row(row, name, line, text_column, label_column))
    return texts


def _row(row: Any, name: str, line: int, text_column: str, label_column: str) -> Text:
    if not isinstance(row, dict) or row.get(text_column) is None:
        raise errors.InvalidRequest(f"{name}:{line}: missing column {text_column!r}")
    label = row.get(label_column)
    return Text(line, str(row[text_column]), None if label in (None, "") else str(label))


class Typist(Protocol):
    """One session's way of taking words: its own stream, or an entry on a Multiplex stream."""

    async def push(self, word: str) -> WordResult: ...


async def score_one(client: AsyncClient, text: Text, model: str, per_word: bool) -> dict[str, Any]:
    async with client.session(model=model, history="none") as session:
        return await score_words(session, text, per_word)


async def score_multiplexed(mux: Multiplexer, text: Text, model: str, per_word: bool) -> dict[str, Any]:
    """score_one on a shared Multiplex stream: the words of all texts in flight leave together."""
    session_id = await mux.open(model=model, history="none")
    try:
        return await score_words(_OnStream(mux, session_id), text, per_word)
    finally:
        await mux.close(session_id)


class _OnStream:
    def __init__(self, mux: Multiplexer, session_id: str) -> None:
        self.mux, self.session_id = mux, session_id

    async def push(self, word: str) -> WordResult:
        return await self.mux.push(self.session_id, word)


async def score_words(session: Typist, text: Text, per_word: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {"line": text.line, "text": text.text}
    if text.label is not None:
        entry["gold"] = text.label
    trajectory, skipped, last = [], [], None
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


async def score_texts(server: str, connection: dict[str, Any], texts: list[Text], args: argparse.Namespace) -> int:
    if args.concurrency < 1:
        raise errors.InvalidRequest(f"--concurrency must be at least 1, got {args.concurrency}")
    progress = ProgressBar(len(texts), "texts", enabled=not args.no_progress and len(texts) >= 50)
    results: dict[int, dict[str, Any]] = {}
    printed = 0
    async with AsyncClient(server, **connection) as client, client.multiplexer() as mux:
        gate = asyncio.Semaphore(args.concurrency)

        async def run(i: int, text: Text) -> None:
            nonlocal printed
            async with gate:
                if args.multiplex:
                    results[i] = await score_multiplexed(mux, text, args.model, args.per_word)
                else:
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
        # Every label the model has (a text's probabilities name them all), as export.evaluate counts.
        labels = next((list(r["probabilities"]) for r in results.values() if r["probabilities"]), sorted(set(gold)))
        accuracy = sum(g == p for g, p in zip(gold, predicted)) / len(gold)
        print(
            json.dumps(
                {
                    "summary": True,
                    "accuracy": round(accuracy, 4),
                    "n": len(gold),
                    "macro_f1": round(macro_f1(gold, predicted, labels), 4),
                }
            )
        )
    return 0
