"""Training-loop helpers: early stopping (chapter 7). The full Trainer comes with the GPT."""

from __future__ import annotations

import math

__all__ = ["EarlyStopping"]


class EarlyStopping:
    """Stop when the validation loss has not improved for ``patience`` evaluations.

    ``step(val_loss)`` records one evaluation and returns ``True`` when training should
    stop. An improvement must beat the best loss so far by more than ``min_delta``.
    ``best`` and ``best_step`` say which evaluation to keep (checkpoint it when
    ``improved`` is true). A non-finite loss stops at once: it will not come back.
    """

    def __init__(self, patience: int = 5, min_delta: float = 0.0) -> None:
        if patience < 1:
            raise ValueError(f"patience must be ≥ 1, got {patience}")
        if min_delta < 0:
            raise ValueError(f"min_delta must be ≥ 0, got {min_delta}")
        self.patience, self.min_delta = patience, min_delta
        self.best = math.inf
        self.best_step = -1
        self.evaluations = 0
        self.improved = False
        self._bad = 0

    def step(self, val_loss: float) -> bool:
        index = self.evaluations
        self.evaluations += 1
        if not math.isfinite(val_loss):
            self.improved = False
            return True
        self.improved = val_loss < self.best - self.min_delta
        if self.improved:
            self.best, self.best_step, self._bad = val_loss, index, 0
            return False
        self._bad += 1
        return self._bad >= self.patience
