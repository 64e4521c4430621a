"""Micro-batching and the state bank against real tiny models; metrics over real HTTP."""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import MakeServer, ServerThread, offline_prefix_probs, output_of
from wordstream.client import AsyncClient
from wordstream.modelfile import load_model
from wordstream.server.batching import Batcher
from wordstream.server.statebank import StateBank

TEXTS = [
    f"the film is {a} and {b} but {c}".split()
    for a in ("great", "dull")
    for b in ("fun", "flat")
    for c in ("smart", "silly", "warm")
]


@pytest.mark.parametrize("batching", [True, False])
def test_concurrent_sessions_each_equal_their_offline_run(
    make_server: MakeServer, tiny_models: dict[str, Path], batching: bool
) -> None:
    server: ServerThread = make_server(batching=batching, default_model="tiny-gru")

    async def one(client: AsyncClient, words: list[str]) -> list[list[float]]:
        async with client.session() as session:
            return [list(output_of(await session.push(w)).probabilities.values()) for w in words]

    async def scenario() -> list[list[list[float]]]:
        async with AsyncClient(server.target) as client:
            return await asyncio.gather(*(one(client, words) for words in TEXTS))

    results = asyncio.run(scenario())
    for words, got in zip(TEXTS, results):
        np.testing.assert_allclose(got, offline_prefix_probs(tiny_models["gru"], words), atol=1e-5)
    count, total = server.service.metrics.batch_size.count, server.service.metrics.batch_size.sum
    steps = sum(len(w) for w in TEXTS)
    assert total == steps
    if batching:
        assert count < steps  # some calls carried several sessions
    else:
        assert count == steps


def test_a_cancelled_step_does_not_advance_its_slot(tiny_models: dict[str, Path]) -> None:
    model = load_model(tiny_models["lstm"])
    bank = StateBank(model.states, capacity=2)

    async def scenario() -> None:
        batcher = Batcher(model, bank)
        a, b = bank.alloc(), bank.alloc()
        first = asyncio.create_task(batcher.step(a, 5))
        second = asyncio.create_task(batcher.step(b, 6))
        await asyncio.sleep(0)  # both are queued; the drain is due
        second.cancel()
        row = await first
        with pytest.raises(asyncio.CancelledError):
            await second
        assert all(not v.any() for v in bank.get(b).values())  # b was not advanced
        expected, expected_state = model.run(np.array([5], np.int64), model.initial_state(1))
        np.testing.assert_allclose(row[: len(model.labels)], expected[0], atol=1e-6)
        for name, value in bank.get(a).items():
            np.testing.assert_allclose(value, expected_state[name][:, 0], atol=1e-6)
        bank.release(b)
        assert bank.alloc() == b and bank.capacity == 2
        bank.alloc()  # full: the bank grows
        assert bank.capacity == 66
        np.testing.assert_allclose(bank.get(a)["h"], expected_state["h"][:, 0], atol=1e-6)

    asyncio.run(scenario())


def test_a_slot_freed_during_a_call_is_reused_only_after_it(tiny_models: dict[str, Path]) -> None:
    model = load_model(tiny_models["rnn"])
    bank = StateBank(model.states, capacity=1)

    async def scenario() -> None:
        batcher = Batcher(model, bank)
        slot = bank.alloc()
        step = asyncio.create_task(batcher.step(slot, 7))
        await asyncio.sleep(0)
        bank.release(slot)  # the session is closed while its step waits
        other = bank.alloc()
        assert other != slot  # not handed out while held
        await step
        assert bank.alloc() == slot  # free once the call has scattered

    asyncio.run(scenario())


def test_metrics_endpoint(make_server: MakeServer) -> None:
    server: ServerThread = make_server(metrics_port=0)

    async def scenario() -> None:
        async with AsyncClient(server.target) as client, client.session() as session:
            await session.push("fine")
            await session.push("film!")
            with pytest.raises(Exception, match="empty word"):
                await session.push(" ")
            await session.push("fine")  # its tokens are remembered

    asyncio.run(scenario())
    port = server.running.metrics_port
    body = urllib.request.urlopen(f"http://localhost:{port}/metrics", timeout=10).read().decode()
    assert "wordstream_words_total 3.0" in body
    assert 'wordstream_errors_total{code="INVALID_ARGUMENT"} 1.0' in body
    assert "wordstream_batch_size_sum 4.0" in body  # four steps: fine, film, !, fine
    assert "wordstream_word_latency_seconds_count 3.0" in body
    assert "wordstream_token_cache_hits_total 1.0" in body and "wordstream_token_cache_misses_total 3.0" in body
    assert "wordstream_live_sessions 0.0" in body  # closed on leaving the block


def test_steps_queued_behind_a_full_batch_are_never_stranded(tiny_models: dict[str, Path]) -> None:
    model = load_model(tiny_models["gru"])
    bank = StateBank(model.states)

    async def scenario() -> None:
        batcher = Batcher(model, bank, max_batch=3)
        slots = [bank.alloc() for _ in range(8)]
        for _ in range(20):  # many rounds: full batches leave steps behind for the next drain
            await asyncio.wait_for(asyncio.gather(*(batcher.step(s, 5) for s in slots)), timeout=10)

    asyncio.run(scenario())


def test_max_wait_lets_a_step_wait_for_company(tiny_models: dict[str, Path]) -> None:
    model = load_model(tiny_models["rnn"])
    bank = StateBank(model.states)
    sizes: list[int] = []

    async def scenario() -> None:
        batcher = Batcher(model, bank, max_wait=0.2, observe=sizes.append)
        a, b = bank.alloc(), bank.alloc()
        first = asyncio.create_task(batcher.step(a, 5))
        await asyncio.sleep(0)  # the first step is queued and its call is due in 0.2 s: the second joins it
        second = asyncio.create_task(batcher.step(b, 6))
        await asyncio.wait_for(asyncio.gather(first, second), timeout=10)
        assert sizes == [2]
        await asyncio.wait_for(batcher.step(a, 7), timeout=10)  # alone, it runs once the wait is over
        assert sizes == [2, 1]

    asyncio.run(scenario())


def test_a_slot_freed_during_a_sequence_is_reused_only_after_it(tiny_models: dict[str, Path]) -> None:
    model = load_model(tiny_models["gru"])
    bank = StateBank(model.states)

    async def scenario() -> None:
        batcher = Batcher(model, bank)
        slot = bank.alloc()
        paste = asyncio.create_task(batcher.sequence(slot, [5] * 10))
        await asyncio.sleep(0)  # the first token is queued
        bank.release(slot)  # the session is closed in the middle of its paste
        handed_out = []
        while not paste.done():
            handed_out.append(bank.alloc())  # sessions opened meanwhile
            await asyncio.sleep(0)
        assert slot not in handed_out
        assert bank.alloc() == slot  # free once the paste is over

    asyncio.run(scenario())


def test_sessions_closed_mid_paste_do_not_disturb_new_sessions(
    make_server: MakeServer, tiny_models: dict[str, Path]
) -> None:
    """A session closed by CloseSession while its paste still runs, and new sessions opened
    right then (they may get its state slot): each new session's outputs still equal the
    offline run of its own words."""
    import grpc

    from wordstream.v1 import wordstream_pb2 as pb
    from wordstream.v1 import wordstream_pb2_grpc as pb_grpc

    server: ServerThread = make_server(default_model="tiny-gru")
    words = TEXTS[0] + TEXTS[5]

    async def closed_mid_paste(stub: pb_grpc.WordstreamStub, closed: asyncio.Event) -> bool:
        """True if the close landed while the paste ran (the paste then ends with NOT_FOUND)."""
        call = stub.Stream()
        await call.write(pb.StreamRequest(open=pb.Open()))
        session_id = (await call.read()).session_id
        await call.write(pb.StreamRequest(paste=pb.Paste(words=words * 20)))
        await stub.CloseSession(pb.CloseSessionRequest(session_id=session_id))
        closed.set()
        try:
            answer = await call.read()  # a paste is answered once all its words are read
        except grpc.aio.AioRpcError as e:
            assert e.code() == grpc.StatusCode.NOT_FOUND
            return True
        assert answer.WhichOneof("kind") == "word"  # the paste beat the close this time
        call.cancel()
        return False

    async def typed(stub: pb_grpc.WordstreamStub, closed: asyncio.Event) -> list[list[float]]:
        await closed.wait()
        call = stub.Stream()
        await call.write(pb.StreamRequest(open=pb.Open()))
        await call.read()
        out = []
        for word in words:
            await call.write(pb.StreamRequest(word=word))
            out.append(list((await call.read()).word.output.probabilities))
        await call.done_writing()
        return out

    async def scenario() -> tuple[list[bool], list[list[list[float]]]]:
        async with grpc.aio.insecure_channel(server.target) as channel:
            stub = pb_grpc.WordstreamStub(channel)
            mid_paste: list[bool] = []
            typed_outputs: list[list[list[float]]] = []
            for _ in range(5):
                closed = asyncio.Event()
                landed, *outputs = await asyncio.gather(
                    closed_mid_paste(stub, closed), *(typed(stub, closed) for _ in range(3))
                )
                mid_paste.append(bool(landed))
                typed_outputs += [output for output in outputs if isinstance(output, list)]
            return mid_paste, typed_outputs

    mid_paste, outputs = asyncio.run(asyncio.wait_for(scenario(), 120))
    assert any(mid_paste), "no close landed while its paste ran: the scenario tested nothing"
    expected = offline_prefix_probs(tiny_models["gru"], words)
    for got in outputs:
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_a_word_alone_runs_at_once_and_a_round_of_words_still_rides_together(tiny_models: dict[str, Path]) -> None:
    """A lone word's step runs in its own task without yielding to the loop; when several words
    come in one round, the first runs at once and the rest ride in one call; every row is the
    model's own answer for its slot."""
    model = load_model(tiny_models["lstm"])
    bank = StateBank(model.states)
    sizes: list[int] = []

    async def scenario() -> None:
        batcher = Batcher(model, bank, observe=sizes.append)
        slots = [bank.alloc() for _ in range(4)]
        others_ran: list[bool] = []
        asyncio.get_running_loop().call_soon(others_ran.append, True)
        [row] = await batcher.sequence(slots[0], [5])  # alone: no Future, so the callback has not run
        assert others_ran == [] and sizes == [1]
        expected, _ = model.run(np.array([5], np.int64), model.initial_state(1))
        np.testing.assert_allclose(row[: len(model.labels)], expected[0], atol=1e-6)
        await asyncio.sleep(0)  # the next round of the loop
        rows = await asyncio.gather(*(batcher.sequence(slot, [6]) for slot in slots[1:]))
        assert sizes == [1, 1, 2]  # the first of the round at once, the other two in one call
        expected, _ = model.run(np.array([6], np.int64), model.initial_state(1))
        for [row] in rows:
            np.testing.assert_allclose(row[: len(model.labels)], expected[0], atol=1e-6)
        rows = await asyncio.gather(*(batcher.sequence(slot, [7]) for slot in slots))
        assert sizes[3:] == [4]  # the last call carried two rows: every step queues, all four in one call

    asyncio.run(scenario())
