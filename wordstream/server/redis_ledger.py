"""The Redis ledger (``--state-store redis://`` or ``unix://``): every word is written through
before it is answered.

With it, the replica's sessions in memory are a working copy; Redis holds the truth, so any
replica can carry on a session whose replica died. Per session (the ``{id}`` hash tag keeps
both keys in one Redis Cluster slot, cluster_ledger.py):

    ws:{<id>}:meta    hash: epoch, gen, model, fingerprint, mode, owner, attached
    ws:{<id>}:words   list: one record per word, in order (history.py's format)

Both keys expire ``idle_timeout`` seconds after the last write, detach, or refresh (the
reaper refreshes the sessions attached here), like a session in memory.

Fencing (ledger.py): the epoch is a token no two takes share, ``<gen>.<nonce>``: ``gen``
counts the takes, the nonce is the taker's own random draw, so a take that a failover lost
cannot leave two replicas holding the same epoch; every write moves it on (``:<writes>``), so
a store that lost writes in a failover is noticed at the next one. Every write names the epoch
it holds and the number of words it believes the store has; a write with another epoch, or
onto another count, is refused by Redis itself (the scripts below run atomically), so a
replica that lost ownership, or whose store lost its last writes, never writes on top: it drops
its copy and the client resumes (and re-sends what the store lost).

Unknown outcomes: a call whose connection died, or that met a failover, may or may not have
run. Every call is sent again until ``timeout`` seconds have passed (then StoreUnavailable),
and every script recognises its own landed attempt: a write whose epoch still holds and whose
store count is already the one it would make has landed (only the epoch's holder writes, one
request at a time per session); a create finds its own epoch. So nothing applies twice.

Group commit: writes go through a queue per route (one for a single Redis); all writes
waiting when a round trip starts go out together: here in one call of one script, so the
words of one micro-batch of model calls cost one round trip and one command between them.

Errors: the store unreachable past the timeout -> StoreUnavailable; fenced or diverged ->
SessionMoved; the session expired or closed in the store -> SessionNotFound. No grpc here.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections.abc import Mapping
from typing import Any

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    AuthenticationError,
    ClusterDownError,
    NoScriptError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from wordstream.modelfile import StepModel
from wordstream.server.config import without_password
from wordstream.server.errors import (
    NotOwner,
    SessionExists,
    SessionMoved,
    SessionNotFound,
    StoreUnavailable,
    short_id,
)
from wordstream.server.history import HistoryMode
from wordstream.server.ledger import Claim, LedgerRefused
from wordstream.server.sessions import Session, SessionRecord
from wordstream.server.store import SessionStore

log = logging.getLogger("wordstream.ledger")

# Errors after which a call may or may not have run: sent again until the deadline. (READONLY:
# the node was a primary when routed to and is a replica now; CLUSTERDOWN, TRYAGAIN: a failover
# or a slot move in progress; MASTERDOWN and LOADING are connection errors in redis-py.)
# RedisClusterException: no node of the cluster could be reached (nothing was sent).
UNKNOWN_OUTCOME = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
    ClusterDownError,
    TryAgainError,
    ReadOnlyError,
    RedisClusterException,
)
# Whatever a call to the store can raise (redis-py's cluster client has errors outside RedisError).
STORE_ERRORS = (RedisError, RedisClusterException, OSError)

# KEYS: meta, words. ARGV: ttl ms, model, fingerprint, mode, owner, epoch. 1 created (or this
# very create landed before), 0 the id is in use.
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('HGET', KEYS[1], 'epoch') == ARGV[6] then return 1 end
  return 0
end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[1], 'epoch', ARGV[6], 'gen', '1', 'model', ARGV[2], 'fingerprint', ARGV[3],
           'mode', ARGV[4], 'owner', ARGV[5], 'attached', '1')
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""

# The group commit: waiting writes in one call. KEYS: meta and words of each write, in pairs.
# ARGV: ttl ms, then per write: the epoch it holds, the words it believes the store has, the
# words to keep (-1: all), n, then its n records. Each write that applies moves the epoch on to
# its next (``<base>:<writes>``, next_epoch below): a store that lost a write (a failover) still
# has an earlier epoch, so the next write is refused even where the count of words agrees (after
# a rewind, the same count of other words). Per write, the store's new count of words, LANDED and
# that count when an earlier attempt of it had applied, or why it was refused (GONE, FENCED,
# DIVERGED), and nothing of it written.
_WRITE = """
local ttl, a, out = ARGV[1], 2, {}
for k = 1, #KEYS, 2 do
  local meta, words = KEYS[k], KEYS[k + 1]
  local epoch, before, keep, n = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local first = a + 4
  a = first + n
  local after = (keep >= 0 and keep or before) + n
  local base, writes = string.match(epoch, '^(.*):(%d+)$')
  if not base then base, writes = epoch, 0 end
  local following = base .. ':' .. (tonumber(writes) + 1)
  local held = redis.call('HGET', meta, 'epoch')
  local count = redis.call('LLEN', words)
  if not held then
    out[#out + 1] = 'GONE the session is not in the store'
  elseif held == following and count == after then
    out[#out + 1] = 'LANDED ' .. count  -- an earlier attempt of this very write landed
  elseif held ~= epoch then
    out[#out + 1] = 'FENCED epoch ' .. held .. ' is held, not ' .. epoch
  elseif count ~= before then
    out[#out + 1] = 'DIVERGED the store has ' .. count .. ' words'
  else
    if keep == 0 then redis.call('DEL', words) elseif keep > 0 then redis.call('LTRIM', words, 0, keep - 1) end
    for i = first, a - 1 do redis.call('RPUSH', words, ARGV[i]) end
    redis.call('HSET', meta, 'epoch', following)
    redis.call('PEXPIRE', meta, ttl)
    redis.call('PEXPIRE', words, ttl)
    out[#out + 1] = redis.call('LLEN', words)
  end
end
return out
"""

# KEYS: meta, words. ARGV: ttl ms, owner, epoch the reader holds ('' for none), '1' to take
# ownership or '0' to only read, the taker's nonce. Returns epoch, model, fingerprint, mode,
# attached, ms to live, 1 if the reader's copy is current (the records are then left out), the
# records.
_TAKE = """
local meta = redis.call('HMGET', KEYS[1], 'epoch', 'model', 'fingerprint', 'mode', 'owner', 'attached')
if not meta[1] then return redis.error_reply('GONE the session is not in the store') end
if meta[5] ~= ARGV[2] then return redis.error_reply('NOTOWNER') end
local current = meta[1] == ARGV[3]
local epoch, attached = meta[1], meta[6]
if ARGV[4] == '1' then
  epoch = tostring(redis.call('HINCRBY', KEYS[1], 'gen', 1)) .. '.' .. ARGV[5]
  attached = '1'
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'attached', '1')
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

SCRIPTS = {"create": _CREATE, "write": _WRITE, "take": _TAKE, "delete": _DELETE, "detach": _DETACH}
SHAS = {name: hashlib.sha1(script.encode()).hexdigest() for name, script in SCRIPTS.items()}


def next_epoch(epoch: str) -> str:
    """The epoch a write moves a session on to (the write script computes the same)."""
    base, colon, writes = epoch.rpartition(":")
    if colon and writes.isdigit():
        return f"{base}:{int(writes) + 1}"
    return f"{epoch}:1"


def keys(session_id: str) -> list[str]:
    return [f"ws:{{{session_id}}}:meta", f"ws:{{{session_id}}}:words"]


class _Write:
    """One session's write waiting in a queue: its keys, its arguments and who awaits it."""

    __slots__ = ("keys", "args", "future")

    def __init__(self, session_id: str, args: list[Any]) -> None:
        self.keys, self.args = keys(session_id), args
        self.future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()


class RedisLedger:
    """Sessions in one Redis (redis:// or unix:// URL): create, take over, write (group-committed),
    read, delete. cluster_ledger.py's subclass changes the client and how writes are grouped."""

    watched = True

    def __init__(
        self, url: str, ttl: float, timeout: float = 5.0, password: str | None = None, replicas: int = 0
    ) -> None:
        self.description = without_password(url)  # the URL was checked by Settings
        self.ttl_ms = str(max(1, int(ttl * 1000)))
        self.timeout = timeout  # how long a call with an unknown outcome is sent again
        self.replicas = replicas  # a write is kept once this many replicas of its primary acknowledged it
        # WAIT blocks up to the timeout on the connection that wrote: the socket must outlast it.
        self.redis: Any = self._connect(url, password, timeout + 1 if replicas else min(timeout, 2.0))
        self._queues: dict[str, list[_Write]] = {}
        self._flushers: dict[str, asyncio.Task[None]] = {}

    def _connect(self, url: str, password: str | None, socket_timeout: float) -> Any:
        client = redis.Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            retry=Retry(NoBackoff(), 0),  # calls are sent again by _call, until the deadline
        )
        if password:  # from --state-store-password-file or the environment; a URL's own wins
            client.connection_pool.connection_kwargs.setdefault("password", password)
        return client

    async def start(self, store: SessionStore, models: Mapping[str, StepModel]) -> None:
        """Refuse to start on credentials the store refuses; an unreachable store is only logged
        (health is NOT_SERVING until it answers)."""
        try:
            await self.redis.ping()
        except STORE_ERRORS as e:
            if refused_credentials(e):
                raise self.credentials_refused() from None
            log.warning("state store unreachable at start", extra={"event": "store_down", "store": self.description})
            return
        if self.replicas:
            info = await self.redis.info("replication")
            self._enough_replicas({self.description: int(info.get("connected_slaves", 0))})

    def credentials_refused(self) -> LedgerRefused:
        return LedgerRefused(
            f"the state store at {self.description} refused this server's credentials; check the password "
            "(--state-store-password-file, WORDSTREAM_STATE_STORE_PASSWORD or the URL)"
        )

    def _enough_replicas(self, found: Mapping[str, int]) -> None:
        """Refuse to start where a primary has fewer replicas than --store-replicas asks to wait for."""
        short = {primary: n for primary, n in found.items() if n < self.replicas}
        if short:
            named = ", ".join(f"{p} has {n}" for p, n in sorted(short.items()))
            raise LedgerRefused(
                f"--store-replicas {self.replicas} asks every word to be acknowledged by {self.replicas} "
                f"replica(s), but {named}: add replicas or lower --store-replicas"
            )

    async def stop(self, store: SessionStore) -> None:
        await self.redis.aclose()

    async def healthy(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except STORE_ERRORS:
            return False

    async def _script(self, name: str, script_keys: list[str], args: list[Any]) -> Any:
        """One script call by its SHA-1; a Redis that has not seen the script (restarted, or a
        replica just promoted) says NOSCRIPT and nothing ran, so it is loaded and sent again."""
        try:
            return await self.redis.evalsha(SHAS[name], len(script_keys), *script_keys, *args)
        except NoScriptError:
            await self.redis.script_load(SCRIPTS[name])
            return await self.redis.evalsha(SHAS[name], len(script_keys), *script_keys, *args)

    async def _call(self, name: str, session_id: str, *args: Any) -> Any:
        """A script on one session's keys, sent again while its outcome is unknown (module docstring)."""
        deadline = asyncio.get_running_loop().time() + self.timeout
        attempt = 0
        while True:
            try:
                return await self._script(name, keys(session_id), list(args))
            except UNKNOWN_OUTCOME as e:
                attempt = await self._pause(deadline, attempt, e)
            except ResponseError as e:
                raise _refusal(str(e), session_id) from None

    async def _pause(self, deadline: float, attempt: int, error: BaseException) -> int:
        """Wait before the next attempt (50 ms doubling to 250 ms); StoreUnavailable past the deadline."""
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            raise StoreUnavailable(str(error) or type(error).__name__) from None
        await asyncio.sleep(min(0.05 * 2**attempt, 0.25, left))
        return attempt + 1

    async def create(self, session: Session) -> None:
        created = await self._call(
            "create",
            session.id,
            self.ttl_ms,
            session.model.name,
            session.model.fingerprint,
            session.mode.value,
            session.owner or "",
            session.epoch,
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
        nonce = secrets.token_urlsafe(9)
        reply = await self._call("take", session_id, self.ttl_ms, owner or "", held or "", "1" if take else "0", nonce)
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

    async def append_many(self, writes: list[tuple[Session, int]]) -> list[BaseException | None]:
        """Every write at once: they join the same group commits (one per node)."""
        results = await asyncio.gather(*(self.append(s, before) for s, before in writes), return_exceptions=True)
        return [r if isinstance(r, BaseException) else None for r in results]

    async def truncate(self, session: Session, before: int) -> None:
        await self._write(session, before, len(session.words), [])

    async def _write(self, session: Session, before: int, keep: int, records: list[bytes]) -> None:
        """One write of a session, kept (the session's epoch moves on) or refused with the reason."""
        result = await self._committed(session.id, [session.epoch, before, keep, len(records), *records])
        if isinstance(result, bytes) and result.startswith(b"LANDED "):
            if self.replicas:  # WAIT on this attempt's connection says nothing of the first attempt's write
                raise StoreUnavailable("a write sent again had landed; its replicas' acknowledgement is unknown")
            result = int(result.split()[1])
        if isinstance(result, bytes):
            raise _refusal(result.decode(), session.id)
        if isinstance(result, StoreUnavailable):
            raise result
        if isinstance(result, BaseException):
            raise StoreUnavailable(str(result) or type(result).__name__)
        if int(result) != len(session.words):
            raise SessionMoved(session.id, f"the store has {result} words, this replica {len(session.words)}")
        session.hold(next_epoch(session.epoch))

    async def _committed(self, session_id: str, args: list[Any]) -> Any:
        """Queue a write for the next group commit of its route and await its result, sent again
        while its outcome is unknown, until the timeout."""
        deadline = asyncio.get_running_loop().time() + self.timeout
        attempt = 0
        while True:
            write = _Write(session_id, args)
            route = self._route(session_id)
            self._queues.setdefault(route, []).append(write)
            if route not in self._flushers:  # it starts after the writes ready in this round
                self._flushers[route] = asyncio.create_task(self._flush(route))
            result = await write.future
            if not isinstance(result, UNKNOWN_OUTCOME):
                return result
            attempt = await self._pause(deadline, attempt, result)

    def _route(self, session_id: str) -> str:
        """Which queue a session's writes wait in: one Redis, one queue."""
        return ""

    async def _flush(self, route: str) -> None:
        """Send every write waiting in ``route``'s queue; repeat while more arrived meanwhile."""
        try:
            while self._queues.get(route):
                batch, self._queues[route] = self._queues[route], []
                try:
                    results = await self._send(batch)
                except STORE_ERRORS as e:
                    results = [e] * len(batch)
                for write, result in zip(batch, results):
                    if not write.future.done():
                        write.future.set_result(result)
        finally:
            del self._flushers[route]

    async def _send(self, batch: list[_Write]) -> list[Any]:
        """The group commit: one call of the write script over every write of the batch, and with
        --store-replicas a WAIT in the same pipeline, on the connection that wrote."""
        script_keys = [key for write in batch for key in write.keys]
        args = [self.ttl_ms, *(arg for write in batch for arg in write.args)]
        pipe = self.redis.pipeline(transaction=False)
        pipe.evalsha(SHAS["write"], len(script_keys), *script_keys, *args)
        if self.replicas:
            pipe.execute_command("WAIT", self.replicas, int(self.timeout * 1000))
        replies = await pipe.execute(raise_on_error=False)
        if isinstance(replies[0], NoScriptError):  # a restarted Redis: nothing ran
            await self.redis.script_load(SCRIPTS["write"])
            return [TryAgainError("the write script was loaded again")] * len(batch)
        if isinstance(replies[0], BaseException):
            return [replies[0]] * len(batch)
        return self.acknowledged(list(replies[0]), replies[1] if self.replicas else None)

    def acknowledged(self, results: list[Any], acks: Any) -> list[Any]:
        """The batch's results, each write that applied refused where fewer replicas than
        --store-replicas acknowledged it within the timeout (it is in the primary only)."""
        if acks is None or (isinstance(acks, int) and acks >= self.replicas):
            return results
        why = acks if isinstance(acks, BaseException) else f"{acks} of {self.replicas} replica(s) acknowledged it"
        refused = StoreUnavailable(f"the word is not kept by enough replicas: {why}")
        return [refused if isinstance(r, int) else r for r in results]

    async def delete(self, session_id: str, owner: str | None) -> None:
        """Remove a session from the store (CloseSession on any replica)."""
        deleted = await self._call("delete", session_id, owner or "")
        if deleted == -1:
            raise NotOwner(session_id)
        # 0: not there, which after the look that precedes every delete means an earlier attempt
        # of this delete landed (or another close won): either way the session is gone.

    async def detach(self, session: Session) -> None:
        """Mark a session detached, if this replica still holds it; the store's errors are only logged."""
        try:
            await self._call("detach", session.id, session.epoch, self.ttl_ms)
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


def refused_credentials(error: BaseException) -> bool:
    """Whether a Redis error (or one it wraps) says the credentials are wrong or missing."""
    while error is not None:
        text = str(error)
        if isinstance(error, AuthenticationError) or any(
            w in text for w in ("WRONGPASS", "NOAUTH", "invalid password", "invalid username-password pair")
        ):
            return True
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    return False
