"""Sessions in a real Redis Cluster (--state-store redis-cluster://): six redis-server processes in
cluster mode (3 primaries, 3 replicas), replicas of ours as real servers on port 0 in this
process, real clients. A primary is killed under load; every session must end equal to an
offline run of the words its client sent."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from deploy.cluster import RedisCluster, wait_for
from tests.helpers import TEXT, MakeServer, ServerThread, lose_the_tail, offline_steps, same_steps
from wordstream.client import AsyncClient, AsyncSession, Client
from wordstream.server import redis_ledger

pytestmark = pytest.mark.slow  # six redis-server processes

VOCABULARY = sorted(set(TEXT)) + ["fine", "awful", "lovely", "flat", "moving"]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[RedisCluster]:
    started = RedisCluster(tmp_path / "redis-cluster").start()
    yield started
    started.stop()


@pytest.fixture
def replicas(make_server: MakeServer, cluster: RedisCluster) -> list[ServerThread]:
    return [
        make_server(state_store=cluster.url, replica_name=name, reap_interval=0.2, store_check_interval=0.1)
        for name in ("a", "b")
    ]


def texts(sessions: int, words: int, seed: int = 0) -> list[list[str]]:
    rng = random.Random(seed)
    return [[rng.choice(VOCABULARY) for _ in range(words)] for _ in range(sessions)]


def check_exact(replicas: list[ServerThread], model: Path, sent: dict[str, list[str]]) -> None:
    """Every session's stored history equals an offline run of the words its client sent."""
    offline: dict[tuple[str, ...], list[tuple[list[float], dict[str, np.ndarray]]]] = {}
    with Client(replicas[0].target) as client:
        for session_id, words in sent.items():
            record = client.get_session(session_id)
            key = tuple(words)
            if key not in offline:
                offline[key] = offline_steps(model, words)
            assert record["words"] == len(words), (session_id[:8], record["words"], len(words))
            assert same_steps(record["history"], offline[key]), session_id[:8]


def test_a_hundred_sessions_through_two_replicas_equal_their_offline_runs(
    replicas: list[ServerThread], cluster: RedisCluster, tiny_models: dict[str, Path]
) -> None:
    plan = texts(100, 8)

    async def run() -> dict[str, list[str]]:
        clients = [AsyncClient(r.target) for r in replicas]
        sessions = [clients[n % 2].session() for n in range(len(plan))]
        await asyncio.gather(*(s.open() for s in sessions))

        async def type_all(session: AsyncSession, words: list[str]) -> None:
            for word in words:
                await session.push(word)

        await asyncio.gather(*(type_all(s, w) for s, w in zip(sessions, plan)))
        for c in clients:
            await c.close()
        return {s.id: list(s.words) for s in sessions}

    sent = asyncio.run(run())
    shards = {cluster.primary_of(redis_ledger.keys(i)[0]).port for i in sent}
    assert len(shards) == 3  # the sessions are spread over every primary
    check_exact(replicas, tiny_models["lstm"], sent)


def test_a_primary_killed_under_load_loses_no_word(
    replicas: list[ServerThread], cluster: RedisCluster, tiny_models: dict[str, Path]
) -> None:
    """SIGKILL one primary while 100 sessions type: its replica takes over; every session ends
    equal to an offline run of what its client sent; sessions of the other shards see no error."""
    plan = texts(100, 30, seed=1)
    latencies: dict[str, list[tuple[float, float]]] = {}  # session -> (sent at, seconds to the answer)
    killed_at: list[float] = []

    async def run() -> tuple[dict[str, list[str]], dict[str, bool], dict[str, int]]:
        clients = [AsyncClient(r.target, reconnect_timeout=20) for r in replicas]
        sessions = [clients[n % 2].session(history="none") for n in range(len(plan))]
        await asyncio.gather(*(s.open() for s in sessions))
        home = {s.id: cluster.primary_of(redis_ledger.keys(s.id)[0]).port for s in sessions}
        victim = next(n for n in cluster.nodes if n.port == home[sessions[0].id])

        async def type_all(session: AsyncSession, words: list[str]) -> None:
            for word in words:
                started = time.monotonic()
                await session.push(word)
                latencies.setdefault(session.id, []).append((started, time.monotonic() - started))
                await asyncio.sleep(0.05)

        async def kill_soon() -> None:
            await asyncio.sleep(0.4)
            killed_at.append(time.monotonic())
            victim.kill()

        await asyncio.gather(kill_soon(), *(type_all(s, w) for s, w in zip(sessions, plan)))
        for c in clients:
            await c.close()
        sent = {s.id: list(s.words) for s in sessions}
        return sent, {i: home[i] == victim.port for i in sent}, {s.id: s.replays + s.resent for s in sessions}

    sent, affected, recovered = asyncio.run(run())
    check_exact(replicas, tiny_models["lstm"], sent)
    assert not any(recovered[i] for i in sent if not affected[i])  # the other shards never noticed
    kill = killed_at[0]
    healthy = [d for i, pairs in latencies.items() if not affected[i] for t, d in pairs if kill <= t <= kill + 3]
    p99 = float(np.percentile(healthy, 99))
    print(f"\nother shards during the failover: {len(healthy)} words, p99 {p99 * 1000:.1f} ms")
    # Not held back by the failover (that takes seconds): here 34-44 ms in most runs, once 255 ms
    # with the whole suite sharing 2 cores; the figure to quote comes from runs on a quiet machine.
    assert p99 < 1.0
    first_answers = [t + d - kill for i, pairs in latencies.items() if affected[i] for t, d in pairs if t >= kill]
    print(f"kill -> first answered word on the killed shard: {min(first_answers):.2f} s")


@pytest.mark.parametrize("rewind", [False, True], ids=["lost-words", "lost-rewind"])
def test_a_tail_the_store_lost_is_sent_again_by_the_client(
    replicas: list[ServerThread], cluster: RedisCluster, tiny_models: dict[str, Path], rewind: bool
) -> None:
    """Replication is asynchronous: a failover can lose words the old primary acknowledged. The
    client holds every word it sent; on its resume the held words' digest differs, and it sends
    again what follows the longest common prefix. With a rewind just before the loss, the store
    holds as many words as the client, but other ones: the write epochs notice that too."""
    with Client(replicas[0].target, reconnect_timeout=20) as client:
        session = client.session(history="full")
        session.open()
        for word in TEXT[:6]:
            session.push(word)
        if rewind:

            def typing() -> None:
                session.rewind(2)
                session.push("fine")
                session.push("awful")
        else:

            def typing() -> None:
                session.push("fine")
                session.push("awful")

        lose_the_tail(cluster, session.id, typing)
        for word in TEXT[6:]:
            session.push(word)
        expected = TEXT[:4] + ["fine", "awful"] + TEXT[6:] if rewind else TEXT[:6] + ["fine", "awful"] + TEXT[6:]
        assert session.words == expected
        assert session.resent == 2
        assert same_steps(session.history, offline_steps(tiny_models["lstm"], expected))
    check_exact(replicas, tiny_models["lstm"], {session.id: expected})


def test_the_same_shard_fails_over_twice_under_load(
    replicas: list[ServerThread], cluster: RedisCluster, tiny_models: dict[str, Path]
) -> None:
    """Kill a shard's primary; restart it (it rejoins as a replica of the promoted one); kill the
    promoted one: the old primary must take over again. Typing goes on throughout, nothing lost."""
    plan = texts(30, 400, seed=2)
    done = asyncio.Event()

    async def run() -> dict[str, list[str]]:
        clients = [AsyncClient(r.target, reconnect_timeout=30) for r in replicas]
        sessions = [clients[n % 2].session(history="none") for n in range(len(plan))]
        await asyncio.gather(*(s.open() for s in sessions))
        first = cluster.primary_of(redis_ledger.keys(sessions[0].id)[0])

        def fail_twice() -> None:
            first.kill()
            wait_for(lambda: cluster.primary_of(redis_ledger.keys(sessions[0].id)[0]) is not first, "a failover")
            second = cluster.primary_of(redis_ledger.keys(sessions[0].id)[0])
            first.start()  # it rejoins as the replica of the promoted one
            wait_for(cluster.ready, "the old primary to be in sync again", 30)
            second.kill()
            wait_for(lambda: cluster.primary_of(redis_ledger.keys(sessions[0].id)[0]) is first, "the second failover")

        async def type_all(session: AsyncSession, words: list[str]) -> None:
            for word in words:
                if done.is_set():
                    return
                await session.push(word)
                await asyncio.sleep(0.05)

        async def failing() -> None:
            await asyncio.sleep(0.3)
            await asyncio.to_thread(fail_twice)
            await asyncio.sleep(0.5)  # some words after the second failover
            done.set()

        await asyncio.gather(failing(), *(type_all(s, w) for s, w in zip(sessions, plan)))
        for c in clients:
            await c.close()
        return {s.id: list(s.words) for s in sessions}

    sent = asyncio.run(run())
    assert all(len(words) < 400 for words in sent.values())  # the failovers happened while they typed
    check_exact(replicas, tiny_models["lstm"], sent)


def test_store_replicas_waits_for_a_replica_and_refuses_without_one(
    make_server: MakeServer, cluster: RedisCluster, tmp_path: Path
) -> None:
    """--store-replicas 1: a word is answered once a replica of its primary has it; with that
    replica paused the word is refused (UNAVAILABLE), not answered. A store without replicas is
    refused at start."""
    import grpc

    from deploy.cluster import Redis
    from tests.helpers import Stream
    from wordstream.server.ledger import LedgerRefused
    from wordstream.v1 import wordstream_pb2 as pb

    server: ServerThread = make_server(state_store=cluster.url, store_replicas=1, store_timeout=1.0)
    stream = Stream(server.target)
    session_id = stream.send(open=pb.Open()).session_id
    assert stream.word("fine").word.word == "fine"
    replica = cluster.replica_of(cluster.primary_of(redis_ledger.keys(session_id)[0]))
    replica.pause()
    try:
        with pytest.raises(grpc.RpcError) as info:
            stream.word("film")
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "0 of 1 replica(s) acknowledged it" in str(info.value.details())
    finally:
        replica.resume()
    single = Redis(tmp_path / "single").start()
    try:
        with pytest.raises(LedgerRefused, match="--store-replicas 1 asks every word to be acknowledged"):
            make_server(state_store=single.url, store_replicas=1)
    finally:
        single.stop()


def test_health_is_not_serving_only_when_no_primary_answers(
    replicas: list[ServerThread], cluster: RedisCluster
) -> None:
    """One shard down is not the whole store down: health stays SERVING while any primary answers,
    and goes NOT_SERVING when none does."""
    from tests.helpers import poll

    with Client(replicas[0].target) as client:
        assert client.health() == "SERVING"
        primaries = [n for n in cluster.live() if n.info("replication").get("role") == "master"]
        primaries[0].kill()
        time.sleep(0.5)  # several health checks (every 0.1 s here)
        assert client.health() == "SERVING"
        for node in cluster.live():
            node.pause()  # every node silent: no primary answers
        try:
            poll(lambda: client.health() == "NOT_SERVING", "NOT_SERVING with no primary answering")
        finally:
            for node in cluster.live():
                node.resume()
        poll(lambda: client.health() == "SERVING", "SERVING again", timeout=30)


def test_a_whole_shard_down_refuses_its_sessions_only_and_they_go_on_when_it_is_back(
    make_server: MakeServer, cluster: RedisCluster, tiny_models: dict[str, Path]
) -> None:
    """Both nodes of one shard die: its sessions' words are refused (UNAVAILABLE, nothing answered)
    while the other shards' sessions go on; the shard's nodes restart from their AOF and its
    sessions go on where they were, nothing lost."""
    import threading

    import grpc

    from tests.helpers import Stream
    from wordstream.v1 import wordstream_pb2 as pb

    server: ServerThread = make_server(state_store=cluster.url, store_timeout=1.0, store_check_interval=0.1)
    with Client(server.target, reconnect_timeout=60) as client:
        sessions = [client.session(history="none") for _ in range(12)]
        for session in sessions:
            session.open()
            session.push(TEXT[0])
        home = {s.id: cluster.primary_of(redis_ledger.keys(s.id)[0]) for s in sessions}
        primary = home[sessions[0].id]
        down = [s for s in sessions if home[s.id] is primary]
        up = [s for s in sessions if home[s.id] is not primary]
        assert up, "every session landed on one shard"
        probe = Stream(server.target)
        probe_id = ""
        while not probe_id:  # a raw stream on the shard that will die, to see its refusal as it is
            opened = probe.send(open=pb.Open()).session_id
            if cluster.primary_of(redis_ledger.keys(opened)[0]) is primary:
                probe_id = opened
            else:
                probe.end()
                probe.channel.close()
                probe = Stream(server.target)
        shard = [primary, cluster.replica_of(primary)]
        for node in shard:
            node.kill()

        with pytest.raises(grpc.RpcError) as info:
            probe.word("fine")
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        for session in up:  # the other shards answer as before
            started = time.monotonic()
            session.push(TEXT[1])
            assert time.monotonic() - started < 1.0

        def back_soon() -> None:
            time.sleep(1.0)
            for node in shard:
                node.start()  # nodes.conf and the AOF bring back the shard and its sessions

        restarting = threading.Thread(target=back_soon)
        restarting.start()
        for session in down:  # waits (the client resumes until the shard answers), then goes on
            session.push(TEXT[1])
        restarting.join()
        for session in sessions:
            session.push(TEXT[2])
            assert session.words == TEXT[:3]
        assert all(s.replays == 0 for s in sessions)  # resumed from the store, never replayed
    check_exact([server], tiny_models["lstm"], {s.id: TEXT[:3] for s in sessions})


def test_a_cluster_with_a_password_serves_with_it_and_refuses_a_wrong_one(
    make_server: MakeServer, tmp_path: Path
) -> None:
    """Every node requires the password (requirepass, masterauth for its replica): the server takes
    it from the URL or from --state-store-password-file; a wrong one is refused at start, and the
    refusal shows the URL without the password."""
    from wordstream.server.ledger import LedgerRefused

    secret = "cluster-S3cret"
    locked = RedisCluster(tmp_path / "locked", password=secret).start()
    try:
        in_url = locked.url.replace("redis-cluster://", f"redis-cluster://:{secret}@")
        password_file = tmp_path / "password"
        password_file.write_text(secret + "\n")
        for server in (
            make_server(state_store=in_url),
            make_server(state_store=locked.url, state_store_password_file=str(password_file)),
        ):
            with Client(server.target) as client:
                session = client.session()
                session.open()
                session.push("fine")
                assert client.get_session(session.id)["words"] == 1
            primary = locked.primary_of(redis_ledger.keys(session.id)[0])
            assert primary.client().exists(redis_ledger.keys(session.id)[0])
        wrong = locked.url.replace("redis-cluster://", "redis-cluster://:not-the-Password@")
        with pytest.raises(LedgerRefused, match="refused this server's credentials") as info:
            make_server(state_store=wrong)
        assert "not-the-Password" not in str(info.value) and "redis-cluster://:***@" in str(info.value)
    finally:
        locked.stop()


def test_a_cluster_unreachable_at_start_serves_not_serving_and_refuses_words(make_server: MakeServer) -> None:
    """No seed node answers: the server starts (health NOT_SERVING, as with one Redis down) and a
    new session is refused UNAVAILABLE within --store-timeout, instead of the server failing."""
    import grpc

    from deploy.cluster import free_port
    from tests.helpers import Stream
    from wordstream.v1 import wordstream_pb2 as pb

    server: ServerThread = make_server(
        state_store=f"redis-cluster://127.0.0.1:{free_port()}", store_timeout=0.5, store_check_interval=0.1
    )
    with Client(server.target) as client:
        assert client.health() == "NOT_SERVING"
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as info:
        Stream(server.target).send(open=pb.Open())
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert time.monotonic() - started < 5


def test_the_cluster_ports_are_distinct_and_a_node_that_cannot_bind_fails_at_once(tmp_path: Path) -> None:
    """Ports picked one by one could repeat (a CI run lost 20 s and the test to two nodes on one
    port); a node that cannot start says why at once instead of timing out."""
    import socket

    from deploy.cluster import RedisNode, free_ports

    cluster = RedisCluster(tmp_path / "c")
    ports = [p for node in cluster.nodes for p in (node.port, node.bus_port)]
    assert len(set(ports)) == len(ports) == 12 and len(set(free_ports(50))) == 50
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))  # bound, not listening: a ping is refused at once, redis cannot bind
        port, bus = taken.getsockname()[1], free_ports(1)[0]
        started = time.monotonic()
        with pytest.raises(RuntimeError, match=f"exited with 1 while waiting for redis-server on port {port}"):
            RedisNode(tmp_path / "n", port, bus, 500).start()
        assert time.monotonic() - started < 10
