"""train(): AdamW on random batches, fixed-window evaluations, interrupts, checkpoints, resume.

This is the one module that ties the model, data, device and checkpoints together.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from .checkpoint import load_model_state, read_checkpoint, save_checkpoint, unwrap_model
from .config import TrainConfig
from .data import CharTokenizer, get_batch
from .device import choose_precision, compile_supported, xla_sync
from .errors import CheckpointError, NonFiniteLossError
from .evaluate import draw_eval_starts, eval_window_counts, whole_split_loss, windows_loss
from .history import History
from .model import CharTransformer

# Offsets from config.seed for the streams that must never overlap with the batch stream.
_EVAL_SEED_OFFSET = 1_000_003


def learning_rate_at(iteration: int, config: TrainConfig) -> float:
    """Linear warmup, then (if lr_decay_iters is set) cosine decay to min_lr, then min_lr."""
    if config.warmup_iters and iteration < config.warmup_iters:
        return config.learning_rate * (iteration + 1) / (config.warmup_iters + 1)
    if config.lr_decay_iters is None:
        return config.learning_rate
    if iteration >= config.lr_decay_iters:
        return config.min_lr
    span = max(1, config.lr_decay_iters - config.warmup_iters)
    progress = (iteration - config.warmup_iters) / span
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return config.min_lr + cosine * (config.learning_rate - config.min_lr)


def make_optimizer(model: nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW with nanoGPT's grouping: weight decay on 2-D weights only, not biases or LayerNorms."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    # One fused kernel for the whole update on CUDA and CPU (fewer launches than foreach).
    fused = device.type in ("cuda", "cpu")
    return torch.optim.AdamW(
        groups, lr=config.learning_rate, betas=(config.beta1, config.beta2), fused=fused
    )


@contextlib.contextmanager
def _tf32_matmuls(device: torch.device) -> Iterator[None]:
    """TF32 tensor-core matmuls on CUDA for the call (float32 accuracy is not needed), then restore."""
    if device.type != "cuda":
        yield
        return
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)


@contextlib.contextmanager
def _threads(num_threads: int | None) -> Iterator[None]:
    """Set torch's intra-op thread count for the call, then restore it."""
    if num_threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class _InterruptLatch:
    """Turns SIGINT (Ctrl-C, the notebook's stop button) into a flag checked between steps."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> _InterruptLatch:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)


def _rng_state(device: torch.device, batch_generator: torch.Generator) -> dict[str, Any]:
    state: dict[str, Any] = {
        "batch_rng": batch_generator.get_state(),
        "torch_rng": torch.get_rng_state(),
    }
    if device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state(device)
    return state


def _restore_rng(state: dict[str, Any], device: torch.device, batch_generator: torch.Generator) -> None:
    batch_generator.set_state(state["batch_rng"])
    torch.set_rng_state(state["torch_rng"])
    if device.type == "cuda" and "cuda_rng" in state:
        torch.cuda.set_rng_state(state["cuda_rng"], device)


def _as_token_tensor(name: str, data: Any, device: torch.device) -> torch.Tensor:
    tensor = data if isinstance(data, torch.Tensor) else torch.as_tensor(data, dtype=torch.long)
    if tensor.dim() != 1 or tensor.dtype not in (torch.long, torch.int32, torch.int64):
        raise ValueError(f"{name} must be a 1-D sequence of integer token ids")
    return tensor.to(device=device, dtype=torch.long)


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision == "fp16":
        return torch.autocast(device.type, dtype=torch.float16)
    return contextlib.nullcontext()


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
) -> History:
    """Train `model` to `config.max_iters` steps and return the History of its evaluations.

    Evaluates every `eval_interval` steps and at the end on fixed windows (its own random
    stream, so evaluation never shifts training). Ctrl-C / the stop button ends the current step,
    then returns the History with `interrupted=True`; pass it back as `history=` to continue.
    `checkpoint_path` is rewritten every `checkpoint_every` evaluations (None: at the end only);
    `resume_from` continues bit-for-bit from a checkpoint that `train` wrote.
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    module = unwrap_model(model)
    if not isinstance(module, CharTransformer):
        raise ValueError(f"model must be a CharTransformer, got {type(module).__name__}")
    if checkpoint_every is not None and (
        isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int) or checkpoint_every < 1
    ):
        raise ValueError(f"checkpoint_every must be None or an int >= 1, got {checkpoint_every!r}")
    if checkpoint_every is not None and checkpoint_path is None:
        raise ValueError("checkpoint_every needs a checkpoint_path to write to")

    resume_payload = None
    if resume_from is not None:
        resume_path = Path(resume_from)
        resume_payload = read_checkpoint(resume_path)
        if resume_payload.get("training_state") is None or resume_payload.get("history") is None:
            raise CheckpointError(
                f"checkpoint {resume_path} holds weights only, not the training state needed to "
                "resume (write it with train(..., checkpoint_path=...))"
            )
        saved_tokenizer = CharTokenizer.from_dict(resume_payload["tokenizer"])
        if tokenizer is not None and tokenizer != saved_tokenizer:
            only_saved = sorted(set(saved_tokenizer.chars) - set(tokenizer.chars))
            only_here = sorted(set(tokenizer.chars) - set(saved_tokenizer.chars))
            raise CheckpointError(
                f"checkpoint {resume_path} was saved with a different vocabulary "
                f"({saved_tokenizer.vocab_size} characters there, {tokenizer.vocab_size} here; "
                f"only in the checkpoint: {only_saved!r}; only here: {only_here!r})"
            )
        tokenizer = saved_tokenizer
        load_model_state(resume_path, module, resume_payload)
    if checkpoint_path is not None and tokenizer is None:
        raise ValueError(
            "checkpoint_path needs tokenizer= so that the checkpoint carries its vocabulary"
        )

    if device is None:
        device = next(module.parameters()).device
    device = torch.device(device) if isinstance(device, str) else device
    module.to(device)
    train_tokens = _as_token_tensor("train_data", train_data, device)
    val_tokens = _as_token_tensor("val_data", val_data, device)
    block_size = module.config.block_size
    for name, tokens in (("train_data", train_tokens), ("val_data", val_tokens)):
        if len(tokens) < block_size + 1:
            raise ValueError(
                f"{name} has {len(tokens)} tokens; block_size={block_size} needs at least "
                f"{block_size + 1}"
            )

    optimizer = make_optimizer(module, config, device)
    batch_generator = torch.Generator().manual_seed(config.seed)
    if resume_payload is not None:
        history = History.from_dict(resume_payload["history"])
        history.interrupted = False
        optimizer.load_state_dict(resume_payload["training_state"]["optimizer"])
        _restore_rng(resume_payload["training_state"], device, batch_generator)
    elif history is not None and history.resume_state is not None:
        optimizer.load_state_dict(history.resume_state["optimizer"])
        _restore_rng(history.resume_state, device, batch_generator)
        history.interrupted = False
    elif history is not None:
        # A History without its in-memory state (e.g. rebuilt from a dict): continue from its
        # iteration with fresh optimizer moments and a batch stream derived from that iteration.
        batch_generator.manual_seed(config.seed + history.iteration)
        history.interrupted = False
    else:
        history = History()
        torch.manual_seed(config.seed)  # dropout's stream, on a fresh run only

    precision = choose_precision(
        device.type, device.type == "cuda" and torch.cuda.is_bf16_supported()
    )
    autocast = _autocast(device, precision)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
    step_model: nn.Module = module
    if config.compile:
        capability = torch.cuda.get_device_capability(device) if device.type == "cuda" else None
        if compile_supported(device.type, platform.system(), capability):
            step_model = torch.compile(module)  # type: ignore[assignment]
    check_every_step = device.type == "cpu"
    nonfinite = torch.zeros((), dtype=torch.bool, device=device)

    eval_generator = torch.Generator().manual_seed(config.seed + _EVAL_SEED_OFFSET)
    train_count, val_count = eval_window_counts(config.eval_iters, config.batch_size)
    train_starts = draw_eval_starts(len(train_tokens), train_count, block_size, eval_generator)
    val_starts = draw_eval_starts(len(val_tokens), val_count, block_size, eval_generator)

    last_good_weights: dict[str, torch.Tensor] | None = None
    evaluations_this_call = 0
    started = time.perf_counter()
    seconds_before = history.train_seconds

    def elapsed() -> float:
        return seconds_before + time.perf_counter() - started

    def training_state(iteration: int) -> dict[str, Any]:
        state = {"iteration": iteration, "optimizer": optimizer.state_dict()}
        state.update(_rng_state(device, batch_generator))
        return state

    def write_checkpoint(iteration: int) -> None:
        assert checkpoint_path is not None and tokenizer is not None
        history.train_seconds = elapsed()
        save_checkpoint(
            checkpoint_path, module, tokenizer, train_config=config, history=history,
            training_state=training_state(iteration),
        )

    def fail_nonfinite(iteration: int, what: str) -> None:
        if last_good_weights is not None:
            module.load_state_dict(last_good_weights)
        history.iteration = iteration
        history.train_seconds = elapsed()
        restored = (
            f"; the weights of the evaluation at step {history.iters[-1]} were restored"
            if history.iters and last_good_weights is not None else ""
        )
        raise NonFiniteLossError(
            f"the {what} loss is not finite at iteration {iteration} "
            f"(learning rate {config.learning_rate:g}){restored}",
            iteration=iteration,
            history=history,
        )

    def evaluate(iteration: int) -> None:
        nonlocal last_good_weights, evaluations_this_call
        if bool(nonfinite):
            fail_nonfinite(iteration, "training")
        train_loss, _ = windows_loss(module, train_tokens, train_starts, block_size, autocast)
        val_loss, val_stderr = windows_loss(module, val_tokens, val_starts, block_size, autocast)
        train_value, val_value = float(train_loss), float(val_loss)
        if not (math.isfinite(train_value) and math.isfinite(val_value)):
            fail_nonfinite(iteration, "evaluation")
        last_good_weights = {k: v.detach().clone() for k, v in module.state_dict().items()}
        history.iters.append(iteration)
        history.train_loss.append(train_value)
        history.val_loss.append(val_value)
        history.val_stderr.append(float(val_stderr))
        history.elapsed.append(elapsed())
        tqdm.write(f"step {iteration}: train loss {train_value:.4f}, val loss {val_value:.4f}")
        evaluations_this_call += 1
        if checkpoint_every is not None and evaluations_this_call % checkpoint_every == 0:
            write_checkpoint(iteration)

    iteration = history.iteration
    constant_lr = config.warmup_iters == 0 and config.lr_decay_iters is None
    was_training = module.training
    with _threads(config.num_threads), _tf32_matmuls(device), _InterruptLatch() as latch:
        module.train()
        progress = tqdm(total=config.max_iters, initial=min(iteration, config.max_iters),
                        desc="training", unit="step", dynamic_ncols=True)
        try:
            while iteration < config.max_iters:
                if iteration % config.eval_interval == 0 and iteration not in history.iters:
                    evaluate(iteration)
                if not constant_lr:
                    lr = learning_rate_at(iteration, config)
                    for group in optimizer.param_groups:
                        group["lr"] = lr
                x, y = get_batch(train_tokens, config.batch_size, block_size, generator=batch_generator)
                with autocast:
                    _, loss = step_model(x, y)
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.unscale_(optimizer)
                else:
                    loss.backward()
                if check_every_step:
                    if not math.isfinite(loss.item()):
                        fail_nonfinite(iteration, "training")
                else:
                    nonfinite |= ~torch.isfinite(loss.detach())
                if config.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(
                        module.parameters(), config.grad_clip, foreach=device.type != "xla"
                    )
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                if device.type == "xla":
                    xla_sync()  # cut the lazy graph here: one compiled graph per step shape
                iteration += 1
                history.iteration = iteration
                progress.update(1)
                if latch.requested:
                    history.interrupted = True
                    break
        finally:
            progress.close()
        if not history.interrupted and iteration not in history.iters:
            evaluate(iteration)
        module.train(was_training)
        history.train_seconds = elapsed()
        history.resume_state = training_state(iteration)
        if history.interrupted:
            print(
                f"interrupted after step {iteration} ({history.train_seconds:.1f} s); "
                "call train(..., history=history) to continue"
            )
        else:
            history.final_val_loss = whole_split_loss(module, val_tokens, block_size)
            print(
                f"finished {iteration} steps in {history.train_seconds:.1f} s: "
                f"train loss {history.train_loss[-1]:.4f}, val loss {history.val_loss[-1]:.4f}; "
                f"whole val split {history.final_val_loss:.4f} nats = "
                f"{history.final_val_loss / math.log(2):.4f} bits per character"
            )
        if checkpoint_path is not None:
            write_checkpoint(iteration)
    return history
