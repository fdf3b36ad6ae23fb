"""How many CPU threads to train with: measured on this machine, and lowered while others take its cores."""

from __future__ import annotations

import dataclasses
import statistics
import time

import torch

from .config import ModelConfig, TrainConfig
from .cores import available_cores, free_cores, seconds_waiting, using_threads
from .data import get_batch
from .model import CharTransformer
from .step import TrainStep


def measure_threads(model_config: ModelConfig, train_config: TrainConfig, train_data: torch.Tensor,
                    *, steps: int = 5, rounds: int = 3) -> dict[int, float]:
    """Seconds per training step at 1 thread and at every core, on a throwaway model: each count's
    fastest of `rounds` interleaved rounds, so a burst does not decide. Leaves the random streams."""
    best = dict.fromkeys(sorted({1, available_cores()}), float("inf"))
    with torch.random.fork_rng(devices=[]):
        step = TrainStep(CharTransformer(model_config), dataclasses.replace(train_config, compile=False),
                         torch.device("cpu"))
        generator = torch.Generator().manual_seed(0)
        batches = [get_batch(train_data, train_config.batch_size, model_config.block_size,
                             generator=generator) for _ in range(steps)]
        step(0, *batches[0])  # warm-up: first-call allocations
        for _ in range(rounds):
            for threads in best:
                with using_threads(threads):
                    start = time.perf_counter()
                    for iteration, (x, y) in enumerate(batches):
                        step(iteration, x, y)
                    best[threads] = min(best[threads], (time.perf_counter() - start) / steps)
    return best


def choose_num_threads(model_config: ModelConfig, train_config: TrainConfig,
                       train_data: torch.Tensor, device: torch.device) -> TrainConfig:
    """`train_config` with 1 thread if that trains faster here (measured), else left automatic (all
    cores, fewer while other processes take them: ThreadChoice) unless it sets a count. Prints why."""
    if train_config.num_threads is not None:
        print(f"threads: {train_config.num_threads} (set explicitly)")
        return train_config
    if device.type != "cpu" or available_cores() == 1:
        return train_config
    if free_cores() < available_cores():  # timing now would time the others; train's ThreadChoice says so
        return train_config
    timings = measure_threads(model_config, train_config, train_data)
    chosen = min(timings, key=timings.__getitem__)
    measured = ", ".join(f"{threads} thread(s) {seconds * 1000:.1f} ms" for threads, seconds in timings.items())
    print(f"threads: {measured} per step; training with {chosen}" + ", 1 while other processes take cores" * (chosen > 1))
    return dataclasses.replace(train_config, num_threads=1) if chosen == 1 else train_config


class ThreadChoice:
    """Training's thread count: `num_threads` if given, else torch's, lowered while others take cores.

    Two threads on 2 cores lose badly once another process takes one (benchmarks/RESULTS.md). So it
    starts at the cores other processes leave free; when its threads waited for a core over WAITING
    of a window of steps (the first TRIAL steps, then WINDOW, or SECONDS), or run below torch's
    count while cores are free again, it tries TRIAL steps at the other count, keeps the faster and
    says so (then at most every 4 x slower/faster windows). Off the CPU step times are asynchronous:
    the count stays.
    Set `num_threads` to reproduce digits on a busy machine.
    """

    WINDOW, SECONDS, TRIAL, WAITING = 25, 1.0, 5, 0.25

    def __init__(self, num_threads: int | None = None, cores: int | None = None,
                 device: torch.device | str | None = None) -> None:
        self.counts = sorted({1, min(torch.get_num_threads(), cores or available_cores())})
        off_cpu = device is not None and torch.device(device).type != "cpu"
        self.fixed = num_threads or (torch.get_num_threads() if off_cpu else 1 if self.counts == [1] else None)
        self.threads = self.fixed or min(self.counts[-1], free_cores())
        if self.fixed is None and self.threads < self.counts[-1]:
            print(f"threads: other processes are running: training with {self.threads} of "
                  f"{self.counts[-1]} cores, more when they free up")
        self.trying: tuple[int, float] | None = None  # the count and seconds a trial started from
        self.windows, self.next_trial, self.steps, self.why = 0, 1, 0, ""

    def __enter__(self) -> ThreadChoice:
        self.previous = torch.get_num_threads()
        self._use(self.threads)
        return self

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.previous)

    def after_step(self) -> None:
        """Call after each training step."""
        self.steps, now = self.steps + 1, time.perf_counter()
        self.samples, self.clock = self.samples + [now - self.clock], now
        due = len(self.samples) >= (self.TRIAL if self.trying or not self.windows else self.WINDOW)
        if self.fixed is None and (due or sum(self.samples) > self.SECONDS):
            waiting = (seconds_waiting() - self.waited) / sum(self.samples)
            free = free_cores() if self.threads < self.counts[-1] else self.threads
            self._use(self.record(statistics.median(self.samples), waiting, free))

    def record(self, seconds: float, waiting: float, free: int) -> int:
        """The count to train at next, after a window of median step `seconds`, `waiting` for a core,
        with `free` cores that other processes leave (more threads are tried only then)."""
        self.windows += 1
        if self.trying is not None:  # the trial's window, at the other count
            (before, before_seconds), self.trying = self.trying, None
            chosen = self.threads if seconds < before_seconds else before
            if chosen != before:
                print(f"threads: at step {self.steps}, {self.why}: {before} thread(s) {before_seconds * 1000:.1f} ms, "
                      f"{self.threads} thread(s) {seconds * 1000:.1f} ms per step; training with {chosen}")
            self.next_trial = self.windows + round(4 * max(seconds, before_seconds) / min(seconds, before_seconds))
            return chosen
        at_all_cores = self.threads == self.counts[-1]
        self.why = (f"its threads waited {waiting:.2f} s a second for a core" if at_all_cores and waiting > self.WAITING
                    else "cores are free again" if not at_all_cores and free > self.threads else "")
        if self.windows < self.next_trial or not self.why:
            return self.threads
        self.trying = (self.threads, seconds)
        return self.counts[0] if at_all_cores else self.counts[-1]

    def _use(self, threads: int) -> None:
        self.threads, self.samples, self.clock, self.waited = threads, [], time.perf_counter(), seconds_waiting()
        torch.set_num_threads(threads)
