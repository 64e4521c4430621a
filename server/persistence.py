"""Live sessions to disk on shutdown and back on start, so a rolling restart loses nothing.

The file (``<state_dir>/sessions.wss``) is versioned and checksummed, and holds only JSON
and raw little-endian arrays; nothing in it is ever executed or unpickled:

    8 bytes   magic b"WSSTATE\\x01"
    8 bytes   header length n (unsigned, little-endian)
    n bytes   header, UTF-8 JSON: {"format", "version", "saved_at", "sessions": [...]}
    ...       the arrays, one after another, at the offsets the header gives
    32 bytes  SHA-256 of everything before it

A file that fails any check (magic, checksum, version, JSON, bounds) is refused as a
whole with a message saying why, and renamed ``*.rejected`` so it is kept for a person
to look at. A session whose model is gone or changed is skipped with a log line; the
others are restored. No grpc here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from server.errors import short_id
from server.inference import StepModel
from server.sessions import HistoryMode, SessionStore

log = logging.getLogger("wordstream.persistence")

MAGIC = b"WSSTATE\x01"
FORMAT = "wordstream.sessions"
VERSION = 1
FILE_NAME = "sessions.wss"


class StateFileError(Exception):
    """A state file is corrupt, foreign or of another version; the message says which check failed."""


def save(store: SessionStore, directory: Path) -> Path:
    """Write every live session to ``directory``/sessions.wss (atomically); returns the path."""
    directory.mkdir(parents=True, exist_ok=True)
    now = store.clock()
    entries, blobs, offset = [], [], 0
    for session in store.sessions():
        history = session.history
        arrays = {
            "token_ids": history.token_ids[: history.length],
            "word_index": history.word_index[: history.length],
            "probs": history.probs[: history.length],
            **{f"state.{n}": a[: history.length] for n, a in history.states.items()},
        }
        layout = {}
        for name, array in arrays.items():
            data = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
            layout[name] = {"offset": offset, "dtype": array.dtype.str.replace(">", "<"), "shape": list(array.shape)}
            blobs.append(data)
            offset += len(data)
        entries.append(
            {
                "id": session.id,
                "model": session.model.name,
                "fingerprint": session.model.fingerprint,
                "mode": session.mode.value,
                "owner": session.owner,
                "idle_seconds": max(0.0, now - session.last_active),
                "words": session.words,
                "word_starts": session.word_starts,
                "tokens": history.tokens,
                "arrays": layout,
            }
        )
    header = json.dumps({"format": FORMAT, "version": VERSION, "saved_at": time.time(), "sessions": entries}).encode()
    body = MAGIC + len(header).to_bytes(8, "little") + header + b"".join(blobs)
    path = directory / FILE_NAME
    temporary = path.with_suffix(".tmp")
    with open(temporary, "wb") as f:
        f.write(body + hashlib.sha256(body).digest())
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)
    return path


def read(path: Path) -> dict[str, Any]:
    """The header and the arrays of a state file, after every check; StateFileError says what failed."""
    data = path.read_bytes()
    if len(data) < len(MAGIC) + 8 + 32 or not data.startswith(MAGIC):
        raise StateFileError(f"{path}: not a Wordstream state file (bad magic bytes)")
    body, digest = data[:-32], data[-32:]
    if hashlib.sha256(body).digest() != digest:
        raise StateFileError(f"{path}: checksum mismatch (the file is truncated or corrupt)")
    size = int.from_bytes(body[8:16], "little")
    if 16 + size > len(body):
        raise StateFileError(f"{path}: header length {size} runs past the end of the file")
    try:
        header = json.loads(body[16 : 16 + size])
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise StateFileError(f"{path}: header is not JSON ({e})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise StateFileError(f"{path}: not a Wordstream sessions file (format {header.get('format')!r})")
    if header.get("version") != VERSION:
        raise StateFileError(f"{path}: version {header.get('version')} is not supported (this server reads {VERSION})")
    blob = memoryview(body)[16 + size :]
    for entry in header["sessions"]:
        for name, spec in entry["arrays"].items():
            dtype = np.dtype(spec["dtype"])
            if dtype.kind not in "iuf":
                raise StateFileError(f"{path}: array {name} has a non-numeric dtype {spec['dtype']!r}")
            count = int(np.prod(spec["shape"])) if spec["shape"] else 1
            end = spec["offset"] + count * dtype.itemsize
            if spec["offset"] < 0 or end > len(blob):
                raise StateFileError(f"{path}: array {name} of session {short_id(entry['id'])} runs past the end")
            spec["array"] = np.frombuffer(blob[spec["offset"] : end], dtype).reshape(spec["shape"]).copy()
    return header


def load(store: SessionStore, models: dict[str, StepModel], directory: Path) -> int:
    """Restore the sessions saved in ``directory``; returns how many. The file is removed once read,
    so a later crash does not bring back stale sessions; a refused file is renamed *.rejected."""
    path = directory / FILE_NAME
    if not path.exists():
        return 0
    try:
        header = read(path)
    except (StateFileError, KeyError, TypeError, ValueError) as e:
        rejected = path.with_suffix(f".{int(time.time())}.rejected")
        os.replace(path, rejected)
        message = str(e) if isinstance(e, StateFileError) else f"{path}: malformed session entry ({e!r})"
        log.error("state file refused", extra={"event": "state_refused", "error": message, "kept": str(rejected)})
        return 0
    restored = 0
    now = store.clock()
    for entry in header["sessions"]:
        model = models.get(entry["model"])
        if model is None or model.fingerprint != entry["fingerprint"]:
            log.warning(
                "session not restored: its model is gone or changed",
                extra={"event": "restore_skipped", "session": entry["id"], "model": entry["model"]},
            )
            continue
        arrays = {name: spec["array"] for name, spec in entry["arrays"].items()}
        try:
            store.restore(
                entry["id"],
                model,
                HistoryMode(entry["mode"]),
                now - entry["idle_seconds"],
                entry.get("owner"),
                entry["words"],
                entry["word_starts"],
                entry["tokens"],
                arrays,
            )
        except (ValueError, IndexError, TypeError) as e:
            log.warning(
                "session not restored: its data does not fit its model",
                extra={"event": "restore_skipped", "session": entry["id"], "error": str(e)},
            )
            continue
        restored += 1
    path.unlink()
    log.info("sessions restored", extra={"event": "restore", "sessions": restored, "file": str(path)})
    return restored
