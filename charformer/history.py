"""History: what a training run measured."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .config import DictFields


@dataclass
class History(DictFields):
    """Losses at each evaluation, cumulative seconds, the best evaluation, where training stopped.
    `run_state` (in memory only) lets `train(..., history=h)` continue exactly."""

    iters: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    elapsed: list[float] = field(default_factory=list)
    interrupted: bool = False
    iteration: int = 0
    train_seconds: float = 0.0
    # Standard error of each val estimate (from per-window losses).
    val_stderr: list[float] = field(default_factory=list)
    # The val split's loss on the weights a finished run holds (None when not measured).
    final_val_loss: float | None = None
    # How many characters final_val_loss measured (at most run.FINAL_VAL_MAX_CHARS).
    final_val_chars: int | None = None
    best_iter: int | None = None
    best_val_loss: float | None = None
    # True when `patience` evaluations in a row brought no new best and the run stopped there.
    stopped_early: bool = False
    run_state: Any = field(default=None, repr=False, compare=False)
    _not_saved = ("run_state",)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> History:
        """A History of measurements only: no run state, so continuing from it starts a fresh
        optimizer (use `train(..., resume_from=checkpoint)` to continue exactly)."""
        history = super().from_dict(values)
        lengths = {len(history.iters), len(history.train_loss), len(history.val_loss)}
        if len(lengths) != 1:
            raise ValueError("History lists iters, train_loss and val_loss differ in length")
        return history

    def val_stderr_at(self, iteration: int | None) -> float | None:
        """The standard error of the val estimate made at `iteration` (None where not recorded,
        as in checkpoints written before standard errors were kept)."""
        if iteration is None or iteration not in self.iters or len(self.val_stderr) != len(self.iters):
            return None
        return self.val_stderr[self.iters.index(iteration)]

    def evaluations_since_best(self) -> int:
        """Evaluations after the best one (0 when the last evaluation is the best)."""
        if self.best_iter is None or self.best_iter not in self.iters:
            return 0
        return len(self.iters) - 1 - self.iters.index(self.best_iter)
