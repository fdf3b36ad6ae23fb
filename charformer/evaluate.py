"""Loss estimates that never touch training's random streams: fixed windows, and the whole split."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .checks import as_int, as_token_tensor
from .cores import threads_now, using_threads
from .data import gather_windows, too_short_message
from .modes import inference_context, switched_mode

# Windows per forward pass when evaluating: on a 2-core CPU 64 beat 512 (bigger chunks spill out of
# the caches); on an H200 512 took 1.69x less time than 64 (benchmarks/RESULTS.md).
EVAL_CHUNK_WINDOWS = 64
ACCELERATOR_CHUNK_WINDOWS = 512

# Evaluation's random stream is config.seed plus this, far from the batch stream's seed.
EVAL_SEED_OFFSET = 1_000_003


def eval_chunk_windows(device_type: str) -> int:
    """Windows per forward pass: cache-sized on a CPU, large on accelerators."""
    return EVAL_CHUNK_WINDOWS if device_type == "cpu" else ACCELERATOR_CHUNK_WINDOWS


def draw_eval_starts(
    n_tokens: int, count: int, block_size: int, generator: torch.Generator
) -> torch.Tensor:
    """`count` window starts drawn once; reusing them makes successive estimates comparable."""
    if n_tokens < block_size + 1:
        raise ValueError(too_short_message("data", n_tokens, block_size))
    return torch.randint(n_tokens - block_size, (count,), generator=generator)


@contextlib.contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode (no dropout), inference mode and the free cores' threads, then the previous ones back."""
    device = next(model.parameters()).device
    with switched_mode(model, False), inference_context(device), using_threads(threads_now(device)):
        yield


@dataclass(frozen=True)
class Estimate:
    """One evaluation: mean loss on the fixed train and val windows, and the val standard error."""

    train_loss: float
    val_loss: float
    val_stderr: float


class Evaluator:
    """Owns evaluation's fixed windows: drawn once from `seed + EVAL_SEED_OFFSET`, so evaluating never
    moves training's random streams, and reused at every call (see TrainConfig.eval_iters)."""

    def __init__(
        self,
        train_tokens: torch.Tensor,
        val_tokens: torch.Tensor,
        block_size: int,
        eval_iters: int,
        batch_size: int,
        seed: int,
        chunk_windows: int | None = None,
    ) -> None:
        self.train_tokens = as_token_tensor("train_tokens", train_tokens)  # any integer dtype
        self.val_tokens = as_token_tensor("val_tokens", val_tokens)
        self.block_size = as_int("block_size", block_size, 1)
        eval_iters = as_int("eval_iters", eval_iters, 1)
        batch_size = as_int("batch_size", batch_size, 1)
        seed = as_int("seed", seed, 0)
        self.chunk_windows = chunk_windows or eval_chunk_windows(self.val_tokens.device.type)
        generator = torch.Generator().manual_seed(seed + EVAL_SEED_OFFSET)
        # The val estimate is the number that matters; train's only draws its curve: a quarter.
        train_count, val_count = max(1, eval_iters // 4) * batch_size, eval_iters * batch_size
        self.train_starts = draw_eval_starts(len(self.train_tokens), train_count, self.block_size, generator)
        self.val_starts = draw_eval_starts(len(self.val_tokens), val_count, self.block_size, generator)

    def __call__(
        self, model: nn.Module, autocast: contextlib.AbstractContextManager | None = None
    ) -> Estimate:
        train_loss, _ = self._windows_loss(model, self.train_tokens, self.train_starts, autocast)
        val_loss, val_stderr = self._windows_loss(model, self.val_tokens, self.val_starts, autocast)
        return Estimate(float(train_loss), float(val_loss), float(val_stderr))

    def _windows_loss(
        self, model: nn.Module, data: torch.Tensor, starts: torch.Tensor,
        autocast: contextlib.AbstractContextManager | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean loss over the windows at `starts` and its standard error, as 0-d tensors (no sync)."""
        with evaluation_mode(model):
            chunks = _token_losses(model, data, starts, self.block_size, self.chunk_windows, autocast)
            losses = torch.cat([chunk.mean(dim=1) for chunk in chunks])  # (N,)
            stderr = losses.std() / math.sqrt(losses.numel()) if losses.numel() > 1 else losses.new_zeros(())
            return losses.mean(), stderr


def _token_losses(
    model: nn.Module, data: torch.Tensor, starts: torch.Tensor, block_size: int, chunk_windows: int,
    autocast: contextlib.AbstractContextManager | None = None,
) -> Iterator[torch.Tensor]:
    """Per-target losses (b, T) of the windows at `starts`, `chunk_windows` windows at a time."""
    for chunk in starts.split(chunk_windows):
        x, y = gather_windows(data, chunk, block_size)  # (b, T), (b, T)
        with autocast if autocast is not None else contextlib.nullcontext():
            logits, _ = model(x)  # (b, T, V)
            losses = F.cross_entropy(
                logits.float().reshape(-1, logits.size(-1)), y.reshape(-1), reduction="none"
            )
        yield losses.view_as(y)  # (b, T)


def whole_split_loss(
    model: nn.Module, data: torch.Tensor, block_size: int | None = None, *, max_chars: int | None = None
) -> float:
    """Mean cross-entropy (nats per character) over every target of `data` (only its first
    `max_chars` where given), each counted once: windows end to end, a last one aligned to the end."""
    data = as_token_tensor("data", data)
    if block_size is None:
        block_size = model.config.block_size  # type: ignore[union-attr]
    block_size = as_int("block_size", block_size, 1)
    if max_chars is not None:
        data = data[:as_int("max_chars", max_chars, 2)]
    n_targets = len(data) - 1
    if n_targets < block_size:
        raise ValueError(too_short_message("data", len(data), block_size))
    device = next(model.parameters()).device
    data = data.to(device)
    starts = torch.arange(0, n_targets - block_size + 1, block_size)
    covered = len(starts) * block_size
    total = torch.zeros((), dtype=torch.float64, device=device)
    with evaluation_mode(model):
        for losses in _token_losses(model, data, starts, block_size, eval_chunk_windows(device.type)):
            total += losses.sum(dtype=torch.float64)
        remainder = n_targets - covered
        if remainder:  # one more window, ending at the last target: only its last `remainder` count
            tail = torch.tensor([n_targets - block_size])
            (losses,) = _token_losses(model, data, tail, block_size, 1)
            total += losses[:, -remainder:].sum(dtype=torch.float64)
    return float(total) / n_targets
