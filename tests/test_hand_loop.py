"""The loop `cf.train` runs, written by hand in about 20 lines, gives the very same weights.

`hand_written_loop` is the loop the notebook shows (section "The loop in view"); keep the two
the same. It matches `cf.train(..., TrainConfig(keep_best=False))` bit for bit on the CPU because
it does what train does, in the same order: run under train's thread count (`ThreadChoice`:
`num_threads` when set; a matmul's sums are split, and rounded, by it), re-seed torch's global stream (dropout's) with
`config.seed`, draw batches from a generator seeded with `config.seed` (train's evaluations use
fixed windows from their own generator, so they take nothing from either stream), set each
group's rate from `learning_rate_at` before the step, zero the gradients, backward, clip when
`grad_clip > 0`, and step a fused AdamW (train's optimizer on CPU and CUDA; the default
single-tensor AdamW rounds differently: about 1e-6 after 30 steps, and on the default 4x64 model
0.017 at most after 200, as rounding differences grow; measured on the shared 2-core machine,
fused took 2.7 ms per optimizer step there against 6 ms, which is why train keeps it).
"""

from __future__ import annotations

import inspect
import json
import re

import pytest
import torch
from torch import nn

import charformer as cf
from charformer.step import TrainStep

from .conftest import REPO, tiny_config


def hand_written_loop(model: cf.CharTransformer, train_data: torch.Tensor, config: cf.TrainConfig) -> None:
    """Train `model` for `config.max_iters` steps exactly as `cf.train` does, minus evaluations."""
    block_size = model.config.block_size
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
    with cf.ThreadChoice(config.num_threads) as threads:  # train's thread count: sums round by it
        for step in range(config.max_iters):
            for group in optimizer.param_groups:  # warmup, then cosine decay to min_lr
                group["lr"] = cf.learning_rate_at(step, config)
            x, y = cf.get_batch(train_data, config.batch_size, block_size, generator=batches)  # (B, T) each
            logits, loss = model(x, y)  # (B, T, vocab_size), mean cross-entropy
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            threads.after_step()


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


# The operations of one step, as each loop writes them, in the order the notebook's loop runs them.
STEP_OPERATIONS = {
    "learning rate": r"learning_rate_at\(",
    "batch": r"get_batch\(",
    "forward": r"(model|self\.forward)\(x, y\)",
    "zero_grad": r"zero_grad\(set_to_none=True\)",
    "backward": r"\.backward\(\)",
    "clip": r"clip_grad_norm_\(",
    "update": r"optimizer\.step\(\)",
}


def _loop_lines(source: str) -> list[str]:
    """The lines of the `for step in range(...)` loop in `source`, without comments or indentation."""
    lines = source.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("for step in range("))
    indent = len(lines[start]) - len(lines[start].lstrip())
    loop = [lines[start]]
    for line in lines[start + 1:]:
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            break  # the loop ends where a line is no deeper than its `for`
        loop.append(line)
    return [line.split("  #")[0].strip() for line in loop if line.strip()]


def _order(source: str) -> list[str]:
    """STEP_OPERATIONS by where each first appears in `source`."""
    found = {name: re.search(pattern, source) for name, pattern in STEP_OPERATIONS.items()}
    missing = [name for name, match in found.items() if match is None]
    assert not missing, f"not found: {missing}"
    return sorted(found, key=lambda name: found[name].start())  # type: ignore[union-attr]


def test_the_notebooks_loop_and_trains_loop_side_by_side() -> None:
    """The notebook's loop (section 7) is this file's, line for line; and train()'s loop, with
    TrainStep's call written in place of `step(...)`, runs the same operations in the same order
    (the learning rate and the batch, which do not depend on each other, before the forward)."""
    notebook = json.loads((REPO / "notebooks" / "tiny_shakespeare_transformer.ipynb").read_text())
    by_hand = next("".join(cell["source"]) for cell in notebook["cells"]
                   if "".join(cell["source"]).startswith("def train_by_hand("))
    assert _loop_lines(by_hand) == _loop_lines(inspect.getsource(hand_written_loop))

    loop = inspect.getsource(cf.train)
    loop = loop[loop.index("while not"):]
    step_call = inspect.getsource(TrainStep.__call__).replace(
        "self._loss_and_gradients_or_fall_back(x, y)", inspect.getsource(TrainStep._loss_and_gradients))
    unrolled = loop.replace("step(run.iteration, x, y)", step_call)
    assert "step(run.iteration, x, y)" in loop and _order(unrolled)[2:] == _order(by_hand)[2:]
    assert set(_order(unrolled)[:2]) == set(_order(by_hand)[:2]) == {"learning rate", "batch"}
    assert len(inspect.getsource(cf.train).splitlines()) <= 60  # a loop a reader can hold
