"""The TPU path, run for real on torch_xla's CPU backend by scripts/test-xla.sh.

The default test run has no torch_xla and skips this module; the script installs torch 2.9.0 +
torch_xla 2.9.0 in a separate environment and runs it with PJRT_DEVICE=CPU.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

import charformer as cf

torch_xla = pytest.importorskip(
    "torch_xla", reason="torch_xla is not installed: scripts/test-xla.sh runs these on PJRT CPU"
)
import torch_xla.debug.metrics as metrics  # noqa: E402

from .conftest import tiny_model  # noqa: E402

pytestmark = pytest.mark.xla


def compilations() -> int:
    data = metrics.metric_data("CompileTime")
    return 0 if data is None else int(data[0])


@pytest.fixture(scope="module")
def device() -> torch.device:
    device = cf.pick_device("xla")
    assert device.type == "xla"
    return device


def test_train_compiles_a_handful_of_graphs(splits, tokenizer, device, tmp_path: Path, capsys) -> None:
    train, val = splits
    model = tiny_model().to(device)
    config = cf.TrainConfig(max_iters=40, eval_interval=10, eval_iters=4, learning_rate=3e-3)
    before = compilations()
    start = time.perf_counter()
    history = cf.train(model, train, val, config, device=device, tokenizer=tokenizer,
                       checkpoint_path=tmp_path / "xla.pt")
    seconds = time.perf_counter() - start
    compiled = compilations() - before
    with capsys.disabled():
        print(f"\n[xla] train: 40 steps, 5 evaluations, {compiled} compilations, {seconds:.1f} s")
    assert history.iters == [0, 10, 20, 30, 40]
    assert history.val_loss[-1] < history.val_loss[0] - 0.3
    assert compiled <= 15, f"{compiled} graphs compiled for 40 steps: one per step?"

    checkpoint = cf.load_checkpoint(tmp_path / "xla.pt")
    x = torch.randint(65, (2, 16))
    with torch.no_grad():
        expected = model.eval()(x.to(device))[0].cpu()
        assert torch.allclose(checkpoint.model(x)[0], expected, atol=1e-4)
    resumed = cf.train(checkpoint.model.to(device), train, val,
                       cf.TrainConfig(**{**config.to_dict(), "max_iters": 50}),
                       device=device, resume_from=tmp_path / "xla.pt")
    assert resumed.iters[-1] == 50


def test_generate_compiles_once_not_per_token(device, capsys) -> None:
    model = tiny_model().to(device)
    prompt = torch.zeros((1, 1), dtype=torch.long, device=device)
    model.generate(prompt, 2, generator=torch.Generator().manual_seed(0))  # warm-up
    before = compilations()
    start = time.perf_counter()
    out = model.generate(prompt, 60, generator=torch.Generator().manual_seed(0))
    seconds = time.perf_counter() - start
    compiled = compilations() - before
    with capsys.disabled():
        print(f"\n[xla] generate: 60 tokens, {compiled} compilations, {seconds:.1f} s")
    assert out.shape == (1, 61)
    # The window's fill phase and its slide phase each compile a few graphs once.
    assert compiled <= 8, f"{compiled} graphs compiled for 60 tokens"
    # The same tokens as the eager CPU path for the same generator and weights.
    cpu_model = tiny_model()
    expected = cpu_model.generate(prompt.cpu(), 60, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out.cpu(), expected)


def test_the_xla_device_is_named_and_described(monkeypatch: pytest.MonkeyPatch) -> None:
    """On PJRT's CPU backend there is no TPU: "tpu" is refused, "xla" (by name or environment) runs."""
    monkeypatch.delenv("CHARFORMER_DEVICE", raising=False)
    with pytest.raises(cf.DeviceError, match="^device 'tpu' is not available here; available here: 'xla', 'cpu' "):
        cf.pick_device("tpu")
    assert cf.pick_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setenv("CHARFORMER_DEVICE", "xla")
    device = cf.pick_device()
    assert device.type == "xla"
    assert cf.describe_device(device).startswith(f"device: {device} (torch_xla on its CPU backend); torch 2.")


def test_mark_step_runs_each_step_of_a_hand_written_loop(splits, device) -> None:
    """Without it, the loop below would build one graph of all 12 steps and run it once at the end."""
    train, _ = splits
    model = tiny_model().to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)  # foreach: fused=True refuses XLA
    batches = torch.Generator().manual_seed(0)
    model(*cf.get_batch(train, 4, 16, generator=batches, device=device))[1].backward()  # warm-up
    cf.mark_step(device)
    runs = metrics.metric_data("ExecuteTime")[0]
    before = compilations()
    for _ in range(12):
        _, loss = model(*cf.get_batch(train, 4, 16, generator=batches, device=device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        cf.mark_step(device)
    assert metrics.metric_data("ExecuteTime")[0] - runs >= 12  # a graph run per step
    assert compilations() - before <= 3  # the same graph, compiled once or twice
    assert torch.isfinite(loss).item()
    cf.mark_step("cpu")  # nothing to do off XLA
