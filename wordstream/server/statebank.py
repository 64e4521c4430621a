"""Every session's current recurrent state, one slot per session, in arrays per model.

Per state tensor, one preallocated array ``(layers, capacity, hidden)``: gathering a batch
of sessions is one fancy-index copy per tensor (a slice for a lone step), scattering its
results one assignment per tensor; no per-session Python objects on the hot path. A
session owns its slot (server/sessions.py); a model call holds it while it runs
(server/batching.py). No grpc here.
"""

from __future__ import annotations

import numpy as np

from wordstream.modelfile import StateBatch, StateSpec


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
    def in_use(self) -> int:
        """Slots held by sessions, or still held by a model call after their session closed."""
        return self.capacity - len(self._free)

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

    def set(self, slot: int, state: tuple[np.ndarray, ...] | None) -> None:
        """Overwrite the slot with ``state`` ((layers, hidden) tensors in the specs' order), or zeros for None."""
        for i, array in enumerate(self.arrays.values()):
            array[:, slot] = 0.0 if state is None else state[i]

    def gather(self, slots: list[int]) -> StateBatch:
        """The slots' states as model input, each (layers, batch, hidden)."""
        if len(slots) == 1:  # a lone step: a slice (a view when layers is 1) costs a tenth of fancy indexing
            slot = slots[0]
            return {n: np.ascontiguousarray(a[:, slot : slot + 1]) for n, a in self.arrays.items()}
        return {n: a[:, slots] for n, a in self.arrays.items()}  # fancy indexing copies

    def scatter(self, slots: list[int], state: StateBatch) -> None:
        if len(slots) == 1:
            for name, array in self.arrays.items():
                array[:, slots[0]] = state[name][:, 0]
            return
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
