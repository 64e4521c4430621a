"""The client library against a real server: sync and asyncio, re-attach and replay."""

from __future__ import annotations

import asyncio

import pytest

from tests.helpers import MakeServer, ServerThread, output_of
from wordstream.client import AsyncClient, AsyncSession, Client, InvalidRequest, LimitReached, NotFound, Unavailable

WORDS = "the plot is dull but the cast is great!".split()


def test_push_rewind_and_history_equals_get_session(server: ServerThread) -> None:
    client = Client(server.target)
    with client.session() as session:
        results = [session.push(word) for word in WORDS]
        assert [r.word for r in results] == WORDS
        assert results[-1].tokens[-1].text == "!" and len(results[-1].steps) == 2
        assert set(output_of(results[0]).probabilities) == {"negative", "positive"}
        assert abs(sum(output_of(results[0]).probabilities.values()) - 1) < 1e-5
        assert session.history == client.get_session(session.id)["history"]
        session.rewind(3)
        assert session.words == WORDS[:-3]
        assert session.history == client.get_session(session.id)["history"]
        pasted = session.push_text("is fun")
        assert [r.word for r in pasted] == ["is", "fun"]
        assert session.history == client.get_session(session.id)["history"]
        session.reset()
        assert session.history == [] and session.words == []
        session_id = session.id
    with pytest.raises(NotFound, match="not found"):
        client.get_session(session_id)  # closed on leaving the with block
    client.close()
    with pytest.raises(Unavailable, match="client is closed"):
        client.models()


@pytest.mark.parametrize("mode", ["full", "none"])
def test_history_modes_give_the_same_record(server: ServerThread, mode: str) -> None:
    with Client(server.target) as client, client.session(history=mode) as session:
        for word in WORDS:
            session.push(word)
        session.rewind(2)
        session.push("fun")
        assert session.history == client.get_session(session.id)["history"]


def test_errors_are_client_exceptions(server: ServerThread) -> None:
    with Client(server.target) as client:
        with pytest.raises(NotFound, match="unknown model 'nope'"):
            with client.session(model="nope"):
                pass
        with client.session() as session:
            session.push("fine")
            with pytest.raises(InvalidRequest, match="empty word"):
                session.push(" ")
            with pytest.raises(InvalidRequest, match="cannot rewind 4 words"):
                session.rewind(4)
            assert session.push("film").word_index == 1  # the session survived both


def test_limit_reached(make_server: MakeServer) -> None:
    server = make_server(max_steps=2)
    with Client(server.target) as client, client.session() as session:
        session.push("a")
        session.push("b")
        with pytest.raises(LimitReached, match="limit of 2 steps"):
            session.push("c")


def test_reattach_after_a_dropped_connection(server: ServerThread) -> None:
    with Client(server.target) as client, client.session() as session:
        for word in WORDS[:4]:
            session.push(word)
        before = session.history
        session_id = session.id
        client._run(_drop(session._inner))  # the stream dies under the session
        result = session.push(WORDS[4])
        assert session.id == session_id and session.replays == 0
        assert result.word_index == 4 and session.history[:-1] == before


async def _drop(inner: AsyncSession) -> None:
    inner._call.cancel()


def test_replay_after_the_server_lost_the_session(make_server: MakeServer) -> None:
    first = make_server()
    replays: list[tuple[str, str, int]] = []
    with Client(first.target) as client, client.session(on_replay=lambda *a: replays.append(a)) as session:
        for word in WORDS[:5]:
            session.push(word)
        before = session.history
        old_id = session.id
        first.stop()  # a restart without saved state: the server's memory is gone
        second = make_server(port=first.port)
        result = session.push(WORDS[5])
        assert replays == [(old_id, session.id, 5)] and session.id != old_id and session.replays == 1
        assert session.history[:-1] == before
        assert result.word_index == 5
        assert session.history == client.get_session(session.id)["history"]
        assert len(second.service.store) == 1


def test_async_client(server: ServerThread) -> None:
    async def scenario() -> None:
        async with AsyncClient(server.target) as client:
            models, default = await client.models()
            assert default == "tiny-lstm" and {m.name for m in models} == {"tiny-gru", "tiny-lstm", "tiny-rnn"}
            assert await client.health() == "SERVING"

            async def one(text: str) -> list[str]:
                async with client.session(model="tiny-gru") as session:
                    labels = [output_of(await session.push(word)).label for word in text.split()]
                    assert await session.history() == (await client.get_session(session.id))["history"]
                    return labels

            results = await asyncio.gather(*(one(" ".join(WORDS[: n + 2])) for n in range(6)))
            assert [len(r) for r in results] == [2, 3, 4, 5, 6, 7]
            assert all(r[:2] == results[0] for r in results)  # same prefix, same outputs

    asyncio.run(scenario())


def test_a_token_is_not_sent_in_plaintext_beyond_this_machine() -> None:
    """A bearer token over a plaintext channel: fine to loopback (localhost, 127.0.0.0/8, ::1, a
    unix socket), refused elsewhere with a message that says what to do, unless the caller says so."""
    from wordstream.client import InsecureToken
    from wordstream.client._async import is_loopback

    for target in ("localhost:50051", "127.0.0.1:1", "127.8.9.10:50051", "[::1]:50051", "unix:/tmp/ws.sock"):
        assert is_loopback(target), target
        Client(target, token="t").close()
    for target in ("10.0.0.5:50051", "wordstream.example:443", "[2001:db8::1]:50051", "dns:///envoy:50051"):
        assert not is_loopback(target), target
        with pytest.raises(InsecureToken, match="refusing to send a bearer token in plaintext to .*--insecure-token"):
            Client(target, token="t")
        with pytest.raises(InsecureToken):
            AsyncClient(target, token="t")
        Client(target, token="t", insecure_token=True).close()  # the caller said so
        Client(target, token="t", tls=True).close()  # TLS: the token is encrypted
        Client(target).close()  # no token: nothing to leak
