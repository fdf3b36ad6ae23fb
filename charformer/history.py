"""History: what a training run measured, and what it needs to continue."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


@dataclass
class History:
    """Losses at each evaluation, cumulative seconds, and where training stopped.

    `iteration` counts the optimizer steps done. `resume_state` (in memory only, not in
    `to_dict`) holds the optimizer and random states that let `train(..., history=h)` continue
    exactly where an interrupted run stopped.
    """

    iters: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    elapsed: list[float] = field(default_factory=list)
    interrupted: bool = False
    iteration: int = 0
    train_seconds: float = 0.0
    # Standard error of each val estimate (from per-window losses).
    val_stderr: list[float] = field(default_factory=list)
    # Mean loss over every character of the val split, measured when a run finishes.
    final_val_loss: float | None = None
    resume_state: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            f.name: (list(v) if isinstance(v := getattr(self, f.name), list) else v)
            for f in fields(self)
            if f.name != "resume_state"
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> History:
        known = {f.name for f in fields(cls)} - {"resume_state"}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown History fields: {', '.join(unknown)}")
        history = cls(**values)
        lengths = {len(history.iters), len(history.train_loss), len(history.val_loss)}
        if len(lengths) != 1:
            raise ValueError("History lists iters, train_loss and val_loss differ in length")
        return history
