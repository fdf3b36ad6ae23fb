"""TrainState: everything a run needs to continue exactly, apart from what it measured (History);
fresh, from `history=` or from `resume_from=`, checked before the first step (`state_to_start_from`)."""

from __future__ import annotations

import os
import warnings
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import load_model_state, read_checkpoint
from .config import TrainConfig, describe_model_difference
from .data import CharTokenizer
from .distributed import rank_seed, streams_for_rank, warn_if_world_size_changed
from .errors import CheckpointError
from .history import History

Weights = dict[str, torch.Tensor]


def copy_weights(module: nn.Module) -> Weights:
    """A detached copy of the module's weights, on the module's own device."""
    return {name: value.detach().clone() for name, value in module.state_dict().items()}


@dataclass
class TrainState:
    """Where a run stands. `last_weights` holds the last step's weights while the model holds the
    best ones; `model_config` lets a mismatch be refused before PyTorch sees it."""

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

    def model_holds(self) -> list[str]:
        """Which of "best" and "last" the model's own weights are right now."""
        if self.last_weights is not None:
            return ["best"]
        return ["last", "best"] if self.best_iter == self.iteration else ["last"]  # evaluated just now

    def to_checkpoint(self) -> dict[str, Any]:
        """What a checkpoint carries beside the model's weights: whichever of best and last the model
        does not hold (`model_holds`), so a file grows by one set of weights only when they differ."""
        holds = self.model_holds()
        return {
            "iteration": self.iteration,
            "optimizer": self.optimizer,
            **(self.rng or {}),
            "best_iter": self.best_iter,
            "best_val_loss": self.best_val_loss,
            "model_holds": holds,
            "best_weights": None if "best" in holds else self.best_weights,
            "last_weights": None if "last" in holds else self.last_weights,
        }

    @classmethod
    def from_checkpoint(cls, payload: dict[str, Any], train_seconds: float) -> TrainState:
        saved = payload["training_state"]
        holds = saved.get("model_holds", ["last"])
        best_weights = payload["model_state"] if "best" in holds else saved.get("best_weights")
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
        )

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


# Models that train() has trained in this process, and how many steps they had then.
TRAINED_STEPS: weakref.WeakKeyDictionary[nn.Module, int] = weakref.WeakKeyDictionary()


def state_to_start_from(
    module: nn.Module, config: TrainConfig, history: History | None, tokenizer: CharTokenizer | None,
    resume_from: str | os.PathLike[str] | None,
) -> tuple[History, TrainState, CharTokenizer | None]:
    """The History, TrainState and vocabulary a call of train() starts from, every one checked."""
    if resume_from is not None:
        history, state, tokenizer = _read_resume_checkpoint(Path(resume_from), module, tokenizer, config)
    else:
        history, state = _state_to_continue(module, history, config, tokenizer)
    state.vocabulary = tokenizer.chars if tokenizer is not None else state.vocabulary
    return history, state, tokenizer


def _read_resume_checkpoint(
    path: Path, module: nn.Module, tokenizer: CharTokenizer | None, config: TrainConfig
) -> tuple[History, TrainState, CharTokenizer]:
    """A checkpoint's History, TrainState and vocabulary; `module` gets its weights once all checks pass."""
    payload = read_checkpoint(path)
    if payload.get("training_state") is None or payload.get("history") is None:
        raise CheckpointError(
            f"checkpoint {path} holds weights only, not the training state needed to "
            "resume (write it with train(..., checkpoint_path=...))"
        )
    saved_tokenizer = CharTokenizer.from_dict(payload["tokenizer"])
    history = History.from_dict(payload["history"])
    state = TrainState.from_checkpoint(payload, history.train_seconds)
    source = f"checkpoint {path}"
    _check_vocabulary(saved_tokenizer.chars, tokenizer, source, CheckpointError)
    _check_max_iters(state, config, source, CheckpointError)
    load_model_state(path, module, payload)  # refuses a different model, naming what differs
    saved = payload["training_state"]
    state.rng = streams_for_rank(saved, config.seed, state.iteration) or state.rng
    warn_if_world_size_changed(int(saved.get("world_size", 1)), config.batch_size, source)
    return history, state, saved_tokenizer


def _check_vocabulary(recorded: list[str] | None, tokenizer: CharTokenizer | None, source: str,
                      error: type[ValueError]) -> None:
    """Refuse a tokenizer whose characters differ from those the run was trained with."""
    if recorded is None or tokenizer is None or list(recorded) == tokenizer.chars:
        return
    only_there = sorted(set(recorded) - set(tokenizer.chars))
    only_here = sorted(set(tokenizer.chars) - set(recorded))
    raise error(
        f"{source} was recorded with a different vocabulary ({len(recorded)} characters there, "
        f"{tokenizer.vocab_size} here; only there: {only_there!r}; only here: {only_here!r})"
    )


def _check_max_iters(state: TrainState, config: TrainConfig, source: str, error: type[ValueError]) -> None:
    if config.max_iters < state.iteration:
        raise error(
            f"{source} has {state.iteration} steps already; max_iters={config.max_iters} is below "
            f"that (raise max_iters to {state.iteration} + the steps you want to add)"
        )


def _state_to_continue(
    module: nn.Module, history: History | None, config: TrainConfig, tokenizer: CharTokenizer | None,
) -> tuple[History, TrainState]:
    """The History and TrainState to start from without a checkpoint, each check in the user's terms."""
    if history is None:
        if module in TRAINED_STEPS:
            warnings.warn(
                f"this model was already trained for {TRAINED_STEPS[module]} steps in this process; this "
                "run goes on from its weights with a fresh optimizer and schedule. Pass history= to "
                "continue that run exactly, or build a new model to start over.",
                UserWarning, stacklevel=4,
            )
        torch.manual_seed(rank_seed(config.seed))  # dropout's stream, on a fresh run only
        return History(), TrainState(model_config=module.config.to_dict())  # Run.restore sets module_ref
    state = history.run_state or TrainState(  # from_dict, a failed run: fresh optimizer and streams
        iteration=history.iteration, train_seconds=history.train_seconds, best_iter=history.best_iter,
        best_val_loss=history.best_val_loss, model_config=module.config.to_dict(),
    )
    difference = describe_model_difference(state.model_config or {}, module.config.to_dict(), "history")
    if state.model_config is not None and difference:
        raise ValueError(difference)
    _check_max_iters(state, config, "history", ValueError)
    trained = state.module_ref() if state.module_ref is not None else None
    if trained is not None and trained is not module and state.last_weights is None:
        raise ValueError(
            "this history belongs to another model object; pass the model that train() returned "
            "it for, or continue from its checkpoint with resume_from="
        )
    _check_vocabulary(state.vocabulary, tokenizer, "history", ValueError)
    if history.run_state is None:
        warnings.warn(
            f"this History has no run state (it was rebuilt with from_dict or came from a failed "
            f"run): continuing from step {history.iteration} with a fresh optimizer and batch "
            "stream. To continue a saved run exactly, pass its checkpoint as resume_from=.",
            UserWarning, stacklevel=4,
        )
    return history, state
