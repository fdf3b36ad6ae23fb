"""TrainState: everything a run needs to continue exactly, apart from what it measured (History).

A state comes from one of three places: a fresh run (`TrainState.fresh`), a History that `train`
returned in this process (`history.run_state`), or a checkpoint that `train` wrote
(`TrainState.from_checkpoint`). `train()` restores whichever it gets in one way.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

Weights = dict[str, torch.Tensor]


def copy_weights(module: nn.Module) -> Weights:
    """A detached copy of the module's weights, on the module's own device."""
    return {name: value.detach().clone() for name, value in module.state_dict().items()}


def to_cpu(value: Any) -> Any:
    """A copy of nested dicts/lists/tuples with every tensor moved to the CPU (XLA/CUDA-safe)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_cpu(v) for v in value)
    return value


@dataclass
class TrainState:
    """Where a run stands: steps done, seconds, optimizer and random states, the best weights.

    `best_weights` is a copy of the best evaluation's weights (None before any evaluation, or
    when they are not known, as for a History rebuilt from a dict). `last_weights` holds the last
    step's weights while the model holds the best ones (None when the model holds the last).
    `model_config` is the ModelConfig (as a dict) of the model the state was recorded with, so a
    mismatch is caught before PyTorch sees it.
    """

    iteration: int = 0
    train_seconds: float = 0.0
    optimizer: dict[str, Any] | None = None
    rng: dict[str, Any] | None = None
    best_iter: int | None = None
    best_val_loss: float | None = None
    best_weights: Weights | None = field(default=None, repr=False)
    last_weights: Weights | None = field(default=None, repr=False)
    model_config: dict[str, Any] | None = None
    # The characters of the vocabulary the run was trained with, when it was told (tokenizer=).
    vocabulary: list[str] | None = None
    # The module this state was recorded on, in this process (not saved).
    module_ref: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def fresh(cls, module: nn.Module) -> TrainState:
        return cls(model_config=module.config.to_dict(), module_ref=weakref.ref(module))

    @classmethod
    def from_history(cls, history: Any, module: nn.Module) -> TrainState:
        """The state a History returned by `train` carries; for one without (rebuilt with
        `from_dict`, or left by a failed run), a state at its iteration with no optimizer or
        random states, so those start fresh, and no best weights."""
        if history.run_state is not None:
            return history.run_state
        return cls(
            iteration=history.iteration, train_seconds=history.train_seconds,
            best_iter=history.best_iter, best_val_loss=history.best_val_loss,
            model_config=module.config.to_dict(),
        )

    # -- checkpoints ------------------------------------------------------------------------

    def model_holds(self) -> list[str]:
        """Which of "best" and "last" the model's own weights are right now."""
        holds = ["last"] if self.last_weights is None else ["best"]
        if self.last_weights is None and self.best_iter is not None and self.best_iter == self.iteration:
            holds.append("best")  # evaluated at this very step: the last weights are the best
        return holds

    def to_checkpoint(self) -> dict[str, Any]:
        """The training state a checkpoint carries beside the weights the model ends with.

        The file's `model_state` is the model's weights (best or last, as `model_holds` says);
        whichever of the two the model does not hold is stored here, so a file grows by one set
        of weights only when they differ.
        """
        holds = self.model_holds()
        return to_cpu({
            "iteration": self.iteration,
            "optimizer": self.optimizer,
            **(self.rng or {}),
            "best_iter": self.best_iter,
            "best_val_loss": self.best_val_loss,
            "model_holds": holds,
            "best_weights": None if "best" in holds else self.best_weights,
            "last_weights": None if "last" in holds else self.last_weights,
        })

    @classmethod
    def from_checkpoint(cls, payload: dict[str, Any], train_seconds: float) -> TrainState:
        saved = payload["training_state"]
        model_state = payload["model_state"]
        holds = saved.get("model_holds", ["last"])
        best_weights = model_state if "best" in holds else saved.get("best_weights")
        last_weights = None if "last" in holds else saved.get("last_weights")
        return cls(
            iteration=int(saved["iteration"]),
            train_seconds=train_seconds,
            optimizer=saved["optimizer"],
            rng={k: saved[k] for k in ("batch_rng", "torch_rng", "cuda_rng") if k in saved},
            best_iter=saved.get("best_iter"),
            best_val_loss=saved.get("best_val_loss"),
            best_weights=None if saved.get("best_iter") is None else best_weights,
            last_weights=last_weights,
            model_config=dict(payload["model_config"]),
            vocabulary=list(payload["tokenizer"]["chars"]) if "chars" in payload["tokenizer"] else None,
        )

    # -- random streams ---------------------------------------------------------------------

    def capture_rng(self, batch_generator: torch.Generator, device: torch.device) -> None:
        self.rng = {"batch_rng": batch_generator.get_state(), "torch_rng": torch.get_rng_state()}
        if device.type == "cuda":
            self.rng["cuda_rng"] = torch.cuda.get_rng_state(device)

    def restore_rng(self, batch_generator: torch.Generator, device: torch.device) -> None:
        assert self.rng is not None
        batch_generator.set_state(self.rng["batch_rng"])
        torch.set_rng_state(self.rng["torch_rng"])
        if device.type == "cuda" and "cuda_rng" in self.rng:
            torch.cuda.set_rng_state(self.rng["cuda_rng"], device)

    # -- best weights -----------------------------------------------------------------------

    def record_evaluation(self, iteration: int, val_loss: float, module: nn.Module) -> None:
        """Remember the weights if this val estimate is a new best (the first wins a tie)."""
        if self.best_val_loss is None or val_loss < self.best_val_loss:
            self.best_iter, self.best_val_loss = iteration, val_loss
            self.best_weights = copy_weights(module)

    def hold_best(self, module: nn.Module) -> bool:
        """Put the best weights into `module`, keeping the last ones here to continue from."""
        if self.best_weights is None or self.best_iter == self.iteration:
            return False
        self.last_weights = copy_weights(module)
        module.load_state_dict(self.best_weights)
        return True

    def take_back_last(self, module: nn.Module) -> None:
        """Before continuing: the model goes back to the last step's weights if it holds the best."""
        if self.last_weights is not None:
            module.load_state_dict(self.last_weights)
            self.last_weights = None
