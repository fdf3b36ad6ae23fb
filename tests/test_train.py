"""train(): learning on the real text, printed evaluations, interrupts, non-finite losses, resume."""

from __future__ import annotations

import math
import os
import signal
import threading
from pathlib import Path

import pytest
import torch

import charformer as cf

from .conftest import tiny_model

QUICK = dict(batch_size=16, learning_rate=3e-3, eval_interval=50, eval_iters=4)


def bigram_val_loss(train: torch.Tensor, val: torch.Tensor) -> float:
    """The best any bigram model can do: smoothed counts from the training split."""
    counts = torch.ones(65, 65)
    counts.index_put_((train[:-1], train[1:]), torch.ones(len(train) - 1), accumulate=True)
    log_probs = (counts / counts.sum(1, keepdim=True)).log()
    return -log_probs[val[:-1], val[1:]].mean().item()


def test_a_few_hundred_steps_beat_the_best_bigram(splits, capsys) -> None:
    train, val = splits
    model = tiny_model()
    history = cf.train(model, train, val, cf.TrainConfig(max_iters=400, **QUICK))
    assert history.iters == [0, 50, 100, 150, 200, 250, 300, 350, 400]
    assert history.iteration == 400 and not history.interrupted
    assert history.val_loss[0] == pytest.approx(math.log(65), abs=0.1)
    bigram = bigram_val_loss(train, val)
    assert history.final_val_loss is not None
    assert history.final_val_loss < bigram - 0.05, (history.final_val_loss, bigram)
    assert history.elapsed == sorted(history.elapsed) and history.train_seconds > 0
    printed = capsys.readouterr().out
    assert f"step 400: train loss {history.train_loss[-1]:.4f}, val loss {history.val_loss[-1]:.4f}" in printed
    assert "finished 400 steps in" in printed and "bits per character" in printed


def test_same_seed_same_numbers(splits) -> None:
    train, val = splits
    config = cf.TrainConfig(max_iters=30, **{**QUICK, "eval_interval": 10})
    first = cf.train(tiny_model(dropout=0.1), train, val, config)
    second = cf.train(tiny_model(dropout=0.1), train, val, config)
    assert first.train_loss == second.train_loss and first.val_loss == second.val_loss
    third = cf.train(tiny_model(dropout=0.1), train, val, cf.TrainConfig(max_iters=30, seed=1, **{**QUICK, "eval_interval": 10}))
    assert third.val_loss != first.val_loss


def test_num_threads_applies_to_the_call_only(splits) -> None:
    train, val = splits
    before = torch.get_num_threads()
    cf.train(tiny_model(), train, val, cf.TrainConfig(max_iters=2, num_threads=1, **QUICK))
    assert torch.get_num_threads() == before


def test_interrupt_then_continue_matches_a_straight_run(splits) -> None:
    train, val = splits
    config = cf.TrainConfig(max_iters=600, **{**QUICK, "eval_interval": 100})
    straight_model = tiny_model(dropout=0.1)
    straight = cf.train(straight_model, train, val, config)

    model = tiny_model(dropout=0.1)
    # The stop button sends SIGINT to the kernel; send a real one mid-run.
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        history = cf.train(model, train, val, config)
    finally:
        timer.cancel()
    assert history.interrupted, "the run ended before the interrupt arrived; raise max_iters"
    assert 0 < history.iteration < 600
    stopped_at = history.iteration
    history = cf.train(model, train, val, config, history=history)
    assert not history.interrupted and history.iteration == 600
    assert history.iters == straight.iters
    assert history.train_loss == straight.train_loss and history.val_loss == straight.val_loss
    for (name, a), b in zip(model.state_dict().items(), straight_model.state_dict().values()):
        assert torch.equal(a, b), f"{name} differs after resuming at step {stopped_at}"


def test_non_finite_loss_stops_with_the_best_finite_weights(splits) -> None:
    train, val = splits
    config = cf.TrainConfig(max_iters=200, **{**QUICK, "learning_rate": 1e6, "min_lr": 0.0,
                                              "eval_interval": 1, "grad_clip": 0.0})
    model = tiny_model()
    with pytest.raises(cf.NonFiniteLossError) as caught:
        cf.train(model, train, val, config)
    error = caught.value
    assert isinstance(error, FloatingPointError)
    assert f"iteration {error.iteration}" in str(error) and "not finite" in str(error)
    history = error.history
    assert isinstance(history, cf.History) and history.iters
    assert all(math.isfinite(v) for v in history.val_loss)
    assert history.best_val_loss == min(history.val_loss)
    assert f"best evaluation (step {history.best_iter}) were restored" in str(error)
    # The restored weights are those of the best finite evaluation: replay up to it.
    replay = tiny_model()
    if history.best_iter > 0:
        cf.train(replay, train, val, cf.TrainConfig(**{**config.to_dict(), "max_iters": history.best_iter}))
    for a, b in zip(model.state_dict().values(), replay.state_dict().values()):
        assert torch.equal(a, b)


def test_argument_checks(splits, tokenizer, tmp_path: Path) -> None:
    train, val = splits
    config = cf.TrainConfig(max_iters=2, **QUICK)
    with pytest.raises(ValueError, match="tokenizer"):
        cf.train(tiny_model(), train, val, config, checkpoint_path=tmp_path / "c.pt")
    with pytest.raises(ValueError):
        cf.train(tiny_model(), train, val, config, checkpoint_every=0, checkpoint_path=tmp_path / "c.pt", tokenizer=tokenizer)
    with pytest.raises(ValueError):
        cf.train(tiny_model(), train, val[:10], config)
    with pytest.raises(ValueError):
        cf.train(tiny_model(), train, val, {"max_iters": 2})  # type: ignore[arg-type]
    assert not list(tmp_path.iterdir())


def test_resume_refuses_a_different_model_or_vocabulary(splits, tokenizer, tmp_path: Path) -> None:
    train, val = splits
    config = cf.TrainConfig(max_iters=5, **QUICK)
    path = tmp_path / "run.pt"
    cf.train(tiny_model(), train, val, config, tokenizer=tokenizer, checkpoint_path=path)
    with pytest.raises(cf.CheckpointError) as caught:
        cf.train(tiny_model(n_layer=3), train, val, config, resume_from=path)
    assert "a model of 2 layers; this model has 3 layers" in str(caught.value) and str(path) in str(caught.value)
    other_vocab = cf.CharTokenizer(tokenizer.chars[:-1] + ["é"])
    with pytest.raises(cf.CheckpointError) as caught:
        cf.train(tiny_model(), train, val, config, tokenizer=other_vocab, resume_from=path)
    assert "vocabulary" in str(caught.value) and "é" in str(caught.value)


def test_periodic_checkpoints(splits, tokenizer, tmp_path: Path) -> None:
    train, val = splits
    path = tmp_path / "periodic.pt"
    config = cf.TrainConfig(max_iters=100, **{**QUICK, "eval_interval": 20})
    cf.train(tiny_model(), train, val, config, tokenizer=tokenizer, checkpoint_path=path, checkpoint_every=2)
    checkpoint = cf.load_checkpoint(path)
    assert checkpoint.iteration == 100
    assert checkpoint.history is not None and checkpoint.history.iters == [0, 20, 40, 60, 80, 100]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["periodic.pt"]
