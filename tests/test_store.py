"""The state store (--state-store): sessions in a real Redis, written through before each answer.

Replicas here are real servers on port 0 in this process, sharing one real redis-server on a
unix socket; tests/test_cluster.py runs them as processes behind Envoy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import redis

from deploy.cluster import Redis
from tests.helpers import TEXT, MakeServer, ServerThread, Stream, offline_steps, poll, same_steps
from wordstream.client import AsyncClient, Client, errors
from wordstream.server import redis_ledger
from wordstream.v1 import wordstream_pb2 as pb

pytestmark = pytest.mark.slow  # redis-server


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Redis]:
    server = Redis(tmp_path / "redis", appendonly=True).start()
    yield server
    server.stop()


@pytest.fixture
def replicas(make_server: MakeServer, store: Redis) -> list[ServerThread]:
    """Two replicas (a, b) sharing the store."""
    return [
        make_server(state_store=store.url, replica_name=name, reap_interval=0.2, store_check_interval=0.1)
        for name in ("a", "b")
    ]


def stored_words(store: Redis, session_id: str) -> int:
    client = redis.Redis(unix_socket_path=str(store.socket), password=store.password)
    return int(client.llen(redis_ledger.keys(session_id)[1]))


def test_words_are_in_the_store_before_they_are_answered_and_a_resume_elsewhere_is_no_replay(
    replicas: list[ServerThread], store: Redis, tiny_models: dict[str, Path]
) -> None:
    a, b = replicas
    replays: list[object] = []
    with Client(a.target) as client:
        session = client.session(history="full")
        session.open()
        for n, word in enumerate(TEXT[:5], 1):
            session.push(word)
            assert stored_words(store, session.id) == n
        session_id = session.id
    with Client(b.target) as client:
        resumed = client.resume(session_id, history="full", on_replay=lambda *r: replays.append(r))
        resumed.open()
        assert resumed.words == TEXT[:5]
        for word in TEXT[5:]:
            resumed.push(word)
        assert same_steps(resumed.history, offline_steps(tiny_models["lstm"], TEXT))
        assert client.get_session(session_id)["words"] == len(TEXT)
    assert not replays and resumed.replays == 0
    # Replica a's copy is stale now: a look there reads the store, not its old copy.
    with Client(a.target) as client:
        record = client.get_session(session_id)
        assert record["words"] == len(TEXT) and same_steps(record["history"], offline_steps(tiny_models["lstm"], TEXT))


def test_rewind_and_reset_are_written_to_the_store(replicas: list[ServerThread], store: Redis) -> None:
    a, b = replicas
    with Client(a.target) as client:
        session = client.session()
        session.open()
        for word in TEXT[:6]:
            session.push(word)
        session.rewind(2)
        assert stored_words(store, session.id) == 4
        session_id = session.id
    with Client(b.target) as client:
        resumed = client.resume(session_id)
        resumed.open()
        assert resumed.words == TEXT[:4]
        resumed.reset()
        assert stored_words(store, session_id) == 0
        resumed.push("good")
        assert stored_words(store, session_id) == 1
        resumed.close()
    assert not redis.Redis(unix_socket_path=str(store.socket)).exists(*redis_ledger.keys(session_id))
    with Client(a.target) as client, pytest.raises(errors.NotFound):
        client.get_session(session_id)


def test_an_id_in_use_on_another_replica_is_refused(replicas: list[ServerThread]) -> None:
    a, b = replicas
    with Client(a.target) as client:
        session = client.session()
        session.open()
        taken = session.id
    stream = Stream(b.target, metadata=(("x-session-id", taken),))
    with pytest.raises(grpc.RpcError) as info:
        stream.send(open=pb.Open())
    assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS


def test_the_old_owner_cannot_write_after_another_replica_took_over(
    replicas: list[ServerThread], store: Redis, tiny_models: dict[str, Path]
) -> None:
    a, b = replicas
    old = Stream(a.target)
    opened = old.send(open=pb.Open(history=pb.HISTORY_MODE_NONE))
    session_id = opened.session_id
    for word in TEXT[:3]:
        old.word(word)
    with Client(b.target) as client:  # b takes the session over while a's stream is still open
        resumed = client.resume(session_id, history="full")
        resumed.open()
        resumed.push(TEXT[3])
        with pytest.raises(grpc.RpcError) as info:
            old.word("intruder")  # a still holds a copy, but its epoch is gone
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "held by another replica" in (info.value.details() or "")
        assert stored_words(store, session_id) == 4
        resumed.push(TEXT[4])
        assert same_steps(client.get_session(session_id)["history"], offline_steps(tiny_models["lstm"], TEXT[:5]))
    assert not a.service.store.has(session_id)  # a dropped its copy


def test_store_down_refuses_words_goes_not_serving_and_recovers(
    replicas: list[ServerThread], store: Redis, tiny_models: dict[str, Path]
) -> None:
    a, _ = replicas
    with Client(a.target, reconnect_timeout=1.0) as client:
        session = client.session(history="full")
        session.open()
        for word in TEXT[:3]:
            session.push(word)
        store.stop()
        with pytest.raises(errors.Unavailable) as info:
            session.push(TEXT[3])
        assert "store" in str(info.value)
        poll(lambda: client.health() == "NOT_SERVING", "health NOT_SERVING while the store is down")
        store.start()  # the same Redis again, its AOF read back
        poll(lambda: client.health() == "SERVING", "health SERVING again")
        session.push(TEXT[3])  # the client resumes the session from the store: no replay
        assert session.words == TEXT[:4] and session.replays == 0
        assert same_steps(session.history, offline_steps(tiny_models["lstm"], TEXT[:4]))


def test_a_write_whose_reply_was_lost_is_sent_again_and_not_applied_twice(
    make_server: MakeServer, store: Redis, tiny_models: dict[str, Path]
) -> None:
    """The first attempt lands, its reply never arrives (the connection dies): the write is sent
    again on a new connection, the script sees its own write landed, and the word is stored once."""
    from tests.helpers import ReplyDroppingProxy

    proxy = ReplyDroppingProxy(store.socket)
    server: ServerThread = make_server(state_store=proxy.url)
    with Client(server.target) as client:
        session = client.session(history="full")
        session.open()
        for word in TEXT[:3]:
            session.push(word)
        proxy.armed = redis_ledger.SHAS["write"].encode()
        session.push(TEXT[3])
        assert proxy.dropped == 1
        assert stored_words(store, session.id) == 4
        for word in TEXT[4:]:
            session.push(word)
        assert stored_words(store, session.id) == len(TEXT)
        assert same_steps(session.history, offline_steps(tiny_models["lstm"], TEXT))


def test_a_take_lost_in_a_failover_cannot_leave_two_replicas_with_one_epoch(
    replicas: list[ServerThread], store: Redis
) -> None:
    """a takes the session (the take's count is 2); a failover loses that take (the store goes back
    to count 1); b takes it, reaching count 2 again. Epochs are <count>.<nonce>, so a's epoch is
    not b's and a's next write is fenced, where plain counters would have let both write."""
    a, b = replicas
    raw = redis.Redis(unix_socket_path=str(store.socket))
    with Client(a.target) as client:
        session = client.session()
        session.open()
        session.push(TEXT[0])
        session_id = session.id
    meta = redis_ledger.keys(session_id)[0]
    before = raw.hgetall(meta)
    held = Stream(a.target)
    held.send(resume=pb.Resume(session_id=session_id))  # a's take: gen 2
    assert raw.hget(meta, "gen") == b"2"
    raw.hset(meta, mapping={b"epoch": before[b"epoch"], b"gen": before[b"gen"]})  # the failover lost it
    raw.hset(meta, "attached", "0")
    with Client(b.target) as client:
        taken = client.resume(session_id)
        taken.open()  # b's take: gen 2 again
        assert raw.hget(meta, "gen") == b"2" and raw.hget(meta, "epoch") != a.service.store.get(session_id).epoch
        with pytest.raises(grpc.RpcError) as info:
            held.word("intruder")
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE and "held by another replica" in str(
            info.value.details()
        )
        taken.push(TEXT[1])
    assert stored_words(store, session_id) == 2


def test_a_wrong_store_password_stops_the_server_and_no_log_holds_a_password(
    tmp_path: Path, tiny_models: dict[str, Path]
) -> None:
    """The password comes from a file or the environment; a wrong one stops the server at start
    with a message that says so; the right one serves. No line of its output holds a password."""
    import os
    import subprocess
    import sys

    from tests.helpers import start_server_process

    secret, wrong = "s3cret-Store-Pass", "not-the-Password"
    locked = Redis(tmp_path / "locked", password=secret).start()
    models = tiny_models["lstm"].parent
    try:
        command = [sys.executable, "-m", "wordstream.server", "--port", "0", "--models", str(models)]
        command += ["--default-model", "tiny-lstm", "--state-store", locked.url]
        env = {**os.environ, "WORDSTREAM_STATE_STORE_PASSWORD": wrong}
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
        assert result.returncode == 1
        assert "refused this server's credentials" in result.stderr and "check the password" in result.stderr
        # A password in the URL is shown as *** wherever the URL is logged.
        tcp_url = f"redis://:{wrong}@127.0.0.1:1/0"  # nothing listens: the server starts, NOT_SERVING
        process, _ = start_server_process(
            models, "--default-model", "tiny-lstm", "--state-store", tcp_url, stderr=subprocess.PIPE
        )
        process.terminate()
        out, err = process.communicate(timeout=30)
        assert wrong not in out + err and "redis://:***@127.0.0.1:1/0" in err
        password_file = tmp_path / "password"
        password_file.write_text(secret + "\n")
        process, port = start_server_process(
            models,
            "--default-model",
            "tiny-lstm",
            "--state-store",
            locked.url,
            "--state-store-password-file",
            str(password_file),
            stderr=subprocess.PIPE,
        )
        try:
            with Client(f"localhost:{port}") as client:
                session = client.session()
                session.open()
                session.push("fine")
                assert stored_words(locked, session.id) == 1
        finally:
            process.terminate()
            _, err = process.communicate(timeout=30)
        assert secret not in err and '"event": "start"' in err  # the server logged, and no password
    finally:
        locked.stop()


def test_on_multiplex_a_fenced_session_gets_unavailable_in_band_and_the_stream_goes_on(
    replicas: list[ServerThread], store: Redis, tiny_models: dict[str, Path]
) -> None:
    from tests.test_multiplex import Mux

    a, b = replicas
    mux = Mux(a.target)
    taken, other = mux.open(), mux.open()
    mux.send(pb.Entry(session_id=taken, word=TEXT[0]), pb.Entry(session_id=other, word=TEXT[0]))
    with Client(b.target) as client:  # b takes one session over while a's stream still holds it
        resumed = client.resume(taken)
        resumed.open()
        resumed.push(TEXT[1])
        resumed.detach()
    results = mux.send(pb.Entry(session_id=taken, word="intruder"), pb.Entry(session_id=other, word=TEXT[1]))
    assert results[0][0].error.code == "UNAVAILABLE" and "held by another replica" in results[0][0].error.message
    assert results[1][0].word.word_index == 1  # the other session, in the same request, goes on
    assert mux.send(pb.Entry(session_id=taken, word="x"))[0][0].error.code == "FAILED_PRECONDITION"  # resume it
    resumed_here = mux.send(pb.Entry(session_id=taken, resume=pb.Resume()))[0][0]
    assert resumed_here.opened.position.words == 2  # taken back through the store, with b's word
    assert mux.send(pb.Entry(session_id=taken, word=TEXT[2]))[0][0].word.word_index == 2
    assert stored_words(store, taken) == 3 and stored_words(store, other) == 2
    mux.end()


def test_the_multiplexer_carries_its_sessions_through_a_store_outage(
    make_server: MakeServer, store: Redis, tiny_models: dict[str, Path]
) -> None:
    """The store is down longer than --store-timeout: each word is answered UNAVAILABLE in-band; the
    client resumes its session once the store is back and sends the word again."""
    a = make_server(state_store=store.url, store_timeout=0.3, store_check_interval=0.1)

    async def run() -> None:
        async with AsyncClient(a.target, reconnect_timeout=20) as client, client.multiplexer() as mux:
            ids = [await mux.open(history="none") for _ in range(5)]
            await asyncio.gather(*(mux.push(i, TEXT[0]) for i in ids))
            store.stop()
            pushes = asyncio.gather(*(mux.push(i, TEXT[1]) for i in ids))  # UNAVAILABLE in-band meanwhile
            await asyncio.sleep(1.5)
            store.start()
            await pushes  # each entry sent again once its session is resumed: nothing lost
            assert mux.retried == len(ids)
            for i in ids:
                assert mux.words(i) == TEXT[:2]
                record = await client.get_session(i)
                assert same_steps(record["history"], offline_steps(tiny_models["lstm"], TEXT[:2]))

    asyncio.run(run())
