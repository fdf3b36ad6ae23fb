"""The CUDA path, run for real where a GPU is at hand (scripts/gpu-check.sh); skipped elsewhere."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import charformer as cf

from .conftest import tiny_model

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (scripts/gpu-check.sh)"),
]
QUICK = dict(batch_size=32, learning_rate=3e-3, eval_interval=50, eval_iters=4)


def test_bf16_training_lowers_the_loss(splits) -> None:
    train, val = splits
    device = torch.device("cuda")
    assert cf.choose_precision("cuda", torch.cuda.is_bf16_supported()) == "bf16"
    history = cf.train(tiny_model(), train, val, cf.TrainConfig(max_iters=200, compile=False, **QUICK), device=device)
    assert history.val_loss[-1] < history.val_loss[0] - 1.0


def test_compile_on_and_off_give_close_losses(splits) -> None:
    train, val = splits
    device = torch.device("cuda")
    eager = cf.train(tiny_model(), train, val, cf.TrainConfig(max_iters=100, compile=False, **QUICK), device=device)
    compiled = cf.train(tiny_model(), train, val, cf.TrainConfig(max_iters=100, compile=True, **QUICK), device=device)
    assert compiled.val_loss[-1] == pytest.approx(eager.val_loss[-1], abs=0.05)


def test_a_forced_compile_failure_falls_back_to_eager(splits, capsys, monkeypatch) -> None:
    train, val = splits

    def broken_backend(graph_module, example_inputs):
        raise RuntimeError("forced failure")

    monkeypatch.setattr(importlib.import_module("charformer.step"), "COMPILE_BACKEND", broken_backend)
    history = cf.train(tiny_model(), train, val, cf.TrainConfig(max_iters=20, compile=True, **QUICK),
                       device=torch.device("cuda"))
    assert history.iteration == 20 and "torch.compile failed" in capsys.readouterr().out


def test_sampling_paths_agree_on_cuda() -> None:
    model = tiny_model().cuda().eval()
    prompt = torch.zeros((1, 1), dtype=torch.long, device="cuda")
    with torch.inference_mode():
        growing = model.generate(prompt, 40, generator=torch.Generator().manual_seed(5))
        fixed = model._generate_fixed_shape(prompt, 40, 1.0, None, torch.Generator().manual_seed(5))
    assert torch.equal(growing.cpu(), fixed.cpu())


def test_torchrun_trains_one_model_over_nccl(tmp_path) -> None:
    """One process per GPU (up to 2) under torchrun: NCCL for the gradients, gloo for the flags."""
    processes = min(2, torch.cuda.device_count())
    repo = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
         "-m", "charformer", "train", "--device", "cuda", "--max-iters", "20", "--eval-interval", "10",
         "--eval-iters", "2", "--sample-chars", "20", "--save", str(tmp_path / "nccl.pt")],
        cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)}, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("finished 20 steps") == 1
    checkpoint = cf.load_checkpoint(tmp_path / "nccl.pt")
    assert checkpoint.training_state["world_size"] == processes
