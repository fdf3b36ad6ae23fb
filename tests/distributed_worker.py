"""One rank of a test launch under torchrun: tiny models on a slice of the shipped text, trained
with cf.train inside a gloo process group.

  python -m torch.distributed.run --standalone --nproc_per_node=2 tests/distributed_worker.py OUT \
      --one-process-checkpoint CKPT     # the runs: each rank saves OUT/<run>.rank<r>.pt and .json
  python -m torch.distributed.run --standalone --nproc_per_node=2 tests/distributed_worker.py OUT
                                        # the failures: OUT/<failure>.rank<r>.json, then exits non-zero
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

import charformer as cf

REPO = Path(__file__).resolve().parent.parent
SLICE_CHARS = 20_000


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
    folder = Path(os.environ["WORKER_OUT"]) / "checkpoints"
    if failure == "checkpoint":  # rank 0 writes; once training runs, its folder becomes a file
        def take_the_folder_away(history: cf.History) -> None:
            if history.iteration == 0:
                shutil.rmtree(folder)
                folder.touch()
        return {"checkpoint_path": folder / "run.pt", "checkpoint_every": 1,
                "on_evaluation": take_the_folder_away}
    if failure == "preflight":  # only rank 0 probes the folder: its probe file's name is taken
        taken = Path(os.environ["WORKER_OUT"]) / "preflight"
        (taken / ".run.pt.tmp").mkdir(parents=True, exist_ok=True)
        return {"checkpoint_path": taken / "run.pt"}
    if failure in ("forward", "backward", "evaluation") and rank == fail_rank:
        forwards = {"train": 0, "eval": 0}

        def fail(module: torch.nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
            mode = "train" if module.training else "eval"
            forwards[mode] += 1
            if failure == "evaluation" and mode == "eval" and forwards["eval"] > 2:  # step 10's
                raise RuntimeError(f"evaluation failed on rank {rank}")
            if mode == "train" and forwards["train"] > at_step and failure == "forward":
                raise RuntimeError(f"forward failed on rank {rank}")
            if mode == "train" and forwards["train"] > at_step and failure == "backward":
                def raise_in_backward(grad: torch.Tensor) -> torch.Tensor:
                    raise RuntimeError(f"backward failed on rank {rank}")
                output.register_hook(raise_in_backward)
            return output

        model.head.register_forward_hook(fail)
    if failure == "evaluation":  # rank 0 reaches the checkpoint's gather while rank 1 fails
        return {"checkpoint_path": folder.with_name("evaluation") / "run.pt", "checkpoint_every": 1}
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


def save(out: Path, name: str, model: cf.CharTransformer, history: cf.History) -> None:
    rank = dist.get_rank()
    torch.save(model.state_dict(), out / f"{name}.rank{rank}.pt")
    (out / f"{name}.rank{rank}.json").write_text(json.dumps(history.to_dict()))


def runs(out: Path, one_process_checkpoint: str) -> None:
    """20 steps with a checkpoint, on to 30 with history=, the same from the checkpoint, and a
    one-process checkpoint continued here."""
    model, config, tokenizer, train_data, val_data = tiny_run(20)
    history = cf.train(model, train_data, val_data, config, tokenizer=tokenizer,
                       checkpoint_path=out / "run.pt")
    save(out, "first", model, history)
    longer = cf.TrainConfig(**{**config.to_dict(), "max_iters": 30})
    history = cf.train(model, train_data, val_data, longer, history=history)
    save(out, "continued", model, history)
    model = tiny_run(30)[0]
    history = cf.train(model, train_data, val_data, longer, resume_from=out / "run.pt")
    save(out, "resumed", model, history)
    model = tiny_run(20)[0]
    history = cf.train(model, train_data, val_data, config, resume_from=one_process_checkpoint)
    save(out, "from_one_process", model, history)


def failures(out: Path) -> None:
    """Each failure in turn, in the same process group: every rank must stop with an error and
    still be in step with the others for the next run. Exits with the last error."""
    last: BaseException | None = None
    for failure, fail_rank in (("on_evaluation", 0), ("checkpoint", 0), ("nonfinite", 1), ("forward", 1),
                               ("backward", 1), ("evaluation", 1), ("preflight", 0), ("sigint", 1)):
        model, config, tokenizer, train_data, val_data = tiny_run(40)
        options = inject(failure, model, fail_rank, at_step=5)
        report: dict[str, Any] = {}
        try:
            cf.train(model, train_data, val_data, config, tokenizer=tokenizer, **options)
        except BaseException as error:
            report = {"type": type(error).__name__, "message": str(error)}
            last = error
        (out / f"{failure}.rank{dist.get_rank()}.json").write_text(json.dumps(report))
    if last is not None:
        raise last


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--one-process-checkpoint", default=None)
    args = parser.parse_args()
    out = Path(args.out)
    os.environ["WORKER_OUT"] = str(out)
    dist.init_process_group("gloo")
    try:
        if args.one_process_checkpoint:
            runs(out, args.one_process_checkpoint)
        else:
            failures(out)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
