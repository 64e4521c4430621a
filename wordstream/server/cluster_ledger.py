"""The Redis Cluster ledger (``--state-store redis-cluster://[user:password@]host:port[,host:port...]``):
sessions sharded by hash slot over the cluster's primaries, each with its replica.

Everything of redis_ledger.py holds (keys, scripts, fencing, landed attempts recognised, calls
sent again until the timeout); what differs is where a call goes. A session's two keys share
its ``{id}`` hash tag, so every script touches one slot, as Redis Cluster requires. Writes wait
in one queue per primary (the route is the node that serves the session's slot now), and each
queue's group commit is one pipeline of one script call per write to that node: a shard that is
failing over holds back its own sessions' words only, never the other shards'.

A failover: the dead primary's calls fail (connection refused, timeouts, CLUSTERDOWN,
READONLY on a demoted node); redis-py refreshes its map of the slots, and the calls are sent
again to the promoted replica until the timeout. A promoted replica may not know the scripts
(NOSCRIPT: nothing ran), so they are loaded on every primary and the call sent again. No grpc
here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError, TryAgainError

from wordstream.modelfile import StepModel
from wordstream.server.ledger import LedgerRefused
from wordstream.server.redis_ledger import SCRIPTS, SHAS, RedisLedger, _Write, keys, refused_credentials
from wordstream.server.sessions import Session
from wordstream.server.store import SessionStore

log = logging.getLogger("wordstream.ledger")
SCHEME = "redis-cluster://"


def seed_nodes(url: str) -> tuple[str | None, str | None, list[tuple[str, int]]]:
    """(user, password, [(host, port)]) of a redis-cluster:// URL; ValueError says what is wrong."""
    if not url.startswith(SCHEME):
        raise ValueError(f"a Redis Cluster URL starts with {SCHEME}, got {url[:20]!r}")
    rest = url.removeprefix(SCHEME).rstrip("/")
    credentials, at, hosts = rest.rpartition("@")
    user = password = None
    if at:
        user, colon, secret = credentials.partition(":")
        user, password = (unquote(user) or None, unquote(secret)) if colon else (None, unquote(user))
    nodes = []
    for item in hosts.split(","):
        host, colon, port = item.strip().rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"each seed node of {SCHEME} is host:port, got {item!r}")
        nodes.append((host.strip("[]"), int(port)))
    return user, password, nodes


class RedisClusterLedger(RedisLedger):
    """Sessions in a Redis Cluster (see the module docstring)."""

    def _connect(self, url: str, password: str | None, socket_timeout: float) -> Any:
        user, url_password, nodes = seed_nodes(url)
        return RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in nodes],
            username=user,
            password=url_password or password,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            require_full_coverage=False,  # a shard that is down costs its own slots only
            retry=Retry(NoBackoff(), 1),  # one refresh of the slot map and one more try; then _call's loop
        )

    async def start(self, store: SessionStore, models: Mapping[str, StepModel]) -> None:
        try:
            await self.redis.initialize()
        except (RedisError, OSError) as e:
            if refused_credentials(e):
                raise LedgerRefused(
                    f"the state store at {self.description} refused this server's credentials; check the password "
                    "(--state-store-password-file, WORDSTREAM_STATE_STORE_PASSWORD or the URL)"
                ) from None
            log.warning(
                "state store unreachable at start",
                extra={"event": "store_down", "store": self.description, "why": str(e)},
            )

    async def healthy(self) -> bool:
        """Whether any primary answers: a shard failing over is not the whole store down."""
        try:
            primaries = self.redis.get_primaries()
        except (RedisError, OSError, AttributeError):
            return False
        for node in primaries:
            try:
                if await asyncio.wait_for(self.redis.execute_command("PING", target_nodes=node), 1.0):
                    return True
            except (RedisError, OSError, TimeoutError):
                continue
        return False

    def _route(self, session_id: str) -> str:
        try:
            node: ClusterNode = self.redis.get_node_from_key(keys(session_id)[0])
            return str(node.name)
        except (RedisError, OSError, AttributeError, IndexError, KeyError):
            return ""  # the slot map is not known yet: one queue for those, sent like any other

    async def _send(self, batch: list[_Write]) -> list[Any]:
        """One pipeline to the route's node, one write-script call per write (one slot each)."""
        pipe = self.redis.pipeline()
        for write in batch:
            pipe.evalsha(SHAS["write"], 2, *write.keys, self.ttl_ms, *write.args)
        results = await pipe.execute(raise_on_error=False)
        out: list[Any] = []
        for result in results:
            if isinstance(result, NoScriptError):  # a promoted replica: nothing ran
                out.append(TryAgainError("the write script is being loaded on a new primary"))
            else:
                out.append(result[0] if isinstance(result, list) else result)
        if any(isinstance(r, NoScriptError) for r in results):
            await self.redis.script_load(SCRIPTS["write"])
        return out

    async def _script(self, name: str, script_keys: list[str], args: list[Any]) -> Any:
        try:
            return await self.redis.evalsha(SHAS[name], len(script_keys), *script_keys, *args)
        except NoScriptError:
            await self.redis.script_load(SCRIPTS[name])  # on every primary
            return await self.redis.evalsha(SHAS[name], len(script_keys), *script_keys, *args)

    async def refresh(self, sessions: list[Session]) -> None:
        if not sessions:
            return
        pipe = self.redis.pipeline()
        for session in sessions:
            for key in keys(session.id):
                pipe.pexpire(key, int(self.ttl_ms))
        await pipe.execute(raise_on_error=False)
