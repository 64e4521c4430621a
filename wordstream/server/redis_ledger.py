"""The Redis ledger (``--state-store``): every word is written through before it is answered.

With it, the replica's sessions in memory are a working copy; Redis holds the truth, so any
replica can carry on a session whose replica died. Per session (the ``{id}``
hash tag keeps both keys in one Redis Cluster slot):

    ws:{<id>}:meta    hash: epoch, model, fingerprint, mode, owner, attached
    ws:{<id>}:words   list: one record per word, in order

Both keys expire ``idle_timeout`` seconds after the last write, detach, or refresh (the
reaper refreshes the sessions attached here), like a session in memory.

Each word is one record of history.py's format (JSON and raw little-endian float32).

Fencing (ledger.py): a resume anywhere takes ownership by incrementing the epoch, atomically,
and every write names the epoch it holds and the number of words it believes the store has.
A write with another epoch, or onto another count, is refused by Redis itself (the scripts
below run atomically), so a replica that lost ownership can never write again; it drops its
copy and the client resumes.

Group commit: writes go through one queue; all writes waiting when a round trip starts go in
one call of one script, so the words of one micro-batch of model calls cost one round trip and
one command between them (one script call over many sessions' keys: on Redis Cluster, the
writes would be grouped per slot; this store is one Redis).

Errors: the store unreachable -> StoreUnavailable; fenced or diverged -> SessionMoved; the
session expired or closed in the store -> SessionNotFound. redis-py's own retries are off: a
write retried after a timeout could land twice. No grpc here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from wordstream.modelfile import StepModel
from wordstream.server.errors import (
    NotOwner,
    SessionExists,
    SessionMoved,
    SessionNotFound,
    StoreUnavailable,
    short_id,
)
from wordstream.server.history import HistoryMode
from wordstream.server.ledger import FIRST_EPOCH, Claim
from wordstream.server.sessions import Session, SessionRecord
from wordstream.server.store import SessionStore

log = logging.getLogger("wordstream.ledger")

# KEYS: meta, words. ARGV: ttl ms, model, fingerprint, mode, owner, epoch.
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[1], 'epoch', ARGV[6], 'model', ARGV[2], 'fingerprint', ARGV[3], 'mode', ARGV[4],
           'owner', ARGV[5], 'attached', '1')
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""

# The group commit: every waiting write in one call. KEYS: meta and words of each write, in
# pairs. ARGV: ttl ms, then per write: the epoch it holds, the words it believes the store has,
# the words to keep (-1: all), n, then its n records. Per write, the store's new count of words,
# or why it was refused (GONE, FENCED, DIVERGED), and nothing of it written.
_WRITE = """
local ttl, a, out = ARGV[1], 2, {}
for k = 1, #KEYS, 2 do
  local meta, words = KEYS[k], KEYS[k + 1]
  local epoch, before, keep, n = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local first = a + 4
  a = first + n
  local held = redis.call('HGET', meta, 'epoch')
  if not held then
    out[#out + 1] = 'GONE the session is not in the store'
  elseif held ~= epoch then
    out[#out + 1] = 'FENCED epoch ' .. held .. ' is held elsewhere'
  elseif redis.call('LLEN', words) ~= before then
    out[#out + 1] = 'DIVERGED the store has another count of words'
  else
    if keep == 0 then redis.call('DEL', words) elseif keep > 0 then redis.call('LTRIM', words, 0, keep - 1) end
    for i = first, a - 1 do redis.call('RPUSH', words, ARGV[i]) end
    redis.call('PEXPIRE', meta, ttl)
    redis.call('PEXPIRE', words, ttl)
    out[#out + 1] = redis.call('LLEN', words)
  end
end
return out
"""

# KEYS: meta, words. ARGV: ttl ms, owner, epoch the reader holds ('' for none), '1' to take
# ownership or '0' to only read. Returns epoch, model, fingerprint, mode, attached, ms to live,
# 1 if the reader's copy is current (the records are then left out), the records.
_TAKE = """
local meta = redis.call('HMGET', KEYS[1], 'epoch', 'model', 'fingerprint', 'mode', 'owner', 'attached')
if not meta[1] then return redis.error_reply('GONE the session is not in the store') end
if meta[5] ~= ARGV[2] then return redis.error_reply('NOTOWNER') end
local current = meta[1] == ARGV[3]
local epoch, attached = meta[1], meta[6]
if ARGV[4] == '1' then
  epoch = tostring(redis.call('HINCRBY', KEYS[1], 'epoch', 1))
  attached = '1'
  redis.call('HSET', KEYS[1], 'attached', '1')
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  redis.call('PEXPIRE', KEYS[2], ARGV[1])
end
local records = {}
if not current then records = redis.call('LRANGE', KEYS[2], 0, -1) end
return {epoch, meta[2], meta[3], meta[4], attached, redis.call('PTTL', KEYS[1]), current and 1 or 0, records}
"""

# KEYS: meta, words. ARGV: owner. 1 deleted, 0 not there, -1 another owner's.
_DELETE = """
local owner = redis.call('HGET', KEYS[1], 'owner')
if not owner then return 0 end
if owner ~= ARGV[1] then return -1 end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
"""

# KEYS: meta, words. ARGV: epoch held, ttl ms. Marks the session detached (if still ours).
_DETACH = """
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'attached', '0')
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
"""


def keys(session_id: str) -> list[str]:
    return [f"ws:{{{session_id}}}:meta", f"ws:{{{session_id}}}:words"]


class RedisLedger:
    """Sessions in one Redis (redis:// or unix:// URL): create, take over, write (group-committed),
    read, delete."""

    watched = True

    def __init__(self, url: str, ttl: float, timeout: float = 2.0) -> None:
        self.description = _without_password(url)  # checked by Settings
        self.ttl_ms = str(max(1, int(ttl * 1000)))
        self.redis: redis.Redis = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),  # a write retried after a timeout could land twice
        )
        self._queue: list[tuple[list[str], list[Any], asyncio.Future[Any]]] = []
        self._flushing = False
        self._write_sha: str | None = None
        self._flusher: asyncio.Task[None] | None = None

    async def start(self, store: SessionStore, models: Mapping[str, StepModel]) -> None:
        if not await self.healthy():
            log.warning("state store unreachable at start", extra={"event": "store_down", "store": self.description})

    async def stop(self, store: SessionStore) -> None:
        await self.redis.aclose()

    async def healthy(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except (RedisError, OSError):
            return False

    async def _call(self, script: str, session_id: str, *args: Any) -> Any:
        try:
            return await self.redis.eval(script, 2, *keys(session_id), *args)
        except ResponseError as e:
            raise _refusal(str(e), session_id) from None
        except (RedisConnectionError, RedisTimeoutError, OSError) as e:
            raise StoreUnavailable(str(e)) from None

    async def create(self, session: Session) -> None:
        created = await self._call(
            _CREATE,
            session.id,
            self.ttl_ms,
            session.model.name,
            session.model.fingerprint,
            session.mode.value,
            session.owner or "",
            session.epoch or FIRST_EPOCH,
        )
        if not created:
            raise SessionExists(session.id)

    async def take(self, session_id: str, owner: str | None, held: str | None) -> Claim:
        return await self._claim(session_id, owner, held, take=True)

    async def look(self, session_id: str, owner: str | None, held: str | None) -> Claim:
        return await self._claim(session_id, owner, held, take=False)

    async def _claim(self, session_id: str, owner: str | None, held: str | None, take: bool) -> Claim:
        """The session as stored; ``take`` takes ownership (a new epoch). Its records are read only
        when ``held`` (the epoch of the caller's copy) is not the current one."""
        reply = await self._call(_TAKE, session_id, self.ttl_ms, owner or "", held or "", "1" if take else "0")
        epoch, model, fingerprint, mode, attached, ttl_ms, current, records = reply
        if current and held is not None:
            return Claim(epoch.decode(), None)
        idle = max(0.0, (int(self.ttl_ms) - max(0, int(ttl_ms))) / 1000)
        record = SessionRecord(
            session_id,
            model.decode(),
            fingerprint.decode(),
            HistoryMode(mode.decode()),
            owner,
            idle,
            list(records),
            attached == b"1",
        )
        return Claim(epoch.decode(), record)

    async def append(self, session: Session, before: int) -> None:
        await self._write(session, before, -1, session.records(before))

    async def truncate(self, session: Session, before: int) -> None:
        await self._write(session, before, len(session.words), [])

    async def _write(self, session: Session, before: int, keep: int, records: list[bytes]) -> None:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((keys(session.id), [session.epoch, before, keep, len(records), *records], future))
        if not self._flushing:
            self._flushing = True
            self._flusher = asyncio.create_task(self._flush())  # starts after the writes ready in this round
        result = await future
        if isinstance(result, bytes):
            raise _refusal(result.decode(), session.id)
        if isinstance(result, BaseException):
            raise StoreUnavailable(str(result))
        if int(result) != len(session.words):
            raise SessionMoved(session.id, f"the store has {result} words, this replica {len(session.words)}")

    async def _flush(self) -> None:
        """Send every waiting write in one call; repeat while more arrived meanwhile."""
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                try:
                    results = await self._write_all([k for pair, _, _ in batch for k in pair], [a for _, a, _ in batch])
                except (RedisError, OSError) as e:
                    results = [e] * len(batch)
                for (_, _, future), result in zip(batch, results):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._flushing = False

    async def _write_all(self, all_keys: list[str], writes: list[list[Any]]) -> list[Any]:
        """One call of the write script, by its SHA-1 (a restarted Redis has forgotten the script:
        NOSCRIPT means nothing ran, so it is loaded and the call sent again)."""
        args = [self.ttl_ms, *(arg for write in writes for arg in write)]
        for attempt in (1, 2):
            if self._write_sha is None:
                self._write_sha = await self.redis.script_load(_WRITE)
            try:
                return list(await self.redis.evalsha(self._write_sha, len(all_keys), *all_keys, *args))
            except NoScriptError:
                self._write_sha = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def delete(self, session_id: str, owner: str | None) -> None:
        """Remove a session from the store (CloseSession on any replica)."""
        deleted = await self._call(_DELETE, session_id, owner or "")
        if deleted == 0:
            raise SessionNotFound(session_id)
        if deleted == -1:
            raise NotOwner(session_id)

    async def detach(self, session: Session) -> None:
        """Mark a session detached, if this replica still holds it; the store's errors are only logged."""
        try:
            await self._call(_DETACH, session.id, session.epoch, self.ttl_ms)
        except (StoreUnavailable, SessionMoved, SessionNotFound) as e:
            log.info("detach not recorded", extra={"event": "detach_unrecorded", "session": session.id, "why": str(e)})

    async def refresh(self, sessions: list[Session]) -> None:
        if not sessions:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for session in sessions:
                for key in keys(session.id):
                    pipe.pexpire(key, int(self.ttl_ms))
            await pipe.execute(raise_on_error=False)


def _refusal(text: str, session_id: str) -> Exception:
    if text.startswith("GONE"):
        return SessionNotFound(session_id)
    if text.startswith("NOTOWNER"):
        return NotOwner(session_id)
    if text.startswith(("FENCED", "DIVERGED")):
        return SessionMoved(session_id, text.split(" ", 1)[1] if " " in text else text)
    log.error("the store refused a script", extra={"event": "store_error", "session": short_id(session_id)})
    return StoreUnavailable(text)


def _without_password(url: str) -> str:
    """The URL as the logs may show it."""
    scheme, sep, rest = url.partition("://")
    credentials, at, place = rest.rpartition("@")
    return f"{scheme}{sep}{'***@' if at else ''}{place}" if sep else url
