"""The training batches: each epoch's order drawn from (seed, epoch) alone, so a resumed run
sees exactly the batches an uninterrupted one saw."""

from __future__ import annotations

import math

import keras
import numpy as np


class EpochShuffled(keras.utils.PyDataset):
    """Mini-batches of in-memory arrays for epochs ``start`` to ``epochs``, one long sequence.

    Batch *i* of the sequence is step ``i % steps`` of epoch ``start + i // steps``, and each
    epoch's order is a permutation drawn from ``(seed, epoch)`` alone. So the batches of an
    epoch never depend on what ran before: a run resumed at epoch *k* sees exactly the batches
    an uninterrupted run saw from epoch *k* on. Fit it with ``steps_per_epoch=steps`` and
    ``shuffle=False``. ``skip`` leaves out the first batches of epoch ``start`` (those a run
    interrupted mid-epoch has already trained on).
    """

    def __init__(self, x, y, batch_size: int, seed: int, epochs: int, start: int = 0,
                 skip: int = 0):
        super().__init__()
        self.x, self.y, self.batch_size, self.seed = x, y, batch_size, seed
        self.epochs, self.start, self.skip = epochs, start, skip
        self.steps = math.ceil(len(x) / batch_size)
        self._orders: dict[int, np.ndarray] = {}

    def order(self, epoch: int) -> np.ndarray:
        if epoch not in self._orders:
            self._orders = {epoch: np.random.default_rng([self.seed, epoch]).permutation(len(self.x))}
        return self._orders[epoch]

    def __len__(self) -> int:
        return self.steps * (self.epochs - self.start) - self.skip

    def __getitem__(self, index: int):
        epoch, step = divmod(self.start * self.steps + self.skip + index, self.steps)
        idx = np.sort(self.order(epoch)[step * self.batch_size:(step + 1) * self.batch_size])
        return self.x[idx], self.y[idx]
