"""Compact session state and cross-session micro-batching.

Every session of a model owns one slot of a :class:`StateBank`: per state tensor, one
preallocated array ``(layers, capacity, hidden)``. Gathering a batch is one fancy-index
copy per tensor, scattering its results one assignment per tensor: no per-session Python
objects on the hot path.

The :class:`Batcher` is Triton's sequence batcher with the "oldest" strategy: the steps
waiting at the moment a model call can start go into one ONNX Runtime call, at most one
step per session (a session's next token waits for its previous one), each session's
order preserved, at most ``max_batch`` rows. With nothing else waiting a step runs at
once; ``max_wait`` (seconds, default 0) lets a lone step wait for company. No grpc here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from server.inference import State, StateSpec, StepModel

StepResult = tuple[np.ndarray, dict[str, np.ndarray]]  # probs (labels,), state name -> (layers, hidden)


class StateBank:
    """The current recurrent state of every session of one model, one slot per session."""

    def __init__(self, specs: tuple[StateSpec, ...], capacity: int = 64) -> None:
        self.specs = specs
        self.arrays = {s.name: np.zeros((s.layers, capacity, s.hidden), np.float32) for s in specs}
        self._free = list(range(capacity - 1, -1, -1))
        self.busy: dict[int, int] = {}  # slot -> steps in flight
        self._release_later: set[int] = set()

    @property
    def capacity(self) -> int:
        return next(iter(self.arrays.values())).shape[1]

    @property
    def slot_bytes(self) -> int:
        return sum(4 * s.layers * s.hidden for s in self.specs)

    def alloc(self) -> int:
        """A zeroed slot (the initial state)."""
        if not self._free:
            self._grow()
        slot = self._free.pop()
        for array in self.arrays.values():
            array[:, slot] = 0.0
        return slot

    def release(self, slot: int) -> None:
        """Give a slot back; if a model call still holds it, only once that call has scattered."""
        if self.busy.get(slot):
            self._release_later.add(slot)
        else:
            self._free.append(slot)

    def _grow(self) -> None:
        old = self.capacity
        new = max(old + 64, old * 5 // 4)  # 1.25x: little slack per live session
        self.arrays = {
            n: np.concatenate([a, np.zeros((a.shape[0], new - old, a.shape[2]), a.dtype)], axis=1)
            for n, a in self.arrays.items()
        }
        self._free.extend(range(new - 1, old - 1, -1))

    def get(self, slot: int) -> dict[str, np.ndarray]:
        """A copy of the slot's state, each tensor (layers, hidden)."""
        return {n: a[:, slot].copy() for n, a in self.arrays.items()}

    def set(self, slot: int, state: dict[str, np.ndarray] | None) -> None:
        """Overwrite the slot with ``state`` ((layers, hidden) tensors), or zeros for None."""
        for name, array in self.arrays.items():
            array[:, slot] = 0.0 if state is None else state[name]

    def gather(self, slots: list[int]) -> State:
        return {n: a[:, slots] for n, a in self.arrays.items()}  # fancy indexing copies: (layers, batch, hidden)

    def scatter(self, slots: list[int], state: State) -> None:
        for name, array in self.arrays.items():
            array[:, slots] = state[name]

    def hold(self, slot: int) -> None:
        self.busy[slot] = self.busy.get(slot, 0) + 1

    def unhold(self, slot: int) -> None:
        left = self.busy[slot] - 1
        if left:
            self.busy[slot] = left
            return
        del self.busy[slot]
        if slot in self._release_later:
            self._release_later.discard(slot)
            self._free.append(slot)


@dataclass
class _Pending:
    slot: int
    token_id: int
    future: asyncio.Future[StepResult]
    queued: float = field(default_factory=time.perf_counter)


BatchObserver = Callable[[int], None]  # called with each batch's size


class Batcher:
    """Runs steps of one model, batching across sessions (or one call per step when disabled)."""

    def __init__(
        self,
        model: StepModel,
        bank: StateBank,
        executor: Executor,
        *,
        enabled: bool = True,
        max_batch: int = 256,
        max_wait: float = 0.0,
        concurrency: int = 1,
        observe: BatchObserver | None = None,
    ) -> None:
        self.model = model
        self.bank = bank
        self.executor = executor
        self.enabled = enabled
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.observe = observe
        self._queue: list[_Pending] = []
        self._wakeup: asyncio.Event | None = None
        self._runners = concurrency  # model calls of this model that may run at once
        self._running = 0

    async def step(self, slot: int, token_id: int) -> StepResult:
        """Advance ``slot`` by one token; returns the probabilities and the slot's new state."""
        loop = asyncio.get_running_loop()
        self.bank.hold(slot)
        try:
            if not self.enabled:
                return await self._run_one(slot, token_id)
            if not self._queue and self._running < self._runners:  # nothing to batch with: run it now
                self._running += 1
                try:
                    return await self._run_one(slot, token_id)
                finally:
                    self._running -= 1
                    self._kick()  # steps that queued meanwhile need a runner
            future: asyncio.Future[StepResult] = loop.create_future()
            self._queue.append(_Pending(slot, token_id, future))
            self._kick()
            return await future
        finally:
            self.bank.unhold(slot)

    def _kick(self) -> None:
        """Start a drain for waiting steps if a runner is free (every path that frees one calls this)."""
        if self._queue and self._running < self._runners:
            self._running += 1
            asyncio.get_running_loop().create_task(self._drain())

    async def sequence(self, slot: int, token_ids: list[int]) -> list[StepResult]:
        """Advance ``slot`` by several tokens in order (a paste, a word of several tokens).

        One token goes through the batch queue like any step; several run in one executor
        call, so a paste pays one thread hand-off, not one per token.
        """
        if len(token_ids) == 1:
            return [await self.step(slot, token_ids[0])]
        self.bank.hold(slot)
        try:
            state = self.bank.gather([slot])
            loop = asyncio.get_running_loop()
            results, final = await loop.run_in_executor(self.executor, _run_sequence, self.model, token_ids, state)
            self.bank.scatter([slot], final)  # not reached if the stream was cancelled meanwhile
            if self.observe:
                for _ in token_ids:
                    self.observe(1)
            return results
        finally:
            self.bank.unhold(slot)

    async def _run_one(self, slot: int, token_id: int) -> StepResult:
        state = self.bank.gather([slot])
        loop = asyncio.get_running_loop()
        probs, new_state = await loop.run_in_executor(
            self.executor, self.model.run, np.array([token_id], np.int64), state
        )
        self.bank.scatter([slot], new_state)
        if self.observe:
            self.observe(1)
        return probs[0], {n: v[:, 0] for n, v in new_state.items()}

    async def _drain(self) -> None:
        """Take the oldest waiting steps, one per slot, run them as one batch; repeat while any wait."""
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                if self.max_wait and len(self._queue) < self.max_batch:
                    await asyncio.sleep(self.max_wait)
                batch: list[_Pending] = []
                rest: list[_Pending] = []
                seen: set[int] = set()
                for pending in self._queue:
                    if len(batch) < self.max_batch and pending.slot not in seen:
                        seen.add(pending.slot)
                        batch.append(pending)
                    else:
                        rest.append(pending)
                self._queue = rest
                slots = [p.slot for p in batch]
                tokens = np.fromiter((p.token_id for p in batch), np.int64, len(batch))
                state = self.bank.gather(slots)
                try:
                    probs, new_state = await loop.run_in_executor(self.executor, self.model.run, tokens, state)
                except Exception as e:  # the model call failed: every waiting step learns it
                    for pending in batch:
                        if not pending.future.done():
                            pending.future.set_exception(e)
                    continue
                # A step whose stream was cancelled meanwhile does not advance its slot: the
                # session's state stays what its history says.
                keep = [row for row, p in enumerate(batch) if not p.future.done()]
                self.bank.scatter([slots[row] for row in keep], {n: v[:, keep] for n, v in new_state.items()})
                if self.observe:
                    self.observe(len(batch))
                for row in keep:
                    batch[row].future.set_result((probs[row], {n: v[:, row] for n, v in new_state.items()}))
        finally:
            self._running -= 1
            self._kick()


def _run_sequence(model: StepModel, token_ids: list[int], state: State) -> tuple[list[StepResult], State]:
    """Each token in turn, batch of one, carrying the state (runs on an executor thread)."""
    results = []
    for token_id in token_ids:
        probs, state = model.run(np.array([token_id], np.int64), state)
        results.append((probs[0], {n: v[:, 0].copy() for n, v in state.items()}))
    return results, state
