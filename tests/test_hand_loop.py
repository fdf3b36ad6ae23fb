"""The loop `cf.train` runs, written by hand in about 20 lines, gives the very same weights.

`hand_written_loop` is the loop the notebook shows (section "The loop in view"); keep the two
the same. It matches `cf.train(..., TrainConfig(keep_best=False))` bit for bit on the CPU because
it does what train does, in the same order: run under train's thread count (`num_threads`,
when set: a matmul's sums are split, and rounded, by it), re-seed torch's global stream (dropout's) with
`config.seed`, draw batches from a generator seeded with `config.seed` (train's evaluations use
fixed windows from their own generator, so they take nothing from either stream), set each
group's rate from `learning_rate_at` before the step, zero the gradients, backward, clip when
`grad_clip > 0`, and step a fused AdamW (train's optimizer on CPU and CUDA; the default
single-tensor AdamW rounds differently: about 1e-6 after 30 steps, and on the default 4x64 model
0.017 at most after 200, as rounding differences grow; measured on the shared 2-core machine,
fused took 2.7 ms per optimizer step there against 6 ms, which is why train keeps it).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import charformer as cf

from .conftest import tiny_config


def hand_written_loop(model: cf.CharTransformer, train_data: torch.Tensor, config: cf.TrainConfig) -> None:
    """Train `model` for `config.max_iters` steps exactly as `cf.train` does, minus evaluations."""
    if config.num_threads is not None:
        torch.set_num_threads(config.num_threads)  # train's thread count: sums round by it
    torch.manual_seed(config.seed)  # dropout's random stream, seeded as train seeds it
    batches = torch.Generator().manual_seed(config.seed)  # the batch stream, likewise
    params = list(model.parameters())
    groups = [  # weight decay on the 2-D weights only, not on biases or LayerNorms
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(
        groups, lr=config.learning_rate, betas=(config.beta1, config.beta2), fused=True
    )
    model.train()
    for step in range(config.max_iters):
        for group in optimizer.param_groups:  # warmup, then cosine decay to min_lr
            group["lr"] = cf.learning_rate_at(step, config)
        x, y = cf.get_batch(train_data, config.batch_size, model.config.block_size, generator=batches)
        logits, loss = model(x, y)  # (B, T, vocab_size), mean cross-entropy
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()


def _fresh_model(config: cf.ModelConfig, seed: int) -> cf.CharTransformer:
    torch.manual_seed(seed)
    return cf.CharTransformer(config)


@pytest.fixture
def thread_count_restored():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(
    "dropout, grad_clip, num_threads",
    [(0.0, 0.0, None), (0.1, 1.0, None), (0.0, 0.0, "other")],
    ids=["plain", "dropout-and-clipping", "train's-own-thread-count"],
)
def test_the_hand_written_loop_gives_trains_weights(
    splits, thread_count_restored, dropout: float, grad_clip: float, num_threads: str | None
) -> None:
    train_data, val_data = splits
    model_config = tiny_config(dropout=dropout, n_embd=64)
    # "other": a thread count unlike the current one (the notebook's runs carry a measured one).
    threads = None if num_threads is None else (2 if torch.get_num_threads() == 1 else 1)
    config = cf.TrainConfig(
        max_iters=40, batch_size=8, eval_interval=10, eval_iters=4, warmup_iters=5,
        lr_decay_iters=40, min_lr=1e-4, grad_clip=grad_clip, keep_best=False, num_threads=threads,
    )
    by_train = _fresh_model(model_config, config.seed)
    cf.train(by_train, train_data, val_data, config)
    by_hand = _fresh_model(model_config, config.seed)
    hand_written_loop(by_hand, train_data, config)

    trained = by_train.state_dict()
    assert any(not torch.equal(trained[k], v) for k, v in _fresh_model(model_config, config.seed).state_dict().items())
    for name, value in by_hand.state_dict().items():
        torch.testing.assert_close(value, trained[name], rtol=0, atol=0, msg=f"{name} differs")
        assert torch.equal(value, trained[name]), name
