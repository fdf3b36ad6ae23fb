"""One optimizer step, as the notebook's loop takes it: learning rate, forward, backward, update;
precision, compile, clipping and the non-finite watch live here so that train() reads as the loop."""

from __future__ import annotations

import contextlib
import math
import platform
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from .config import TrainConfig
from .device import choose_compile, choose_precision, mark_step
from .distributed import is_main_process

# What torch.compile builds the training step with (a name or a backend callable).
COMPILE_BACKEND: Any = "inductor"


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
def tf32_matmuls(device: torch.device) -> Iterator[None]:
    """TF32 tensor-core matmuls on CUDA for the call (float32 accuracy is not needed), then restore.
    Off CUDA nothing is read or set (torch 2.9 warns on reading the precision)."""
    if device.type != "cuda":
        yield
        return
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)


class TrainStep:
    """One optimizer step. Non-finite losses are caught at every step on the CPU (a sync is cheap
    there), elsewhere as a device-side flag read at each evaluation (no sync per step)."""

    def __init__(self, module: nn.Module, config: TrainConfig, device: torch.device,
                 sync_gradients: Callable[[nn.Module], None] | None = None) -> None:
        # sync_gradients(module): between backward and the update (the ranks' mean, distributed).
        self.module, self.config, self.device = module, config, device
        self.sync_gradients = sync_gradients
        self.optimizer = make_optimizer(module, config, device)
        bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)
        self.precision = choose_precision(device.type, bf16)
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        self.autocast = torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None
        capability = torch.cuda.get_device_capability(device) if device.type == "cuda" else None
        compiled = choose_compile(config.compile, device.type, platform.system(), capability)
        self.forward: Callable[..., Any] = (
            torch.compile(self.module, backend=COMPILE_BACKEND, dynamic=False) if compiled else self.module
        )
        self.nonfinite = torch.zeros((), dtype=torch.bool, device=device)

    def load_optimizer_state(self, saved: dict[str, Any]) -> None:
        """The saved moments and step counts, with this call's config (load_state_dict alone would
        bring back the saved learning rate, weight decay, betas and fused flag)."""
        settings = [{k: v for k, v in group.items() if k != "params"}  # this config's, per group
                    for group in self.optimizer.param_groups]
        self.optimizer.load_state_dict(saved)
        for group, config_settings in zip(self.optimizer.param_groups, settings):
            group.update(config_settings)

    def __call__(self, iteration: int, x: torch.Tensor, y: torch.Tensor) -> None:
        # Every step, even for a constant rate: a continued run may bring a new config.
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate_at(iteration, self.config)
        loss = self._loss_and_gradients_or_fall_back(x, y)
        if self.device.type == "cpu":
            if not math.isfinite(loss.item()):
                self.nonfinite.fill_(True)
                return  # the run stops before this update
        else:
            self.nonfinite |= ~torch.isfinite(loss.detach())
        if self.sync_gradients is not None:
            self.sync_gradients(self.module)
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)  # after the sync: every rank skips an inf step alike
        if self.config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(
                self.module.parameters(), self.config.grad_clip, foreach=self.device.type != "xla"
            )
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        mark_step(self.device)  # XLA: one compiled graph per step

    def _loss_and_gradients(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with self.autocast:
            _, loss = self.forward(x, y)
        self.optimizer.zero_grad(set_to_none=True)
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
        return loss

    def _loss_and_gradients_or_fall_back(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The compiled step; if compiling fails, one printed line and the same step in eager mode."""
        if self.forward is self.module:
            return self._loss_and_gradients(x, y)
        rng = torch.get_rng_state()
        try:
            return self._loss_and_gradients(x, y)
        except Exception as error:  # any compiler failure: the run must not die of it
            reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
            if is_main_process():
                print(f"torch.compile failed ({type(error).__name__}: {reason[:200]}); "
                      "training continues in eager mode")
            self.forward = self.module
            torch.set_rng_state(rng)
            return self._loss_and_gradients(x, y)

    def saw_nonfinite(self) -> bool:
        return bool(self.nonfinite)
