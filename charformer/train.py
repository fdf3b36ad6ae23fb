"""train(): the notebook's hand-written loop (section 7; tests/test_hand_loop.py keeps the two
bitwise equal), its books kept by `run.Run`, its processes by `distributed.Ranks`."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .checkpoint import check_tokenizer_fits, unwrap_model
from .checks import as_int
from .config import TrainConfig
from .data import CharTokenizer, get_batch
from .distributed import Ranks
from .history import History
from .model import CharTransformer
from .modes import switched_mode
from .run import Run, progress_bar
from .step import TrainStep, tf32_matmuls
from .threads import ThreadChoice


def train(
    model: nn.Module,
    train_data: Any,
    val_data: Any,
    config: TrainConfig,
    *,
    device: torch.device | str | None = None,
    history: History | None = None,
    tokenizer: CharTokenizer | None = None,
    checkpoint_path: str | os.PathLike[str] | None = None,
    checkpoint_every: int | None = None,
    resume_from: str | os.PathLike[str] | None = None,
    on_evaluation: Callable[[History], Any] | None = None,
) -> History:
    """Train `model` to `config.max_iters` steps and return the History of its evaluations.

    Ctrl-C / the stop button ends the current step and returns with `interrupted=True`. Continue
    exactly with `history=` (this process) or `resume_from=` (a checkpoint train wrote).
    `checkpoint_path` is written every `checkpoint_every` evaluations and at the end.
    """
    module = _check_arguments(model, config, history, tokenizer, checkpoint_path, checkpoint_every,
                              resume_from, on_evaluation)
    device = torch.device(device) if device is not None else next(module.parameters()).device
    module.to(device)
    with Ranks() as ranks, ThreadChoice(config.num_threads, device=device) as threads, tf32_matmuls(device):
        run = Run(module, config, device, ranks, train_data, val_data, history=history,
                  tokenizer=tokenizer, resume_from=resume_from, checkpoint_path=checkpoint_path,
                  checkpoint_every=checkpoint_every, on_evaluation=on_evaluation)
        step = TrainStep(module, config, device, sync_gradients=ranks.average_gradients)
        run.restore(step)  # weights, optimizer and random streams where the run stopped
        batches, block_size = run.batches, module.config.block_size
        with run.recording(step), switched_mode(module, True):
            with progress_bar(run.iteration, config.max_iters) as progress:
                while not (interrupted := ranks.interrupted()):
                    if run.evaluation_due():
                        run.evaluate(step)
                    if run.done():
                        break
                    x, y = get_batch(run.train_tokens, config.batch_size, block_size, generator=batches)
                    step(run.iteration, x, y)  # lr, forward, backward, (ranks' mean), clip, update
                    run.step_done(step)
                    threads.after_step()  # fewer threads while other processes take the cores
                    progress.update(1)
            run.finish(interrupted, step)  # best weights, whole-split loss, summary, checkpoint
            ranks.raise_if_interrupted(run.iteration, checkpoint_path)
    return run.history


def _check_arguments(
    model: nn.Module, config: TrainConfig, history: History | None, tokenizer: CharTokenizer | None,
    checkpoint_path: Any, checkpoint_every: int | None, resume_from: Any, on_evaluation: Any,
) -> CharTransformer:
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    module = unwrap_model(model)
    if history is not None and not isinstance(history, History):
        raise ValueError(f"history must be a History returned by train, got {type(history).__name__}")
    if history is not None and resume_from is not None:
        raise ValueError("pass history= (this process) or resume_from= (a checkpoint), not both")
    if checkpoint_every is not None:
        as_int("checkpoint_every", checkpoint_every, 1)  # None, or an int >= 1 (numpy ints too)
    if checkpoint_every is not None and checkpoint_path is None:
        raise ValueError("checkpoint_every needs a checkpoint_path to write to")
    if checkpoint_path is not None and tokenizer is None and resume_from is None:
        raise ValueError("checkpoint_path needs tokenizer= so that the checkpoint carries its vocabulary")
    if on_evaluation is not None and not callable(on_evaluation):
        raise ValueError(f"on_evaluation must be callable, got {on_evaluation!r}")
    if tokenizer is not None:
        check_tokenizer_fits(tokenizer, module)
    return module
