"""Small helpers the client, export and the server share, so that their rules cannot drift apart.

No dependencies beyond the standard library. (The rest of ``wordstream/`` is generated from
the proto; this module is written by hand.)
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import secrets
import sys
import time
from collections.abc import Iterator, Sequence
from typing import TextIO

TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")
FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}


def parse_bool(value: str) -> bool:
    """A flag's or an environment variable's true/false; ValueError names what was given."""
    if value.strip().lower() in TRUE:
        return True
    if value.strip().lower() in FALSE:
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def macro_f1(gold: Sequence[object], predicted: Sequence[object], labels: Sequence[object]) -> float:
    """The mean over ``labels`` (every class the model has, not only those in ``gold``) of each
    class's F1; a class with no true positive scores 0. A prediction of None is wrong for every class."""
    scores = []
    for label in labels:
        tp = sum(g == p == label for g, p in zip(gold, predicted))
        fp = sum(p == label != g for g, p in zip(gold, predicted))
        fn = sum(g == label != p for g, p in zip(gold, predicted))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores) if scores else 0.0


def file_format(name: str) -> str:
    """csv, tsv or jsonl by the file name's extension; "lines" (one text per line) otherwise."""
    suffix = name[name.rfind(".") :].lower() if "." in name else ""
    return FORMATS.get(suffix, "lines")


def rows(content: str, fmt: str) -> Iterator[tuple[int, dict[str, object] | str]]:
    """(line number, row) for each record of a CSV, TSV or JSON Lines text; a record that cannot
    be read comes as a string saying why, so the caller decides whether to skip or to stop."""
    if fmt == "jsonl":
        for line_no, line in enumerate(content.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                yield line_no, f"not valid JSON ({e.msg})"
                continue
            yield line_no, row if isinstance(row, dict) else "a JSON line must be an object"
    elif fmt in ("csv", "tsv"):
        reader = csv.DictReader(io.StringIO(content, newline=""), delimiter="," if fmt == "csv" else "\t")
        if reader.fieldnames is None:
            return
        for row in reader:
            if None in row:  # more cells than the header has
                yield reader.line_num, f"more cells than the header's {len(reader.fieldnames)}"
            else:
                yield reader.line_num, dict(row)
    else:
        raise ValueError(f"unknown file format {fmt!r} (use csv, tsv or jsonl)")


class ProgressBar:
    """A one-line progress bar on standard error: done/total, the rate, and a note of the caller's."""

    def __init__(self, total: int, unit: str, prefix: str = "", enabled: bool = True, stream: TextIO | None = None):
        self.total, self.unit, self.prefix, self.enabled = total, unit, prefix, enabled
        self.stream = stream or sys.stderr
        self.done = 0
        self.start = self.drawn = time.monotonic()

    def advance(self, n: int = 1, note: str = "") -> None:
        self.done += n
        now = time.monotonic()
        finished = self.done >= self.total
        if not self.enabled or (now - self.drawn < 0.2 and not finished):
            return
        self.drawn = now
        filled = int(20 * min(self.done, self.total) / max(self.total, 1))
        rate = self.done / max(now - self.start, 1e-9)
        print(
            f"\r{self.prefix}[{'#' * filled}{'.' * (20 - filled)}] {self.done}/{self.total}"
            f"{' ' + note if note else ''} {rate:.0f} {self.unit}/s",
            end="\n" if finished else "",
            file=self.stream,
            flush=True,
        )


def words_sha256(words: Sequence[str]) -> str:
    """The digest of a session's words that the proto defines (Opened.words_sha256): lowercase hex
    SHA-256 of their UTF-8 bytes joined by newlines. Server and clients compute it alike."""
    return hashlib.sha256("\n".join(words).encode()).hexdigest()


def new_session_id() -> str:
    """A fresh session id: 192 random bits, URL-safe base64 (32 characters), never beginning with
    '-', so that it can follow a command on a command line (``history ID``) without being read as
    an option. (That rule costs less than 0.03 bits.)"""
    while True:
        session_id = secrets.token_urlsafe(24)
        if not session_id.startswith("-"):
            return session_id
