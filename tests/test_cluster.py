"""The scale-out, as it runs: real redis-server, replicas as processes, real Envoy in front.

Every test starts its own cluster (deploy/cluster.py: unix socket for Redis, free ports for the
replicas and Envoy) on the tiny models. Fencing and a store outage are also in test_store.py,
where the replicas run in this process and their insides can be looked at.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest

from deploy.cluster import Envoy, Redis, Replica
from tests.helpers import TEXT, offline_steps, poll, same_steps
from wordstream.client import Client, Session, errors
from wordstream.v1 import wordstream_pb2 as pb
from wordstream.v1 import wordstream_pb2_grpc as pb_grpc

pytestmark = pytest.mark.slow
WORDS = (TEXT * 3)[:20]


@dataclass
class Cluster:
    redis: Redis
    replicas: dict[str, Replica]
    envoy: Envoy

    def healthy(self) -> int:
        return self.envoy.healthy()


@pytest.fixture
def cluster(tiny_models: dict[str, Path], tmp_path: Path) -> Iterator[Cluster]:
    redis = Redis(tmp_path / "redis", appendonly=True).start()
    models = tiny_models["lstm"].parent
    replicas = {
        name: Replica(name, models, redis.url, "--drain", "2", "--grace", "5", default_model="tiny-lstm").start()
        for name in ("r1", "r2")
    }
    envoy = Envoy([r.port for r in replicas.values()], directory=tmp_path).start(healthy=2)
    yield Cluster(redis, replicas, envoy)
    envoy.stop()
    for replica in replicas.values():
        replica.kill()
    redis.stop()


def replica_of(target: str, session_id: str) -> str:
    """Which replica answers a new connection's call for ``session_id`` (its x-wordstream-replica)."""
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.WordstreamStub(channel)
        _, call = stub.GetSession.with_call(
            pb.GetSessionRequest(session_id=session_id, end=1), metadata=(("x-session-id", session_id),), timeout=10
        )
        return dict(call.initial_metadata())["x-wordstream-replica"]


def test_a_killed_replica_loses_nothing_the_session_resumes_on_the_other(
    cluster: Cluster, tiny_models: dict[str, Path]
) -> None:
    replays: list[object] = []
    with Client(cluster.envoy.target, reconnect_timeout=20) as client:
        session = client.session(history="full", on_replay=lambda *r: replays.append(r))
        session.open()
        for word in WORDS[:10]:
            session.push(word)
        first = session.replica
        cluster.replicas[first].kill()  # SIGKILL: no drain, no goodbye
        for word in WORDS[10:]:
            session.push(word)
        assert session.replica != first and session.replica in cluster.replicas
        assert not replays and session.replays == 0  # resumed from the store, not replayed
        assert session.words == WORDS
        assert same_steps(session.history, offline_steps(tiny_models["lstm"], WORDS))
        record = client.get_session(session.id)
        assert same_steps(record["history"], offline_steps(tiny_models["lstm"], WORDS))


def test_sessions_land_where_they_were_on_new_connections(cluster: Cluster) -> None:
    placed = {}
    with Client(cluster.envoy.target) as client:
        for _ in range(100):
            session = client.session(history="none")
            session.open()
            session.push("good")
            placed[session.id] = session.replica
            session.detach()
    assert set(placed.values()) == set(cluster.replicas)  # the ring spreads sessions over both
    for session_id, replica in placed.items():
        assert replica_of(cluster.envoy.target, session_id) == replica
    with Client(cluster.envoy.target) as client:  # resumed on new connections: the same replica again
        for session_id, replica in list(placed.items())[:20]:
            resumed = client.resume(session_id, history="none")
            resumed.open()
            assert resumed.replica == replica


def test_a_draining_replica_gets_no_new_sessions_and_its_sessions_move_with_nothing_lost(
    cluster: Cluster, tiny_models: dict[str, Path]
) -> None:
    with Client(cluster.envoy.target, reconnect_timeout=20) as client:
        sessions: list[Session] = []
        while len({s.replica for s in sessions}) < 2 or len(sessions) < 6:
            session = client.session(history="full")
            session.open()
            session.push(WORDS[0])
            sessions.append(session)
        draining = sessions[0].replica
        process = cluster.replicas[draining].process
        assert process is not None
        process.send_signal(signal.SIGTERM)
        poll(lambda: cluster.healthy() == 1, "Envoy to see the drain", timeout=5)
        assert process.poll() is None  # still serving: the drain lasts 2 s
        for _ in range(10):  # new sessions avoid it
            fresh = client.session(history="none")
            fresh.open()
            assert fresh.replica != draining
        for session in sessions:  # its sessions carry on (after the grace, on the other replica)
            for word in WORDS[1:8]:
                session.push(word)
        assert process.wait(15) == 0
        for session in sessions:
            session.push(WORDS[8])
            assert session.replays == 0 and session.replica != draining
            assert same_steps(session.history, offline_steps(tiny_models["lstm"], WORDS[:9]))


def test_store_down_through_envoy_fails_closed_and_recovers(cluster: Cluster, tiny_models: dict[str, Path]) -> None:
    with Client(cluster.envoy.target, reconnect_timeout=3) as client:
        session = client.session(history="full")
        session.open()
        for word in WORDS[:3]:
            session.push(word)
        cluster.redis.stop()
        poll(lambda: cluster.healthy() == 0, "both replicas NOT_SERVING with the store down", timeout=5)
        started = time.monotonic()
        with pytest.raises(errors.Unavailable):  # no healthy replica: Envoy refuses, nothing is answered
            session.push(WORDS[3])
        assert time.monotonic() - started < 10
        cluster.redis.start()
        poll(lambda: cluster.healthy() == 2, "both replicas SERVING again", timeout=10)
        session.push(WORDS[3])
        assert session.words == WORDS[:4] and session.replays == 0
        assert same_steps(session.history, offline_steps(tiny_models["lstm"], WORDS[:4]))


def test_envoy_killed_and_restarted_the_sessions_go_on_where_they_were(
    cluster: Cluster, tiny_models: dict[str, Path]
) -> None:
    """Envoy is SIGKILLed under a session's stream: the stream ends; the client reconnects once
    Envoy is back on its port, lands on the replica that had the session, and nothing is lost."""
    import threading

    with Client(cluster.envoy.target, reconnect_timeout=20) as client:
        session = client.session(history="full")
        session.open()
        for word in WORDS[:5]:
            session.push(word)
        before = session.replica
        cluster.envoy.kill()
        failed: list[BaseException] = []

        def type_the_rest() -> None:  # the first word waits for Envoy, then the rest go on
            try:
                for word in WORDS[5:]:
                    session.push(word)
            except BaseException as e:
                failed.append(e)

        typing = threading.Thread(target=type_the_rest)
        typing.start()
        time.sleep(1.0)
        cluster.envoy.start(healthy=2)  # from this thread, as a process manager would, by the same port
        typing.join()
        assert not failed, failed
        assert session.words == WORDS and session.replays == 0 and session.replica == before
        assert same_steps(session.history, offline_steps(tiny_models["lstm"], WORDS))
        assert same_steps(client.get_session(session.id)["history"], offline_steps(tiny_models["lstm"], WORDS))


def test_a_multiplex_stream_whose_replica_dies_carries_every_session_on(
    cluster: Cluster, tiny_models: dict[str, Path]
) -> None:
    """Envoy hashes the Multiplex stream's own key; its replica is SIGKILLed; the Multiplexer reopens
    the stream (the other replica now), resumes every session from the store, and nothing is lost."""
    import asyncio

    from wordstream.client import AsyncClient

    async def run() -> None:
        async with AsyncClient(cluster.envoy.target, reconnect_timeout=20) as client, client.multiplexer() as mux:
            ids = await asyncio.gather(*(mux.open(history="none") for _ in range(20)))
            for word in WORDS[:5]:
                await asyncio.gather(*(mux.push(i, word) for i in ids))
            first = mux.replica
            assert first in cluster.replicas
            cluster.replicas[first].kill()  # SIGKILL: no drain, no goodbye
            for word in WORDS[5:10]:
                await asyncio.gather(*(mux.push(i, word) for i in ids))
            assert mux.replica != first and mux.recoveries >= 1
            # GetSession is routed by each session's own id: wait until Envoy has taken the dead
            # replica out of its ring (its health checks), as any caller of it would.
            await asyncio.to_thread(poll, lambda: cluster.healthy() == 1, "Envoy to see one replica healthy")
            expected = offline_steps(tiny_models["lstm"], WORDS[:10])
            for i in ids:
                assert mux.words(i) == WORDS[:10]
                assert same_steps((await client.get_session(i))["history"], expected)

    asyncio.run(run())


def test_a_rolling_restart_under_load_loses_no_session_and_answers_nothing_wrong(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    """The short variant of `python -m bench.rolling`: both replicas restarted in turn under load."""
    from bench.rolling import run

    figures = run(tiny_models["lstm"].parent, "tiny-lstm", replicas=2, sessions=8, settle=1.0, directory=tmp_path)
    assert figures["words"] > 100, figures
    assert figures["sessions_lost"] == 0 and figures["wrong_outputs"] == 0, figures
    assert len(figures["restart_seconds"]) == 2, figures


@pytest.mark.parametrize("store", ["redis", "redis-cluster"])
def test_make_cluster_serves_through_envoy_and_stops_everything_on_ctrl_c(tmp_path: Path, store: str) -> None:
    """`make cluster` is `python -m deploy.cluster`: Redis (or with STORE=redis-cluster a Redis Cluster
    of six nodes), two replicas and Envoy in the foreground; a client reaches them through Envoy;
    Ctrl-C (SIGINT) stops every process it started."""
    import re
    import socket
    import subprocess
    import sys

    from deploy.cluster import ROOT, free_port

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "deploy.cluster", "--port", str(port), "--directory", str(tmp_path), "--store", store],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert f"Envoy on localhost:{port}" in line, line
        replicas = [int(p) for p in re.findall(r"localhost:(\d+)", line.split("->")[1].split(";")[0])]
        assert len(replicas) == 2
        stores = [int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", line.split("Redis at")[1])]
        assert len(stores) == (6 if store == "redis-cluster" else 0), line
        with Client(f"localhost:{port}") as client:
            assert client.health() == "SERVING"
            with client.session() as session:
                assert session.push("great").output is not None and session.replica.startswith("replica-")
        process.send_signal(signal.SIGINT)
        assert process.wait(60) == 0
    finally:
        process.kill()
    for taken in [port, *replicas, *stores]:  # nothing listens any more
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", taken)) != 0, taken
    if store == "redis":
        assert not (tmp_path / "redis.sock").exists()  # Redis shut down (it removes its socket)
    assert list(tmp_path.glob("appendonly*") if store == "redis" else tmp_path.glob("redis-cluster/node-*/appendonly*"))


@pytest.mark.parametrize("streams", [0, 2], ids=["own-streams", "multiplex"])
def test_a_page_keeps_its_session_when_its_replica_dies(
    cluster: Cluster, tiny_models: dict[str, Path], streams: int
) -> None:
    """The gateway in front of Envoy: the replica behind a page's session is killed (the one its own
    stream, or the Multiplex stream that carries it, was routed to); the next word is answered by
    the other replica from the store (no replay notice), as if nothing happened."""
    from starlette.testclient import TestClient

    from tests.helpers import offline_prefix_probs
    from wordstream.client import AsyncClient
    from wordstream.gateway.app import create_app

    app = create_app(lambda: AsyncClient(cluster.envoy.target, reconnect_timeout=20), multiplex_streams=streams)
    page = "http://localhost:8080"
    with (
        TestClient(app, base_url=page) as http,
        http.websocket_connect("ws://localhost:8080/ws", headers={"origin": page}) as ws,
    ):
        ws.send_json({"open": {}})
        session_id = ws.receive_json()["opened"]["session_id"]
        for word in WORDS[:5]:
            ws.send_json({"word": word})
            ws.receive_json()
        carrier = app.app.state.carrier  # type: ignore[attr-defined]  # Shield(Starlette)
        replica = carrier.carrying(session_id).replica if streams else replica_of(cluster.envoy.target, session_id)
        cluster.replicas[replica].kill()
        ws.send_json({"word": WORDS[5]})
        answer = ws.receive_json()
        assert "word" in answer, answer  # not a "replayed" notice: resumed from Redis
        assert answer["word"]["session_id"] == session_id and answer["word"]["word_index"] == 5
        expected = offline_prefix_probs(tiny_models["lstm"], WORDS[:6])[-1]
        assert np.allclose(list(answer["word"]["probabilities"].values()), expected, atol=1e-5)
