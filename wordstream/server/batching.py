"""Cross-session micro-batching of model calls.

The :class:`Batcher` is Triton's sequence batcher with the "oldest" strategy: the steps
waiting at the moment a model call starts go into one ONNX Runtime call, at most one
step per session (a session's next token waits for its previous one), each session's
order preserved, at most ``max_batch`` rows. With nothing else waiting a step runs at
once; ``max_wait`` (seconds, default 0) lets a lone step wait for company. No grpc here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from wordstream.modelfile import StepModel
from wordstream.server.statebank import StateBank

StepResult = tuple[np.ndarray, dict[str, np.ndarray]]  # probs (labels,), state name -> (layers, hidden)


@dataclass
class _Pending:
    slot: int
    token_id: int
    future: asyncio.Future[StepResult]


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
        self.bank = bank
        self.max_batch = max_batch if enabled else 1
        self.max_wait = max_wait
        self.observe = observe
        self._queue: list[_Pending] = []
        self._scheduled = False  # a drain is due on the loop

    async def step(self, slot: int, token_id: int) -> StepResult:
        """Advance ``slot`` by one token; returns the probabilities and the slot's new state."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[StepResult] = loop.create_future()
        self._queue.append(_Pending(slot, token_id, future))
        self.bank.hold(slot)  # a session closed meanwhile keeps its slot until the step is done
        if not self._scheduled:
            self._scheduled = True
            if self.max_wait and len(self._queue) < self.max_batch:
                loop.call_later(self.max_wait, self._drain)
            else:
                loop.call_soon(self._drain)  # after the steps that are ready in this round
        try:
            return await future
        finally:
            self.bank.unhold(slot)

    async def sequence(self, slot: int, token_ids: list[int]) -> list[StepResult]:
        """Advance ``slot`` by several tokens in order (a paste, a word of several tokens).

        Each token is one step that rides in the batches of the moment, so a long paste
        never holds the loop for more than one call. The slot is held from the first token to
        the last: a session closed in between does not hand it to a new session mid-way.
        """
        self.bank.hold(slot)
        try:
            return [await self.step(slot, token_id) for token_id in token_ids]
        finally:
            self.bank.unhold(slot)

    def _drain(self) -> None:
        """Run the oldest waiting steps, one per slot, as one model call; come back for the rest."""
        batch: list[_Pending] = []
        rest: list[_Pending] = []
        seen: set[int] = set()
        for pending in self._queue:
            if pending.future.done():  # its stream was cancelled while it waited: not run
                continue
            if len(batch) < self.max_batch and pending.slot not in seen:
                seen.add(pending.slot)
                batch.append(pending)
            else:
                rest.append(pending)
        self._queue = rest
        if rest:
            asyncio.get_running_loop().call_soon(self._drain)
        else:
            self._scheduled = False
        if not batch:
            return
        slots = [p.slot for p in batch]
        tokens = np.fromiter((p.token_id for p in batch), np.int64, len(batch))
        try:
            probs, new_state = self.model.run(tokens, self.bank.gather(slots))
        except Exception as e:  # the model call failed: every step in it learns why
            for pending in batch:
                pending.future.set_exception(e)
            return
        self.bank.scatter(slots, new_state)
        if self.observe:
            self.observe(len(batch))
        for row, pending in enumerate(batch):
            pending.future.set_result((probs[row], {n: v[:, row] for n, v in new_state.items()}))
