"""Training tokens per second in one process and in two (torchrun, gradients averaged over gloo), side by side.

  python -m benchmarks.distributed --steps 300

Runs the notebook's default ("cpu" preset) model with `cf.train`: one process at 1 thread, one
process at 2 threads, and 2 processes at 1 thread each under torchrun (each rank its own batch
of `batch_size`, so 2 processes train on twice the tokens per step). Tokens per second count
every rank's tokens: steps x batch_size x block_size x processes / the run's train_seconds
(which include its two evaluations, at step 0 and at the end). The layouts take turns over
`--rounds` rounds and each keeps its fastest, so one burst of other work does not decide.
Prints a table and JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

import charformer as cf
from charformer.distributed import is_main_process, launched

from .common import load, notebook_default_config, notebook_default_train

REPO = Path(__file__).resolve().parent.parent
MARKER = "RESULT "


def measure(steps: int) -> dict[str, Any] | None:
    """One run of cf.train in this process (one rank of a group under torchrun)."""
    train, val, tokenizer = load()
    with launched(torch.device("cpu")):
        torch.manual_seed(0)
        model = cf.CharTransformer(notebook_default_config(tokenizer.vocab_size))
        config = notebook_default_train(steps)
        config = cf.TrainConfig(**{**config.to_dict(), "eval_interval": steps, "eval_iters": 1,
                                   "num_threads": torch.get_num_threads()})
        history = cf.train(model, train, val, config)
        processes = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
        if not is_main_process():
            return None
    tokens = steps * config.batch_size * model.config.block_size * processes
    return {"processes": processes, "threads_per_process": config.num_threads, "steps": steps,
            "batch_per_process": config.batch_size, "train_seconds": round(history.train_seconds, 2),
            "tokens_per_second": round(tokens / history.train_seconds)}


def launch(steps: int, processes: int, threads: int) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TQDM_DISABLE": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    module = ["-m", "benchmarks.distributed", "--worker", "--steps", str(steps)]
    command = [sys.executable, *module] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc_per_node={processes}", *module]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=True)
    line = next(line for line in result.stdout.splitlines() if line.startswith(MARKER))
    return json.loads(line[len(MARKER):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds; the fastest counts")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = measure(args.steps)
        if result is not None:
            print(MARKER + json.dumps(result), flush=True)
        return
    layouts = ((1, 1), (1, 2), (2, 1))
    rounds = [[launch(args.steps, *layout) for layout in layouts] for _ in range(args.rounds)]
    results = [max(runs, key=lambda r: r["tokens_per_second"]) for runs in zip(*rounds)]
    base = results[0]["tokens_per_second"]
    print(f"{os.cpu_count()} cores; load average over the last 1/5/15 minutes at the end: "
          + " / ".join(f"{load:.1f}" for load in os.getloadavg()))
    print("processes  threads each  batch each  train s   tokens/s  vs 1x1")
    for r in results:
        print(f"{r['processes']:>9}  {r['threads_per_process']:>12}  {r['batch_per_process']:>10}  "
              f"{r['train_seconds']:>7.2f}  {r['tokens_per_second']:>9}  {r['tokens_per_second'] / base:5.2f}x")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
