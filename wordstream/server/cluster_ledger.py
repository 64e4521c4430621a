"""The Redis Cluster ledger (``--state-store redis-cluster://[user:password@]host:port[,host:port...]``):
sessions sharded by hash slot over the cluster's primaries, each with its replica.

Everything of redis_ledger.py holds (keys, scripts, fencing, landed attempts recognised, calls
sent again until the timeout); what differs is where a call goes. A session's two keys share
its ``{id}`` hash tag, so every script touches one slot, as Redis Cluster requires. Writes wait
in one queue per primary (the route is the node that serves the session's slot now), and each
queue's group commit is one pipeline of one script call per write, on one connection to that
node (a plain client per node: with --store-replicas the WAIT that ends the pipeline counts
that connection's writes): a shard that is failing over holds back its own sessions' words
only, never the other shards'.

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

import redis.asyncio as redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, ResponseError, TryAgainError

from wordstream.modelfile import StepModel
from wordstream.server.redis_ledger import (
    SCRIPTS,
    SHAS,
    STORE_ERRORS,
    RedisLedger,
    _Write,
    keys,
    refused_credentials,
)
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
        self._user, self._password, self._socket_timeout = user, url_password or password, socket_timeout
        self._nodes: dict[str, redis.Redis] = {}
        self._refreshed = 0.0
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
        except STORE_ERRORS as e:
            if refused_credentials(e):
                raise self.credentials_refused() from None
            log.warning(
                "state store unreachable at start",
                extra={"event": "store_down", "store": self.description, "why": str(e)},
            )
            return
        if self.replicas:
            found = {}
            for node in self.redis.get_primaries():
                info = await self._node(node.name).info("replication")
                found[node.name] = int(info.get("connected_slaves", 0))
            self._enough_replicas(found)

    async def healthy(self) -> bool:
        """Whether any primary answers: a shard failing over is not the whole store down."""
        try:
            primaries = self.redis.get_primaries()
        except (*STORE_ERRORS, AttributeError):
            return False
        for node in primaries:
            try:
                if await asyncio.wait_for(self.redis.execute_command("PING", target_nodes=node), 1.0):
                    return True
            except (*STORE_ERRORS, TimeoutError):
                continue
        return False

    def _route(self, session_id: str) -> str:
        return self._route_of(keys(session_id)[0])

    def _route_of(self, key: str) -> str:
        """The name (host:port) of the primary serving ``key``'s slot now, '' while unknown."""
        try:
            node: ClusterNode = self.redis.get_node_from_key(key)
            return str(node.name)
        except (*STORE_ERRORS, AttributeError, IndexError, KeyError):
            return ""

    async def _send(self, batch: list[_Write]) -> list[Any]:
        """One pipeline on one connection to the route's node: one write-script call per write (one
        slot each) and, with --store-replicas, a WAIT last (it counts this connection's writes)."""
        name = self._route_of(batch[0].keys[0])
        if not name:  # the slot map is not known yet: let the cluster client find the node
            await self._refresh()
            return [TryAgainError("the slot map is being read")] * len(batch)
        pipe = self._node(name).pipeline(transaction=False)
        for write in batch:
            pipe.evalsha(SHAS["write"], 2, *write.keys, self.ttl_ms, *write.args)
        if self.replicas:
            pipe.execute_command("WAIT", self.replicas, int(self.timeout * 1000))
        try:
            replies = await pipe.execute(raise_on_error=False)
        except STORE_ERRORS:
            await self._refresh()  # the node may be gone: where do its slots live now?
            raise
        results, acks = (replies[:-1], replies[-1]) if self.replicas else (replies, None)
        out: list[Any] = []
        unscripted = moved = False
        for result in results:
            if isinstance(result, NoScriptError):  # a promoted replica: nothing ran
                unscripted = True
                out.append(TryAgainError("the write script is being loaded on a new primary"))
            elif isinstance(result, ResponseError) and str(result).startswith(("MOVED", "ASK")):
                moved = True
                out.append(TryAgainError(f"the slot moved ({result})"))
            else:
                out.append(result[0] if isinstance(result, list) else result)
        if unscripted:
            await self._node(name).script_load(SCRIPTS["write"])
        if moved:
            await self._refresh()
        return self.acknowledged(out, acks)

    def _node(self, name: str) -> redis.Redis:
        """A plain client of one node (its own pool), for pipelines that must stay on one connection."""
        client = self._nodes.get(name)
        if client is None:
            host, _, port = name.rpartition(":")
            client = redis.Redis(
                host=host.strip("[]"),
                port=int(port),
                username=self._user,
                password=self._password,
                socket_timeout=self._socket_timeout,
                socket_connect_timeout=self._socket_timeout,
                retry=Retry(NoBackoff(), 0),
            )
            self._nodes[name] = client
        return client

    async def _refresh(self) -> None:
        """Read the slot map again (at most every 250 ms), so the next route is the node serving now."""
        now = asyncio.get_running_loop().time()
        if now - self._refreshed < 0.25:
            return
        self._refreshed = now
        try:
            await self.redis.initialize()
        except STORE_ERRORS as e:
            log.info("slot map not refreshed", extra={"event": "slots_unrefreshed", "why": str(e)})

    async def stop(self, store: SessionStore) -> None:
        for client in self._nodes.values():
            await client.aclose()
        await self.redis.aclose()

    async def refresh(self, sessions: list[Session]) -> None:
        if not sessions:
            return
        pipe = self.redis.pipeline()
        for session in sessions:
            for key in keys(session.id):
                pipe.pexpire(key, int(self.ttl_ms))
        await pipe.execute(raise_on_error=False)
