"""Live sessions to disk on shutdown and back on start, so a rolling restart loses nothing.

The file (``<state_dir>/sessions.wss``, mode 0600) holds only JSON and raw little-endian
arrays; nothing in it is ever executed or unpickled. It is a magic number and a list of
records, each with its own integrity checksum, so one damaged byte costs one session,
not all of them:

    8 bytes   magic b"WSSTATE\\x03"
    records, each:
        4 bytes   header length h (unsigned, little-endian)
        8 bytes   payload length p (unsigned, little-endian)
        h bytes   header, UTF-8 JSON
        p bytes   payload
        32 bytes  SHA-256 of the 12 length bytes, the header and the payload

The first record's header is the file's: ``{"format", "version", "saved_at"}``; then one
record per session, its header ``{"id", "model", "fingerprint", "mode", "owner",
"idle_seconds", "words": [bytes of each word's record]}`` and its payload those word
records one after another, in history.py's format (the one Redis keeps too); the last
record's header is ``{"end": <number of sessions>}``, so a file cut short is noticed.
The checksums detect damage (a torn write, a flipped bit); they are not authentication: anyone
who can write the state directory can write a valid file, so the directory must be as private
as the server's own files.

Reading checks everything. A file whose magic, first record or version is wrong is refused
as a whole; a session record that fails its checksum or any check of its content is
skipped with a log line saying why, and the others are restored. Either way a file that
was not read cleanly is renamed ``*.rejected`` and kept for a person to look at, and the
server starts. A session whose model is gone or changed is skipped too. No grpc here.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from wordstream.modelfile import StepModel
from wordstream.server.errors import short_id
from wordstream.server.history import HistoryMode
from wordstream.server.sessions import SessionRecord
from wordstream.server.store import SessionStore

log = logging.getLogger("wordstream.persistence")

MAGIC = b"WSSTATE\x03"
FORMAT = "wordstream.sessions"
VERSION = 3
FILE_NAME = "sessions.wss"
MAX_HEADER_BYTES = 64 * 2**20  # a session's record lengths as JSON; far above any limit the server allows
_LENGTHS = 12


class StateFileError(Exception):
    """A state file (or one record of it) is corrupt, foreign or of another version; the message says why."""


def save(store: SessionStore, directory: Path) -> Path:
    """Write every live session to ``directory``/sessions.wss (atomically, mode 0600); returns the path.

    Each session's word records go to the file as they are made, while the checksum is computed."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / FILE_NAME
    temporary = path.with_suffix(".tmp")
    now = store.clock()
    sessions = store.sessions()
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode otherwise
    with os.fdopen(fd, "wb") as f:
        f.write(MAGIC)
        write_record(f, {"format": FORMAT, "version": VERSION, "saved_at": time.time()}, [])
        for session in sessions:
            records = session.records()
            header = {
                "id": session.id,
                "model": session.model.name,
                "fingerprint": session.model.fingerprint,
                "mode": session.mode.value,
                "owner": session.owner,
                "idle_seconds": max(0.0, now - session.last_active),
                "words": [len(r) for r in records],
            }
            write_record(f, header, records)
        write_record(f, {"end": len(sessions)}, [])
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)
    return path


def write_record(f: IO[bytes], header: dict[str, Any], payload: list[bytes]) -> None:
    raw = json.dumps(header).encode()
    digest = hashlib.sha256()
    lengths = len(raw).to_bytes(4, "little") + sum(len(p) for p in payload).to_bytes(8, "little")
    for piece in (lengths, raw, *payload):
        digest.update(piece)
        f.write(piece)
    f.write(digest.digest())


def _records(f: IO[bytes], size: int) -> Iterator[tuple[dict[str, Any] | None, bytes, str]]:
    """(header, payload, fault) for each record; a record that fails its checks comes with header None
    and the fault. Stops at the end of the file or where the records can no longer be told apart."""
    while f.tell() < size:
        lengths = f.read(_LENGTHS)
        if len(lengths) < _LENGTHS:
            yield None, b"", "the file ends inside a record (truncated)"
            return
        header_size, payload_size = int.from_bytes(lengths[:4], "little"), int.from_bytes(lengths[4:], "little")
        if header_size > MAX_HEADER_BYTES or f.tell() + header_size + payload_size + 32 > size:
            # A damaged length: what follows cannot be framed. The records before it stand.
            yield None, b"", "a record's length runs past the end of the file (truncated or corrupt)"
            return
        raw, payload, digest = f.read(header_size), f.read(payload_size), f.read(32)
        if hashlib.sha256(lengths + raw + payload).digest() != digest:
            yield None, b"", "checksum mismatch (the record is corrupt)"
            continue
        try:
            header = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            yield None, b"", f"header is not JSON ({e})"
            continue
        if not isinstance(header, dict):
            yield None, b"", "header is not a JSON object"
            continue
        yield header, payload, ""


def read(path: Path) -> tuple[list[SessionRecord], list[str]]:
    """The sessions of a state file and the faults of the records that were skipped.

    StateFileError when the file as a whole cannot be used (magic, first record, version)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        if f.read(len(MAGIC)) != MAGIC:
            raise StateFileError(f"{path}: not a Wordstream state file (bad magic bytes)")
        records = _records(f, size)
        first, _, fault = next(records, (None, b"", "no file record"))
        if first is None:
            raise StateFileError(f"{path}: the file record is unreadable: {fault}")
        if first.get("format") != FORMAT:
            raise StateFileError(f"{path}: not a Wordstream sessions file (format {first.get('format')!r})")
        if first.get("version") != VERSION:
            version = first.get("version")
            raise StateFileError(f"{path}: version {version!r} is not supported (this server reads {VERSION})")
        sessions: list[SessionRecord] = []
        faults: list[str] = []
        ended = False
        for number, (header, payload, fault) in enumerate(records, start=1):
            if ended:
                faults.append(f"record {number}: data after the end record")
                break
            if header is None:
                faults.append(f"record {number}: {fault}")
                continue
            if "end" in header:
                ended = True
                if header["end"] != number - 1:
                    faults.append(f"the end record counts {header['end']!r} sessions, the file has {number - 1}")
                continue
            try:
                sessions.append(_saved(header, payload))
            except StateFileError as e:
                faults.append(f"record {number} (session {short_id(str(header.get('id', '?')))}): {e}")
        if not ended:
            faults.append("no end record (the file is truncated)")
    return sessions, faults


def _saved(header: dict[str, Any], payload: bytes) -> SessionRecord:
    """One session record, every field checked; StateFileError names the first that is wrong."""

    def field(name: str, kind: type | tuple[type, ...]) -> Any:
        value = header.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise StateFileError(f"field {name!r} is missing or not a {getattr(kind, '__name__', kind)}")
        return value

    session_id, model, fingerprint = field("id", str), field("model", str), field("fingerprint", str)
    if not session_id:
        raise StateFileError("field 'id' is empty")
    try:
        mode = HistoryMode(header.get("mode"))
    except ValueError:
        raise StateFileError(f"field 'mode' is not a history mode: {header.get('mode')!r}") from None
    owner = header.get("owner")
    if owner is not None and not isinstance(owner, str):
        raise StateFileError("field 'owner' must be a string or null")
    idle = field("idle_seconds", (int, float))
    if not math.isfinite(idle) or idle < 0:  # a negative idle time would put the last request in the future
        raise StateFileError(f"field 'idle_seconds' must be a finite number of at least 0, got {idle!r}")
    sizes = field("words", list)
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in sizes):
        raise StateFileError("field 'words' must be a list of record sizes")
    if sum(sizes) != len(payload):
        raise StateFileError(f"the word records take {sum(sizes)} bytes, the record's payload is {len(payload)}")
    ends = list(itertools.accumulate(sizes))
    records = [payload[end - size : end] for size, end in zip(sizes, ends)]
    return SessionRecord(session_id, model, fingerprint, mode, owner, float(idle), records)


def load(store: SessionStore, models: Mapping[str, StepModel], directory: Path) -> int:
    """Restore the sessions saved in ``directory``; returns how many. A file read cleanly is removed
    once read, so a later crash does not bring back stale sessions; one with any fault is renamed
    *.rejected. Never raises for the file's content: the server starts either way."""
    path = directory / FILE_NAME
    if not path.exists():
        return 0
    try:
        sessions, faults = read(path)
    except (StateFileError, OSError) as e:
        _set_aside(path, [str(e)], whole=True)
        return 0
    restored = 0
    for saved in sessions:
        if store.has(saved.id):
            faults.append(f"session {short_id(saved.id)}: saved twice; the first record is kept")
            continue
        model = models.get(saved.model)
        if model is None or model.fingerprint != saved.fingerprint:
            log.warning(
                "session not restored: its model is gone or changed",
                extra={"event": "restore_skipped", "session": saved.id, "model": saved.model},
            )
            continue
        try:
            store.restore(saved, model)
        except (ValueError, IndexError, TypeError) as e:
            faults.append(f"session {short_id(saved.id)}: its data does not fit its model ({e})")
            continue
        restored += 1
    if faults:
        _set_aside(path, faults, whole=False)
    else:
        path.unlink()
    log.info("sessions restored", extra={"event": "restore", "sessions": restored, "file": str(path)})
    return restored


def _set_aside(path: Path, faults: list[str], whole: bool) -> None:
    rejected = path.with_suffix(f".{int(time.time())}.rejected")
    os.replace(path, rejected)
    message = f"{path}: " + "; ".join(faults[:10]) + (f" (and {len(faults) - 10} more)" if len(faults) > 10 else "")
    log.error(
        "state file refused" if whole else "state file read with faults: some sessions were not restored",
        extra={"event": "state_refused" if whole else "state_faults", "error": message, "kept": str(rejected)},
    )
