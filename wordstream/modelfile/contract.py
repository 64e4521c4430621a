"""The model file's contract, in one place: names, metadata keys and the format version.

docs/MODEL-FORMAT.md describes it for people; this module is what export writes against and
what the server and evaluation check on load. No torch, no grpc.
"""

from __future__ import annotations

from typing import Any

FORMAT = "wordstream.step-model"
VERSION = 1
FORMAT_ID = f"{FORMAT}/{VERSION}"  # the value of the "format" metadata key

TOKEN_IDS = "token_ids"  # input: int64 [batch]
PROBS = "probs"  # output: float32 [batch, labels]
STATE_IN = "state_in."  # input prefix: float32 [layers, batch, hidden], one per state tensor
STATE_OUT = "state_out."  # output prefix: one for every state_in.<name>

REQUIRED_METADATA = ("format", "labels", "vocabulary", "tokenizer", "model")
DOCS = "docs/MODEL-FORMAT.md"


class ModelError(Exception):
    """A model file breaks the step-model contract; the message names the file and the fault."""


def state_in(name: str) -> str:
    return STATE_IN + name


def state_out(name: str) -> str:
    return STATE_OUT + name


def check_format(path: object, metadata: dict[str, Any]) -> None:
    """Refuse a file of another format or of a version this code does not read."""
    found = metadata.get("format")
    if not isinstance(found, str) or not found.startswith(FORMAT + "/"):
        raise ModelError(f"{path}: not a {FORMAT} file (format {found!r}; see {DOCS})")
    version = found.removeprefix(FORMAT + "/")
    if version != str(VERSION):
        raise ModelError(f"{path}: {FORMAT} version {version} is not supported (this code reads version {VERSION})")
