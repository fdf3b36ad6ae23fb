"""One rank of a test run under torchrun: a tiny model on a slice of the shipped text, trained with
cf.train inside a gloo process group, optionally with a failure injected on one rank.

  python -m torch.distributed.run --standalone --nproc_per_node=2 tests/distributed_worker.py OUT [options]

Each rank writes OUT/rank<r>.pt (its weights), OUT/rank<r>.json (its History, or the error it
ended with) and re-raises any error, so the process exits non-zero.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

import charformer as cf

REPO = Path(__file__).resolve().parent.parent
SLICE_CHARS = 20_000
FAILURES = ("none", "on_evaluation", "nonfinite", "sigint", "checkpoint")


def tiny_run(max_iters: int) -> tuple[cf.CharTransformer, cf.TrainConfig, cf.CharTokenizer, Any, Any]:
    """The model, config, vocabulary and splits every test run (one process or many) starts from."""
    text = (REPO / "data" / "input.txt").read_text(encoding="utf-8")[:SLICE_CHARS]
    tokenizer = cf.CharTokenizer.from_text(text)
    data = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    train_data, val_data = cf.train_val_split(data)
    torch.manual_seed(0)
    model = cf.CharTransformer(cf.ModelConfig(
        vocab_size=tokenizer.vocab_size, block_size=16, n_embd=32, n_head=4, n_layer=1, dropout=0.1,
    ))
    config = cf.TrainConfig(max_iters=max_iters, batch_size=8, learning_rate=3e-3, eval_interval=10,
                            eval_iters=2, seed=7, num_threads=1)
    return model, config, tokenizer, train_data, val_data


def inject(failure: str, model: cf.CharTransformer, fail_rank: int, at_step: int) -> dict[str, Any]:
    """The failure to inject on `fail_rank`: a hook on the model's head, or train() arguments."""
    rank = dist.get_rank()
    if failure == "on_evaluation":  # on_evaluation runs on rank 0 only
        def on_evaluation(history: cf.History) -> None:
            if history.iteration >= at_step:
                raise RuntimeError(f"on_evaluation failed on purpose at step {history.iteration}")
        return {"on_evaluation": on_evaluation}
    if failure == "checkpoint":  # rank 0 writes; its folder is a file
        blocker = Path(os.environ["WORKER_OUT"]) / "not-a-folder"
        blocker.touch()
        return {"checkpoint_path": blocker / "run.pt", "checkpoint_every": 1}
    if failure in ("nonfinite", "sigint") and rank == fail_rank:
        forwards = {"count": 0}

        def hook(module: torch.nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
            if not module.training:
                return output
            forwards["count"] += 1
            if forwards["count"] <= at_step:
                return output
            if failure == "sigint":
                os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C would, on this rank only
                return output
            return output * float("nan")

        model.head.register_forward_hook(hook)
    return {}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--max-iters", type=int, default=20)
    parser.add_argument("--continue-to", type=int, default=None, help="then train(history=) to here")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--resume", default=None)
    parser.add_argument("--fail", choices=FAILURES, default="none")
    parser.add_argument("--fail-rank", type=int, default=1)
    parser.add_argument("--fail-at", type=int, default=5)
    args = parser.parse_args()
    out = Path(args.out)
    os.environ["WORKER_OUT"] = str(out)
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    model, config, tokenizer, train_data, val_data = tiny_run(args.max_iters)
    options = inject(args.fail, model, args.fail_rank, args.fail_at)
    if args.checkpoint:
        options["checkpoint_path"] = args.checkpoint
    report: dict[str, Any] = {"rank": rank}
    try:
        history = cf.train(model, train_data, val_data, config, tokenizer=tokenizer,
                           resume_from=args.resume, **options)
        if args.continue_to is not None:
            torch.save(model.state_dict(), out / f"rank{rank}.first.pt")
            config = cf.TrainConfig(**{**config.to_dict(), "max_iters": args.continue_to})
            history = cf.train(model, train_data, val_data, config, history=history)
        report["history"] = history.to_dict()
        torch.save(model.state_dict(), out / f"rank{rank}.pt")
    except BaseException as error:
        report["error"] = {"type": type(error).__name__, "message": str(error)}
        raise
    finally:
        (out / f"rank{rank}.json").write_text(json.dumps(report))
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
