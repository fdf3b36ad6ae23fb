"""One side of an A/B of two checkouts: run it with each tree on PYTHONPATH, alternating.

    git worktree add /tmp/oldtree <commit>
    for r in 1 2 3; do for tree in /tmp/oldtree $PWD; do
        PYTHONPATH=$tree python scripts/ab_step.py step 1; PYTHONPATH=$tree python scripts/ab_step.py train
    done; done 2>/dev/null

`step THREADS`: median ms of steps 50-400 of TrainStep on the default model at THREADS threads.
`train`: seconds of cf.train for 1000 steps of the cpu preset, its last val estimate, any threads line.
"""

from __future__ import annotations

import contextlib
import io
import statistics
import sys
import time

import torch

import charformer as cf
from charformer.step import TrainStep

text = cf.load_tiny_shakespeare()
data = cf.CharTokenizer.from_text(text).encode_array(text)
train, val = cf.train_val_split(data)
if sys.argv[1] == "step":
    torch.set_num_threads(int(sys.argv[2]))
    torch.manual_seed(0)
    step = TrainStep(cf.CharTransformer(cf.ModelConfig(vocab_size=65)), cf.TrainConfig(), torch.device("cpu"))
    batches, times = torch.Generator().manual_seed(0), []
    for iteration in range(400):
        x, y = cf.get_batch(train, 16, 32, generator=batches)
        start = time.perf_counter()
        step(iteration, x, y)
        times.append(time.perf_counter() - start)
    print(f"{1000 * statistics.median(times[50:]):.3f}")
else:
    model_config, train_config = cf.configs_from_settings(cf.resolve_settings("cpu", max_iters=1000), 65)
    torch.manual_seed(train_config.seed)
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        history = cf.train(cf.CharTransformer(model_config), train, val, train_config)
    threads = [line for line in printed.getvalue().splitlines() if line.startswith("threads")]
    print(f"{history.train_seconds:.2f} s, val {history.val_loss[-1]:.4f}", threads)
