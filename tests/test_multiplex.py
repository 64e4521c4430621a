"""rpc Multiplex: many sessions on one stream, against real servers, channels and tiny models.

The tests behind Envoy and on a shared Redis are in test_cluster.py and test_store.py.
"""

from __future__ import annotations

import asyncio
import queue
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import numpy as np

from tests.helpers import TEXT, MakeServer, ServerThread, Stream, offline_steps, poll, same_steps
from wordstream.client import AsyncClient, errors
from wordstream.client.types import Step
from wordstream.server.answers import WordAnswers
from wordstream.server.multiplex import Multiplexed
from wordstream.server.transport import _MODES
from wordstream.shared import new_session_id
from wordstream.v1 import wordstream_pb2 as pb
from wordstream.v1 import wordstream_pb2_grpc as pb_grpc


class Mux:
    """A raw Multiplex stream driven request by request (a thread feeds the requests)."""

    def __init__(self, target: str, metadata: tuple[tuple[str, str], ...] = ()) -> None:
        self.channel = grpc.insecure_channel(target)
        self.requests: queue.Queue[pb.MultiplexRequest | None] = queue.Queue()
        stub = pb_grpc.WordstreamStub(self.channel)
        self.responses = stub.Multiplex(self._iter(), metadata=metadata)
        self.seq = 0

    def _iter(self) -> Iterator[pb.MultiplexRequest]:
        while (request := self.requests.get()) is not None:
            yield request

    def send(self, *entries: pb.Entry, answers: int | None = None) -> dict[int, list[pb.StreamResponse]]:
        """Send the entries (numbered here) in one request; their results by the entries' order."""
        for entry in entries:
            self.seq += 1
            entry.seq = self.seq
        self.requests.put(pb.MultiplexRequest(entries=entries))
        wanted = len(entries) if answers is None else answers
        got: dict[int, list[pb.StreamResponse]] = {}
        while sum(map(len, got.values())) < wanted:
            for result in next(self.responses).results:
                got.setdefault(result.seq, []).append(result)
        return {i: got.get(entry.seq, []) for i, entry in enumerate(entries)}

    def open(self, session_id: str | None = None, history: pb.HistoryMode = pb.HISTORY_MODE_DELTA) -> str:
        opened = self.send(pb.Entry(session_id=session_id or "", open=pb.Open(history=history)))[0][0]
        assert opened.WhichOneof("kind") == "opened", opened
        return opened.session_id

    def end(self) -> None:
        self.requests.put(None)
        self.channel.close()


def words_for(n: int) -> list[str]:
    """A different text for each session: TEXT from its own place."""
    return [TEXT[(n * 3 + i) % len(TEXT)] for i in range(8)]


def equal_histories(a: list[Step], b: list[Step]) -> bool:
    """Two histories step by step: the same tokens and words, outputs and states (float32 noise aside:
    a batched model call may round differently from a lone one)."""
    assert len(a) == len(b), (len(a), len(b))
    for x, y in zip(a, b):
        assert (x.index, x.word_index, x.word, x.token) == (y.index, y.word_index, y.word, y.token)
        np.testing.assert_allclose(
            list(x.output.probabilities.values()), list(y.output.probabilities.values()), atol=1e-6
        )
        for name in x.state:
            np.testing.assert_allclose(np.array(x.state[name]), np.array(y.state[name]), atol=1e-6)
    return True


def test_100_sessions_interleaved_on_one_stream_equal_their_own_streams(
    server: ServerThread, tiny_models: dict[str, Path]
) -> None:
    texts = [words_for(n) for n in range(100)]

    async def run() -> tuple[list[list[Step]], list[list[Step]]]:
        async with AsyncClient(server.target) as client, client.multiplexer() as mux:
            ids = await asyncio.gather(*(mux.open(history="full") for _ in texts))
            for i in range(8):  # one word of every session per round: one request of 100 entries
                results = await asyncio.gather(*(mux.push(sid, text[i]) for sid, text in zip(ids, texts)))
                assert [r.word_index for r in results] == [i] * 100
            multiplexed = [(await client.get_session(sid))["history"] for sid in ids]
            own = []
            for text in texts[:10]:  # the same words on a session's own stream
                async with client.session(history="full") as session:
                    for word in text:
                        await session.push(word)
                    own.append(await session.history())
            return multiplexed, own

    multiplexed, own = asyncio.run(run())
    for history, mine in zip(multiplexed, own):
        assert equal_histories(history, mine)
    for history, text in zip(multiplexed, texts):
        assert same_steps(history, offline_steps(tiny_models["lstm"], text))
    assert server.service.metrics.batch_size.count > 0


def test_each_bad_entry_gets_its_own_error_and_nothing_else_changes(make_server: MakeServer) -> None:
    server = make_server(tokens="alice-token,bob-token")
    alice = Mux(server.target, (("authorization", "Bearer alice-token"),))
    bob = Mux(server.target, (("authorization", "Bearer bob-token"),))
    good, bobs = alice.open(), bob.open()
    alice.send(pb.Entry(session_id=good, word="good"))
    unknown = new_session_id()
    results = alice.send(
        pb.Entry(session_id=unknown, word="good"),  # well formed, not open here
        pb.Entry(session_id=unknown, resume=pb.Resume()),  # unknown anywhere
        pb.Entry(session_id=good, word=" "),  # empty word
        pb.Entry(session_id=bobs, resume=pb.Resume()),  # another token's session
        pb.Entry(session_id=bobs, word="bad"),
        pb.Entry(session_id="not an id!", word="good"),  # malformed id
        pb.Entry(session_id=good),  # no kind
        pb.Entry(word="good"),  # no session
        pb.Entry(session_id=good, open=pb.Open()),  # already open here
        pb.Entry(session_id=good, rewind=pb.Rewind(words=5)),  # past the start
        pb.Entry(session_id=good, open=pb.Open(model="no-such-model")),
    )
    codes = [r[0].error.code for r in results.values()]
    assert codes == [
        "FAILED_PRECONDITION",
        "NOT_FOUND",
        "INVALID_ARGUMENT",
        "NOT_FOUND",
        "FAILED_PRECONDITION",
        "INVALID_ARGUMENT",
        "INVALID_ARGUMENT",
        "INVALID_ARGUMENT",
        "FAILED_PRECONDITION",
        "INVALID_ARGUMENT",
        "FAILED_PRECONDITION",
    ], results
    assert all(len(r) == 1 for r in results.values())  # one error each, nothing else
    assert "not open on this stream" in results[0][0].error.message
    # Nothing changed: each session goes on where it was, on the same streams.
    word = alice.send(pb.Entry(session_id=good, word="fine"))[0][0]
    assert word.word.word_index == 1 and word.session_id == good
    assert bob.send(pb.Entry(session_id=bobs, word="bad"))[0][0].word.word_index == 0
    alice.end()
    bob.end()


def test_a_paste_answers_each_word_and_the_session_kinds_all_work(server: ServerThread) -> None:
    mux = Mux(server.target)
    session = mux.open()
    pasted = mux.send(pb.Entry(session_id=session, paste=pb.Paste(words=TEXT[:5])), answers=5)[0]
    assert [r.word.word_index for r in pasted] == [0, 1, 2, 3, 4]
    rewound = mux.send(pb.Entry(session_id=session, rewind=pb.Rewind(words=2)))[0][0]
    assert rewound.rewound.words == 3
    assert mux.send(pb.Entry(session_id=session, reset=pb.Reset()))[0][0].rewound.words == 0
    closed = mux.send(pb.Entry(session_id=session, close=pb.Close()))[0][0]
    assert closed.WhichOneof("kind") == "closed"
    gone = mux.send(pb.Entry(session_id=session, resume=pb.Resume()))[0][0]
    assert gone.error.code == "NOT_FOUND"
    chosen = mux.send(pb.Entry(open=pb.Open()))[0][0]  # the server picks the id
    assert len(chosen.session_id) >= 22 and chosen.opened.position.words == 0
    mux.end()


def test_a_session_moves_between_multiplex_and_its_own_stream(server: ServerThread) -> None:
    async def run() -> None:
        async with AsyncClient(server.target) as client:
            async with client.multiplexer() as mux:
                sid = await mux.open()
                await mux.push(sid, "good")
                await mux.detach(sid)
            own = client.resume(sid)  # on its own stream
            await own.open()
            assert own.words == ["good"]
            assert (await own.push("film")).word_index == 1
            await own.detach()
            async with client.multiplexer() as mux:  # and back
                opened = await mux.resume(sid)
                assert opened.resumed and opened.position.words == 2
                assert (await mux.push(sid, "fun")).word_index == 2
                assert mux.words(sid) == ["good", "film", "fun"]
            record = await client.get_session(sid)
            assert record["words"] == 3 and not record["attached"]  # the stream's end detached it
            fresh = client.session()  # opened on its own stream, resumed on a Multiplex one
            await fresh.open()
            await fresh.push("bad")
            await fresh.detach()
            async with client.multiplexer() as mux:
                await mux.resume(fresh.id)
                assert (await mux.push(fresh.id, "plot")).word_index == 1
                await mux.close(fresh.id)
            with_busy = client.multiplexer()
            async with client.session() as held, with_busy:  # attached to a stream: busy elsewhere
                try:
                    await with_busy.resume(held.id)
                    raise AssertionError("a session attached elsewhere was resumed")
                except errors.SessionBusy:
                    pass

    asyncio.run(run())


def test_detach_then_resume_on_another_multiplex_stream(server: ServerThread) -> None:
    first, second = Mux(server.target), Mux(server.target)
    sid = first.open()
    first.send(pb.Entry(session_id=sid, word="good"))
    busy = second.send(pb.Entry(session_id=sid, resume=pb.Resume()))[0][0]
    assert busy.error.code == "FAILED_PRECONDITION"  # still attached to the first stream
    detached = first.send(pb.Entry(session_id=sid, detach=pb.Detach()))[0][0]
    assert detached.detached.words == 1
    assert first.send(pb.Entry(session_id=sid, word="x"))[0][0].error.code == "FAILED_PRECONDITION"
    resumed = second.send(pb.Entry(session_id=sid, resume=pb.Resume()))[0][0]
    assert resumed.opened.resumed and resumed.opened.position.words == 1
    assert second.send(pb.Entry(session_id=sid, word="film"))[0][0].word.word_index == 1
    first.end()
    second.end()


def test_the_in_flight_bound_holds_back_the_stream_and_nothing_is_dropped(make_server: MakeServer) -> None:
    server = make_server(multiplex_max_inflight=5)
    pulled: list[int] = []

    async def run() -> None:
        service = server.service
        counts: list[str] = []
        answers = {name: WordAnswers(model) for name, model in service.models.items()}
        mux = Multiplexed(service, answers, None, _MODES, lambda error: counts.append(str(error)))
        ids = [new_session_id() for _ in range(3)]

        async def requests() -> AsyncIterator[pb.MultiplexRequest]:
            yield pb.MultiplexRequest(
                entries=[pb.Entry(seq=i, session_id=s, open=pb.Open()) for i, s in enumerate(ids)]
            )
            for n in range(20):
                pulled.append(n)
                yield pb.MultiplexRequest(
                    entries=[pb.Entry(seq=100 + 3 * n + i, session_id=s, word=TEXT[n % 10]) for i, s in enumerate(ids)]
                )

        reader = asyncio.ensure_future(mux.read(requests()))
        await asyncio.sleep(0.5)  # nobody reads the answers meanwhile
        assert mux.inflight <= 5 and len(pulled) <= 2, (mux.inflight, pulled)
        seen: dict[int, int] = {}
        while (item := await mux.next_response()) is not None:
            data, entries = item
            for result in pb.MultiplexResponse.FromString(data).results:
                seen[result.seq] = seen.get(result.seq, 0) + 1
                assert mux.inflight <= 5
            mux.sent(entries)
        await reader
        assert sorted(seen) == [0, 1, 2, *range(100, 160)] and set(seen.values()) == {1}
        for session_id in ids:  # every word read, in order
            session = service.store.find(session_id)
            assert session is not None and session.words == [TEXT[n % 10] for n in range(20)]
        mux.stop()
        assert not counts

    server.call(run())
    assert len(pulled) == 20


def test_a_request_over_the_bound_is_refused_entry_by_entry(make_server: MakeServer) -> None:
    server = make_server(multiplex_max_inflight=4)
    mux = Mux(server.target)
    sid = mux.open()
    results = mux.send(*(pb.Entry(session_id=sid, word="good") for _ in range(5)))
    assert {r[0].error.code for r in results.values()} == {"RESOURCE_EXHAUSTED"}
    assert mux.send(pb.Entry(session_id=sid, word="good"))[0][0].word.word_index == 0  # the stream goes on
    mux.end()


def test_one_busy_session_does_not_hold_the_others_back(server: ServerThread) -> None:
    async def run() -> None:
        async with AsyncClient(server.target) as client, client.multiplexer() as mux:
            busy, quick = await mux.open(history="none"), await mux.open(history="none")
            paste = asyncio.ensure_future(mux.paste(busy, (TEXT * 300)[:3000]))
            await asyncio.sleep(0.01)
            words = [await mux.push(quick, word) for word in TEXT]  # each answered while the paste runs
            assert not paste.done() and len(words) == len(TEXT)
            assert len(await paste) == 3000

    asyncio.run(run())


def test_the_stream_ending_detaches_its_sessions(server: ServerThread) -> None:
    mux = Mux(server.target)
    sid = mux.open()
    mux.send(pb.Entry(session_id=sid, word="good"))
    mux.end()
    with grpc.insecure_channel(server.target) as channel:
        stub = pb_grpc.WordstreamStub(channel)
        poll(lambda: not stub.GetSession(pb.GetSessionRequest(session_id=sid)).attached, "the session detached")


def test_multiplex_answers_equal_the_stream_answers_byte_for_byte(server: ServerThread) -> None:
    """The word answers in a MultiplexResponse are the bytes a session's own stream sends."""
    mux = Mux(server.target)
    sid = mux.open(history=pb.HISTORY_MODE_FULL)
    stream = Stream(server.target)
    own = stream.send(open=pb.Open(history=pb.HISTORY_MODE_FULL))
    for i, word in enumerate(TEXT[:6]):
        a = mux.send(pb.Entry(session_id=sid, word=word))[0][0]
        b = stream.word(word)
        assert a.word == b.word and a.session_id == sid and b.session_id == own.session_id
        np.testing.assert_array_equal(a.word.output.probabilities, b.word.output.probabilities)
        assert a.word.word_index == i
    mux.end()
    stream.end()


def test_sessions_a_restarted_server_lost_are_replayed_and_keep_their_words(
    make_server: MakeServer, tiny_models: dict[str, Path]
) -> None:
    """No store: the restarted server has lost every session. The Multiplexer reopens its stream,
    replays each session's words into a new one (telling that session's on_replay), goes on naming
    it by the old id, and the word that was waiting is answered as an uninterrupted session's."""
    first = make_server()
    told: list[tuple[str, str, int]] = []

    async def run() -> None:
        async with AsyncClient(first.target, reconnect_timeout=20) as client, client.multiplexer() as mux:
            ids = [await mux.open(on_replay=lambda *a: told.append(a)) for _ in range(3)]
            for n, session_id in enumerate(ids):
                for word in words_for(n)[:3]:
                    await mux.push(session_id, word)
            first.stop()
            make_server(port=first.port)
            results = await asyncio.gather(*(mux.push(i, words_for(n)[3]) for n, i in enumerate(ids)))
            assert mux.replays == 3 and sorted((old, words) for old, _, words in told) == sorted((i, 3) for i in ids)
            renamed = {old: new for old, new, _ in told}
            for n, (old, result) in enumerate(zip(ids, results)):
                assert mux.current(old) == renamed[old] == result.session_id != old
                assert mux.words(old) == words_for(n)[:4]
                expected = offline_steps(tiny_models["lstm"], words_for(n)[:4])
                assert same_steps(await mux.history(old), expected)
            await mux.rewind(ids[0], 2)  # the old id goes on naming the session
            assert mux.words(ids[0]) == words_for(0)[:2]
            await mux.close(ids[0])
            assert mux.current(ids[0]) == ids[0] and renamed[ids[0]] not in mux.sessions  # nothing kept of it

    asyncio.run(run())


def test_a_server_away_longer_than_the_reconnect_timeout_fails_the_words_then_the_stream_comes_back(
    make_server: MakeServer, tiny_models: dict[str, Path]
) -> None:
    """The server is down for longer than reconnect_timeout: the word waiting fails UNAVAILABLE (and
    is never sent later). Once the server is back (without a store: the session was lost), the next
    word recovers the stream, replays the session and is answered as an uninterrupted session's."""
    first = make_server()

    async def run() -> None:
        async with AsyncClient(first.target, reconnect_timeout=1) as client, client.multiplexer() as mux:
            session_id = await mux.open()
            for word in TEXT[:3]:
                await mux.push(session_id, word)
            first.stop()
            try:
                await mux.push(session_id, TEXT[3])
                raise AssertionError("a word was answered with the server down")
            except errors.Unavailable:
                pass
            make_server(port=first.port)
            result = await mux.push(session_id, TEXT[4])
            assert mux.replays == 1 and result.word_index == 3  # TEXT[3] was never sent: not in the session
            assert mux.words(session_id) == TEXT[:3] + [TEXT[4]]
            expected = offline_steps(tiny_models["lstm"], TEXT[:3] + [TEXT[4]])
            assert same_steps(await mux.history(session_id), expected)

    asyncio.run(run())


def test_a_round_of_more_entries_than_the_server_takes_at_once_leaves_in_requests_it_takes(
    make_server: MakeServer,
) -> None:
    """The server takes at most 8 entries in flight and refuses a request of more whole. 30 sessions
    typing in the same round through a Multiplexer of max_entries 8: every word is answered."""
    server = make_server(multiplex_max_inflight=8)

    async def run() -> None:
        async with AsyncClient(server.target) as client, client.multiplexer(max_entries=8) as mux:
            ids = await asyncio.gather(*(mux.open() for _ in range(30)))
            results = await asyncio.gather(*(mux.push(i, "good") for i in ids))
            assert [r.word_index for r in results] == [0] * 30
            assert all(mux.words(i) == ["good"] for i in ids)

    asyncio.run(run())
