"""What the benchmark and its memory child process share: sizes, configs, data, one timed step."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

import charformer as cf

from . import baseline as bl

SEED_RECIPE_ITERS = 5000
BATCH = 16
LECTURE = dict(n_embd=64, n_head=4, n_layer=4, block_size=32)


def notebook_default_config(vocab_size: int) -> cf.ModelConfig:
    """The model the notebook trains by default: its "cpu" preset."""
    model_config, _ = cf.configs_from_settings(cf.resolve_settings("cpu"), vocab_size)
    return model_config


def notebook_default_train(max_iters: int = SEED_RECIPE_ITERS) -> cf.TrainConfig:
    """The notebook's "cpu" preset for `max_iters` steps, at 1 thread so runs compare."""
    settings = cf.resolve_settings("cpu", max_iters=max_iters, num_threads=1)
    return cf.configs_from_settings(settings, vocab_size=65)[1]


def load() -> tuple[torch.Tensor, torch.Tensor, cf.CharTokenizer]:
    text = cf.load_tiny_shakespeare()
    tokenizer = cf.CharTokenizer.from_text(text)
    data = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    train, val = cf.train_val_split(data)
    return train, val, tokenizer



def baseline_step(model: bl.BigramLanguageModel, optimizer: torch.optim.Optimizer,
                  data: torch.Tensor) -> Callable[[], dict[str, float]]:
    def step() -> dict[str, float]:
        t0 = time.perf_counter()
        x, y = bl.get_batch(data, BATCH, model.block_size)
        t1 = time.perf_counter()
        _, loss = model(x, y)
        t2 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t3 = time.perf_counter()
        optimizer.step()
        t4 = time.perf_counter()
        return {"batch": t1 - t0, "forward": t2 - t1, "backward": t3 - t2, "optimizer": t4 - t3, "total": t4 - t0}
    return step


def charformer_step(model: cf.CharTransformer, optimizer: torch.optim.Optimizer, data: torch.Tensor,
                    config: cf.TrainConfig, generator: torch.Generator) -> Callable[[], dict[str, float]]:
    """The same work as one iteration of cf.train's loop, split into phases."""
    block = model.config.block_size

    def step() -> dict[str, float]:
        t0 = time.perf_counter()
        x, y = cf.get_batch(data, BATCH, block, generator=generator)
        t1 = time.perf_counter()
        _, loss = model(x, y)
        t2 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        loss.item()  # cf.train's per-step finiteness check on the CPU
        t3 = time.perf_counter()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip, foreach=True)
        optimizer.step()
        t4 = time.perf_counter()
        return {"batch": t1 - t0, "forward": t2 - t1, "backward": t3 - t2, "optimizer": t4 - t3, "total": t4 - t0}
    return step


