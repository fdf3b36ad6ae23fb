"""Peak memory of a training process, measured in a child so each variant starts from nothing."""

from __future__ import annotations

import resource
from typing import Any

import torch

import charformer as cf
from charformer.train import make_optimizer

from . import baseline as bl
from .common import LECTURE, baseline_step, charformer_step, load, notebook_default_config, notebook_default_train


def peak_rss_child(variant: str, steps: int, queue: Any) -> None:
    torch.set_num_threads(1)
    train, _, tokenizer = load()
    vocab = tokenizer.vocab_size
    if variant == "baseline":
        model: Any = bl.BigramLanguageModel(vocab, **LECTURE)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        step = baseline_step(model, optimizer, train)
    else:
        model = cf.CharTransformer(notebook_default_config(vocab))
        config = notebook_default_train()
        optimizer = make_optimizer(model, config, torch.device("cpu"))
        step = charformer_step(model, optimizer, train, config, torch.Generator().manual_seed(0))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(steps):
        step()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    queue.put({"variant": variant, "peak_rss_mib": after / 1024, "growth_during_training_mib": (after - before) / 1024})


