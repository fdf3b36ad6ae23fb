"""python -m benchmarks.under_load: training steps beside 0, 1 and 2 busy processes, side by side.

Issue 26: on a 2-core machine two threads collapse when another process takes a core. For each
load (its busy processes started here and killed at the end, each with a hard time limit) this
times the notebook's default model at the default choice (charformer.threads.ThreadChoice, made
beside the load as when a run starts under it, and made before the load as when the load comes
mid-run) and at a fixed 1 and all-core count, one after the other in this process. The machine is shared, so read the
ratios to each row's quiet figure, not the milliseconds. `--quick` runs a few steps (a smoke test).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import torch

import charformer as cf
from charformer.step import TrainStep
from charformer.threads import ThreadChoice, available_cores

from .common import load, notebook_default_config, notebook_default_train

BUSY = {  # what a busy process runs until killed, or for at most `limit` seconds
    "python": "import time\nend = time.monotonic() + {limit}\nwhile time.monotonic() < end: pass",
    "torch": "import time, torch\nend = time.monotonic() + {limit}\na = torch.randn(64, 64)\n"
             "while time.monotonic() < end: a = torch.tanh(a @ a)",  # another torch job at all cores
}


@contextlib.contextmanager
def busy_processes(count: int, kind: str, limit: float) -> Iterator[None]:
    """`count` CPU-bound processes for the block, killed at its end (or after `limit` seconds)."""
    code = BUSY[kind].format(limit=limit)
    processes = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(count)]
    try:
        time.sleep(1.0 if count else 0.0)  # let them start spinning
        yield
    finally:
        for process in processes:
            process.kill()
            process.wait()


def step_times(train: torch.Tensor, vocab_size: int, threads: ThreadChoice, steps: int,
               seconds: float) -> list[float]:
    """Seconds of each training step under `threads` from a fresh default model, stopping early
    after `seconds`."""
    model_config = notebook_default_config(vocab_size)
    train_config = notebook_default_train(steps)
    torch.manual_seed(train_config.seed)
    step = TrainStep(cf.CharTransformer(model_config), train_config, torch.device("cpu"))
    generator = torch.Generator().manual_seed(train_config.seed)
    times: list[float] = []
    started = time.perf_counter()
    with threads:
        for iteration in range(steps):
            x, y = cf.get_batch(train, train_config.batch_size, model_config.block_size, generator=generator)
            before = time.perf_counter()
            step(iteration, x, y)
            threads.after_step()
            times.append(time.perf_counter() - before)
            if time.perf_counter() - started > seconds:
                break
    return times


def summary(times: list[float]) -> dict[str, float]:
    """ms per step: the median of the last half (after any change of count) and the mean of all."""
    return {"settled_ms": 1000 * statistics.median(times[len(times) // 2:]),
            "mean_ms": 1000 * statistics.fmean(times), "steps": len(times)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.under_load", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few steps, quiet and +1 only (smoke test)")
    parser.add_argument("--busy", choices=sorted(BUSY), default="python", help="what each busy process runs")
    parser.add_argument("--steps", type=int, default=400, help="steps per variant and load")
    parser.add_argument("--seconds", type=float, default=40.0, help="at most this long per variant and load")
    parser.add_argument("--start-threads", type=int, default=None,
                        help="the default's count before the load (default: measured here, as new_run does)")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args(argv)
    cores = available_cores()
    loads = [0, 1] if args.quick else [0, 1, 2]
    steps, seconds = (5, 0.5) if args.quick else (args.steps, args.seconds)
    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    train, _, tokenizer = load()
    default = None  # automatic, unless 1 thread measured faster before the load (as new_run does)
    if args.start_threads is None and not args.quick:
        automatic = dataclasses.replace(notebook_default_train(steps), num_threads=None)  # the notebook's own
        default = cf.choose_num_threads(notebook_default_config(tokenizer.vocab_size), automatic,
                                        train, torch.device("cpu")).num_threads
    start = args.start_threads or torch.get_num_threads()
    late = "default, load came later"  # made before the busy processes start, as when they come mid-run
    variants: dict[str, int | None] = {"default": default, late: default, "1 thread": 1, f"{cores} threads": cores}
    results: dict[str, Any] = {"cores": cores, "busy": args.busy, "start_threads": start, "rows": {}}
    for name in variants:
        results["rows"][name] = {}
    for busy in loads:
        torch.set_num_threads(start)  # what choose_num_threads measured on the quiet machine
        came_later = ThreadChoice(default)
        with busy_processes(busy, args.busy, limit=len(variants) * seconds + 60):
            for name, threads in variants.items():
                choice = came_later if name == late else ThreadChoice(threads)
                row = summary(step_times(train, tokenizer.vocab_size, choice, steps, seconds))
                results["rows"][name][busy] = row
                print(f"  {name} +{busy} busy: {row['settled_ms']:.1f} ms/step settled, {row['mean_ms']:.1f} mean "
                      f"over {row['steps']} steps", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(f"\nms per training step, default model, {cores} cores, busy processes: {args.busy}; "
          "settled (median of the last half) / mean of all steps; x: settled over the same row's quiet")
    print(f"{'':26}" + "".join(f"{'quiet' if busy == 0 else f'+{busy} busy':>24}" for busy in loads))
    for name, row in results["rows"].items():
        quiet = row[0]["settled_ms"]
        cells = [f"{r['settled_ms']:6.1f} / {r['mean_ms']:6.1f}" + (f" {r['settled_ms'] / quiet:4.2f}x" if busy else "      ")
                 for busy, r in row.items()]
        print(f"{name:26}" + "".join(f"{cell:>24}" for cell in cells))
    if args.json:
        with open(args.json, "w") as file:
            json.dump(results, file, indent=2)


if __name__ == "__main__":
    main()
