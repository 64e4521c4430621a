"""Cross-session micro-batching of model calls.

The :class:`Batcher` is Triton's sequence batcher with the "oldest" strategy: the steps
waiting at the moment a model call starts go into one ONNX Runtime call, at most one
step per session (a session's next token waits for its previous one), each session's
order preserved, at most ``max_batch`` rows. With nothing else waiting, a word's step runs at
once (:meth:`Batcher.sequence`); ``max_wait`` (seconds, default 0) lets a lone step wait for
company. No grpc here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from wordstream.modelfile import StepModel
from wordstream.server.statebank import StateBank

# A step's output and new state as one float32 row: [probabilities | each state tensor flattened,
# in the model's order] (history.py keeps the same rows); a batch's rows are one (n, width) array.
Row = np.ndarray
Rows = np.ndarray


@dataclass
class _Group:
    """Steps of distinct slots that wait, ride and are answered together: one Future for all."""

    slots: list[int]
    token_ids: list[int]
    future: asyncio.Future[Rows]


BatchObserver = Callable[[int], None]  # called with each batch's size


class Batcher:
    """Runs steps of one model, batching across sessions (or one call per step when disabled).

    Model calls run on the event loop's own thread, between two rounds of callbacks: a step
    of these models at batch 1 costs about as much as handing it to a worker thread and back
    would add (``python -m bench.run`` measures both: ort_step_b1_us, thread_handoff_us), and
    the loop has nothing else to do meanwhile that would not wait for the GIL anyway. Every
    step that became ready in the same round of the loop joins the same call; while a call
    runs, the next round's steps gather behind it. A much larger model would want the call
    on a thread again.

    Work is queued in groups: a lone step (one stream's word) is a group of one; a Multiplex
    request's words are one group of many sessions, whose rows ride in one call and are
    answered by one Future (no Future and no loop hop per word).
    """

    def __init__(
        self,
        model: StepModel,
        bank: StateBank,
        *,
        enabled: bool = True,
        max_batch: int = 256,
        max_wait: float = 0.0,
        observe: BatchObserver | None = None,
    ) -> None:
        self.model = model
        self.names = model.state_names
        self.bank = bank
        self.max_batch = max_batch if enabled else 1
        self.max_wait = max_wait
        self.observe = observe
        self._queue: list[_Group] = []
        self._waiting = 0  # rows in the queue
        self._scheduled = False  # a drain is due on the loop
        self._last_rows = 1  # rows of the last model call: 1 while the load is light
        self._ran_alone = False  # a step ran at once in this round of the loop

    async def step(self, slot: int, token_id: int) -> Row:
        """Advance ``slot`` by one token; returns its row (the probabilities and the slot's new state).
        The slot is held until the step is done: a session closed meanwhile keeps its slot."""
        self.bank.hold(slot)
        try:
            rows = await self._enqueue([slot], [token_id])
        finally:
            self.bank.unhold(slot)
        row: Row = rows[0]
        return row

    async def advance(self, slots: list[int], token_ids: list[int]) -> Rows:
        """Advance each of ``slots`` (distinct) by its token; returns the rows in the same order.
        The caller holds the slots until it is done with them (Wordstream._steps does)."""
        if len(slots) <= self.max_batch:
            return await self._enqueue(slots, token_ids)
        parts = await asyncio.gather(
            *(
                self._enqueue(slots[i : i + self.max_batch], token_ids[i : i + self.max_batch])
                for i in range(0, len(slots), self.max_batch)
            )
        )
        return np.concatenate(parts)

    def _enqueue(self, slots: list[int], token_ids: list[int]) -> asyncio.Future[Rows]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Rows] = loop.create_future()
        self._queue.append(_Group(slots, token_ids, future))
        self._waiting += len(slots)
        if not self._scheduled:
            self._scheduled = True
            if self.max_wait and self._waiting < self.max_batch:
                loop.call_later(self.max_wait, self._drain)
            else:
                loop.call_soon(self._drain)  # after the steps that are ready in this round
        return future

    async def sequence(self, slot: int, token_ids: list[int]) -> list[Row]:
        """Advance ``slot`` by several tokens in order (a paste, a word of several tokens).

        Each token is one step that rides in the batches of the moment, so a long paste
        never holds the loop for more than one call. The slot is held from the first token to
        the last: a session closed in between does not hand it to a new session mid-way.

        A word that comes alone (see :meth:`_alone`) runs its first token at once, in its
        stream's own task: no Future and no second wakeup of the task, the cost of batching
        where there is nothing to batch with.
        """
        self.bank.hold(slot)
        try:
            rows = []
            for k, token_id in enumerate(token_ids):
                if k == 0 and self._alone():
                    rows.append(self._call([slot], [token_id])[0])  # at once, in this task
                else:
                    rows.append((await self._enqueue([slot], [token_id]))[0])
            return rows
        finally:
            self.bank.unhold(slot)

    def _drain(self) -> None:
        """Run the oldest waiting groups that fit, no slot twice, as one model call; come back for the rest."""
        batch: list[_Group] = []
        rest: list[_Group] = []
        seen: set[int] = set()
        rows = 0
        for group in self._queue:
            if group.future.done():  # its caller was cancelled while it waited: not run
                self._waiting -= len(group.slots)
                continue
            if rows + len(group.slots) <= self.max_batch and seen.isdisjoint(group.slots):
                seen.update(group.slots)
                batch.append(group)
                rows += len(group.slots)
            else:
                rest.append(group)
        self._queue = rest
        self._waiting -= rows
        if rest:
            asyncio.get_running_loop().call_soon(self._drain)
        else:
            self._scheduled = False
        if not batch:
            return
        if len(batch) == 1:
            slots, token_ids = batch[0].slots, batch[0].token_ids
        else:
            slots = [slot for group in batch for slot in group.slots]
            token_ids = [token_id for group in batch for token_id in group.token_ids]
        try:
            out = self._call(slots, token_ids)
        except Exception as e:  # the model call failed: every step in it learns why
            for group in batch:
                group.future.set_exception(e)
            return
        if len(batch) == 1:
            batch[0].future.set_result(out)
            return
        start = 0
        for group in batch:
            end = start + len(group.slots)
            group.future.set_result(out[start:end])
            start = end

    def _alone(self) -> bool:
        """Whether a word's step may run at once: nothing is queued, the last model call carried
        one row (the load is light), and no other step ran at once in this round of the loop (the
        second word of a round queues, and the rest of the round rides with it). Once calls carry
        several rows again, every step queues until they carry one."""
        if self._queue or self._last_rows != 1 or self.max_wait or self._ran_alone:
            return False
        self._ran_alone = True
        asyncio.get_running_loop().call_soon(self._next_round)
        return True

    def _next_round(self) -> None:
        self._ran_alone = False

    def _call(self, slots: list[int], token_ids: list[int]) -> Rows:
        """One model call: the slots advance by their tokens; their rows, made in one numpy pass:
        (n, width), each [probs | each state's (layers, hidden) flattened]."""
        probs, new_state = self.model.run(np.array(token_ids, np.int64), self.bank.gather(slots))
        self.bank.scatter(slots, new_state)
        self._last_rows = rows = len(slots)
        if self.observe:
            self.observe(rows)
        return np.concatenate([probs, *(new_state[n].transpose(1, 0, 2).reshape(rows, -1) for n in self.names)], 1)
