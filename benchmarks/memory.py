"""Peak memory of a training process, measured in a child so each variant starts from nothing."""

from __future__ import annotations

import gc
from typing import Any

import torch

import charformer as cf
from charformer.step import make_optimizer

from . import baseline as bl
from .common import LECTURE, baseline_step, charformer_step, load, notebook_default_config, notebook_default_train


def _status_kib(field: str) -> int:
    """A memory field of /proc/self/status (VmRSS, VmHWM) in KiB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux: write 5 to clear_refs); False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def peak_rss_child(variant: str, steps: int, queue: Any) -> None:
    """Load the data, then measure how far training `steps` steps raises the peak RSS above it."""
    torch.set_num_threads(1)
    train, _, tokenizer = load()
    vocab = tokenizer.vocab_size
    gc.collect()
    loaded_peak = _status_kib("VmHWM")
    reset = _reset_peak_rss()
    before = _status_kib("VmRSS")
    if variant == "baseline":
        model: Any = bl.BigramLanguageModel(vocab, **LECTURE)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        step = baseline_step(model, optimizer, train)
    else:
        model = cf.CharTransformer(notebook_default_config(vocab))
        config = notebook_default_train()
        optimizer = make_optimizer(model, config, torch.device("cpu"))
        step = charformer_step(model, optimizer, train, config, torch.Generator().manual_seed(0))
    for _ in range(steps):
        step()
    queue.put({
        "variant": variant,
        "peak_rss_mib": max(loaded_peak, _status_kib("VmHWM")) / 1024,
        "training_peak_above_loaded_mib": (_status_kib("VmHWM") - before) / 1024 if reset else None,
    })
