"""Configs reject every invalid value at construction."""

from __future__ import annotations

import pytest

import charformer as cf


@pytest.mark.parametrize(
    "overrides",
    [
        dict(n_embd=30, n_head=4),
        dict(vocab_size=0),
        dict(block_size=0),
        dict(n_embd=0),
        dict(n_head=0),
        dict(n_layer=0),
        dict(dropout=-0.1),
        dict(dropout=1.0),
        dict(dropout=float("nan")),
        dict(attention="flash"),
        dict(positional="rotary"),
        dict(activation="swish"),
        dict(block_size=2.0),
        dict(n_layer=True),
    ],
)
def test_model_config_rejects(overrides: dict) -> None:
    with pytest.raises(ValueError):
        cf.ModelConfig(**overrides)


def test_model_config_defaults_and_round_trip() -> None:
    config = cf.ModelConfig(vocab_size=65, attention="explicit", positional="sinusoidal")
    assert cf.ModelConfig.from_dict(config.to_dict()) == config
    assert config.head_size == config.n_embd // config.n_head
    with pytest.raises(ValueError, match="unknown"):
        cf.ModelConfig.from_dict({**config.to_dict(), "bias": True})


def test_train_config_seed_recipe_defaults() -> None:
    config = cf.TrainConfig()
    assert (config.batch_size, config.learning_rate, config.max_iters, config.eval_interval) == (
        16, 1e-3, 5000, 100,
    )
    assert config.lr_decay_iters is None and config.grad_clip >= 0 and config.seed == 1337
    assert config.num_threads is None and config.compile is None and config.keep_best and config.patience is None


@pytest.mark.parametrize(
    "overrides",
    [
        dict(batch_size=0),
        dict(learning_rate=0.0),
        dict(learning_rate=-1e-3),
        dict(learning_rate=float("inf")),
        dict(max_iters=0),
        dict(eval_interval=0),
        dict(eval_iters=0),
        dict(weight_decay=-0.1),
        dict(beta1=1.0),
        dict(beta2=-0.5),
        dict(grad_clip=-1.0),
        dict(warmup_iters=-1),
        dict(lr_decay_iters=0),
        dict(warmup_iters=100, lr_decay_iters=50),
        dict(min_lr=1e-2),
        dict(num_threads=0),
        dict(compile="yes"),
        dict(seed=-1),
        dict(keep_best=1),
        dict(patience=0),
        dict(patience=2.5),
    ],
)
def test_train_config_rejects(overrides: dict) -> None:
    with pytest.raises(ValueError):
        cf.TrainConfig(**overrides)


def test_learning_rate_schedule() -> None:
    config = cf.TrainConfig(learning_rate=1e-3, min_lr=1e-4, warmup_iters=10, lr_decay_iters=110)
    rates = [cf.learning_rate_at(i, config) for i in range(200)]
    assert rates[0] < rates[5] < rates[9] <= 1e-3
    assert rates[10] == pytest.approx(1e-3)
    assert rates[60] == pytest.approx((1e-3 + 1e-4) / 2)
    assert all(a >= b for a, b in zip(rates[10:], rates[11:]))
    assert rates[150] == 1e-4
    constant = cf.TrainConfig()
    assert {cf.learning_rate_at(i, constant) for i in (0, 10, 4999)} == {1e-3}
