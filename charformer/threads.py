"""How many CPU threads to train with, chosen by timing a few real steps on this machine.

A second thread helps a small model on one machine and hurts it on another (a busy laptop, a
shared VM), so the notebook measures instead of claiming.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Iterator

import torch

from .config import ModelConfig, TrainConfig
from .data import get_batch
from .model import CharTransformer
from .step import TrainStep

_MEASURED: dict[tuple, dict[int, float]] = {}


@contextlib.contextmanager
def thread_count(num_threads: int | None) -> Iterator[None]:
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


def available_cores() -> int:
    """CPU cores this process may use (the affinity mask, where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def measure_threads(model_config: ModelConfig, train_config: TrainConfig, train_data: torch.Tensor,
                    *, steps: int = 5, rounds: int = 3) -> dict[int, float]:
    """Seconds per training step at 1 thread and at every core, on a throwaway model.

    Interleaves the thread counts over `rounds` and keeps each one's fastest round, so a
    background burst does not decide. Training's random streams are left as they were.
    """
    cores = available_cores()
    candidates = sorted({1, cores})
    key = (model_config, train_config.batch_size, tuple(candidates))
    if key in _MEASURED:
        return _MEASURED[key]
    device = torch.device("cpu")
    best = {threads: float("inf") for threads in candidates}
    with torch.random.fork_rng(devices=[]):
        model = CharTransformer(model_config)
        step = TrainStep(model, dataclasses.replace(train_config, compile=False), device)
        generator = torch.Generator().manual_seed(0)
        batches = [get_batch(train_data, train_config.batch_size, model_config.block_size,
                             generator=generator) for _ in range(steps)]
        step(0, *batches[0])  # warm-up: first-call allocations
        for _ in range(rounds):
            for threads in candidates:
                with thread_count(threads):
                    start = time.perf_counter()
                    for iteration, (x, y) in enumerate(batches):
                        step(iteration, x, y)
                    best[threads] = min(best[threads], (time.perf_counter() - start) / steps)
    _MEASURED[key] = best
    return best


def choose_num_threads(model_config: ModelConfig, train_config: TrainConfig,
                       train_data: torch.Tensor, device: torch.device) -> TrainConfig:
    """`train_config` with the faster thread count measured here, unless one was given.

    Prints what it measured (or why it did not measure).
    """
    if train_config.num_threads is not None:
        print(f"threads: {train_config.num_threads} (set explicitly)")
        return train_config
    if device.type != "cpu" or available_cores() == 1:
        return train_config
    timings = measure_threads(model_config, train_config, train_data)
    chosen = min(timings, key=timings.__getitem__)
    measured = ", ".join(f"{threads} thread(s) {seconds * 1000:.1f} ms" for threads, seconds in timings.items())
    print(f"threads: {measured} per step; training with {chosen}")
    return dataclasses.replace(train_config, num_threads=chosen)

