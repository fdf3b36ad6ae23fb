"""Train, eval and inference modes for a block of code, each putting the previous mode back."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


def inference_context(device: torch.device) -> contextlib.AbstractContextManager:
    """inference_mode where it works; torch_xla's lazy tensors need plain no_grad."""
    return torch.no_grad() if device.type == "xla" else torch.inference_mode()


@contextlib.contextmanager
def switched_mode(module: nn.Module, training: bool) -> Iterator[nn.Module]:
    """Train or eval mode for the block, then whichever mode the module was in before."""
    was_training = module.training
    module.train(training)
    try:
        yield module
    finally:
        module.train(was_training)


@contextlib.contextmanager
def eval_flags(modules: list[nn.Module]) -> Iterator[None]:
    """Eval mode for `modules`, then each one's own mode back: set directly, since `nn.Module.train`
    costs about as much as sampling one character from a small model."""
    modes = [module.training for module in modules]
    for module in modules:
        module.__dict__["training"] = False
    try:
        yield
    finally:
        for module, mode in zip(modules, modes):
            module.__dict__["training"] = mode
