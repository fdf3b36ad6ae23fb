"""Figures for the notebook: loss curves and attention heatmaps (matplotlib, no global state)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from matplotlib.figure import Figure

from .history import History


def plot_losses(history: History, *, title: str = "Training and validation loss") -> Figure:
    """Train and val loss against the step, with ln(65)-style reference left to the caller."""
    if not history.iters:
        raise ValueError("the History has no evaluations to plot")
    figure = Figure(figsize=(7, 4), dpi=90)
    axes = figure.add_subplot()
    axes.plot(history.iters, history.train_loss, label="train")
    axes.plot(history.iters, history.val_loss, label="val")
    axes.set_xlabel("step")
    axes.set_ylabel("cross-entropy loss (nats per character)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    return figure


def plot_attention(
    maps: torch.Tensor, tokens: Sequence[str], layer: int = 0, *, batch_index: int = 0
) -> Figure:
    """One heatmap per head of `layer`: row t shows how much position t attends to each earlier one.

    `maps` is `model.attention_maps(idx)`, shape (n_layer, B, n_head, T, T); `tokens` labels the
    T positions (a string works: one character each).
    """
    if maps.dim() != 5:
        raise ValueError(f"maps must have shape (n_layer, B, n_head, T, T), got {tuple(maps.shape)}")
    n_layer, batch, n_head, T, _ = maps.shape
    if not -n_layer <= layer < n_layer:
        raise ValueError(f"layer {layer} is out of range for {n_layer} layers")
    if not 0 <= batch_index < batch:
        raise ValueError(f"batch_index {batch_index} is out of range for batch size {batch}")
    labels = [repr(t)[1:-1] if t in "\n\t " else t for t in tokens]
    if len(labels) != T:
        raise ValueError(f"got {len(labels)} tokens for {T} positions")
    weights = maps[layer, batch_index].detach().float().cpu()  # (nh, T, T)
    columns = min(n_head, 4)
    rows = math.ceil(n_head / columns)
    figure = Figure(figsize=(3.2 * columns, 3.2 * rows), dpi=80)
    for head in range(n_head):
        axes = figure.add_subplot(rows, columns, head + 1)
        axes.imshow(weights[head].numpy(), cmap="viridis", vmin=0.0, vmax=1.0)
        axes.set_title(f"layer {layer % n_layer}, head {head}", fontsize=9)
        axes.set_xticks(range(T), labels, fontsize=6)
        axes.set_yticks(range(T), labels, fontsize=6)
        axes.set_xlabel("attends to", fontsize=8)
    figure.tight_layout()
    return figure
