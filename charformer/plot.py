"""Figures for the notebook: loss curves and attention heatmaps (matplotlib, no global state)."""

from __future__ import annotations

import io
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .history import History


def plot_losses(history: History, *, title: str = "Training and validation loss") -> Figure:
    """Train and val loss against the step, the best val evaluation marked."""
    if not history.iters:
        raise ValueError("the History has no evaluations to plot")
    figure = Figure(figsize=(7, 4), dpi=80)
    axes = figure.add_subplot()
    marker = "o" if len(history.iters) == 1 else None  # a one-point line is invisible without one
    axes.plot(history.iters, history.train_loss, marker=marker, label="train")
    axes.plot(history.iters, history.val_loss, marker=marker, label="val")
    if history.best_iter is not None and history.best_val_loss is not None:
        axes.scatter([history.best_iter], [history.best_val_loss], color="C3", zorder=3,
                     label=f"best val {history.best_val_loss:.4f} at step {history.best_iter}")
    _readable_limits(axes, history.iters, history.train_loss + history.val_loss)
    axes.set_xlabel("step")
    axes.set_ylabel("cross-entropy loss (nats per character)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    return figure


# The narrowest loss range an axis shows: one or two evaluations (or a flat curve) would
# otherwise be autoscaled to a sliver of 1e-4 drawn as "+4.167" with ticks 0.0001-0.0008.
MIN_LOSS_SPAN = 0.2


def _readable_limits(axes: Any, steps: Sequence[int], losses: Sequence[float]) -> None:
    """Whole-step ticks, at least MIN_LOSS_SPAN of loss, and plain tick labels (no offset)."""
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    right = max(max(steps), 1) * 1.02
    axes.set_xlim(-0.02 * right, right)  # a little room, so that a point at step 0 shows whole
    low, high = min(losses), max(losses)
    if high - low < MIN_LOSS_SPAN:
        middle = (low + high) / 2
        axes.set_ylim(middle - MIN_LOSS_SPAN / 2, middle + MIN_LOSS_SPAN / 2)
    axes.ticklabel_format(useOffset=False, style="plain")


def _running_in_a_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return hasattr(get_ipython(), "kernel")  # a kernel's shell, not a terminal's (None outside IPython)


class LivePlot:
    """Loss curves redrawn in place (at most every `min_seconds`) as `train(..., on_evaluation=)`;
    outside Jupyter it writes `path` (a PNG) if given; as a context manager it draws the end on exit."""

    def __init__(self, title: str = "Training and validation loss", *,
                 path: str | Path | None = None, min_seconds: float = 5.0) -> None:
        self.title = title
        self.path = None if path is None else Path(path)
        self.min_seconds = min_seconds
        self.history: History | None = None
        self.draws = 0
        self.figure: Figure | None = None  # the last frame drawn
        self._handle: Any = None
        self._last_draw = -math.inf

    def __call__(self, history: History) -> None:
        self.history = history
        if time.perf_counter() - self._last_draw >= self.min_seconds:
            self.draw()

    def __enter__(self) -> LivePlot:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.history is not None and self.history.iters:
            self.draw()

    def draw(self) -> None:
        """Render the current History and show it (or write it) now."""
        assert self.history is not None
        figure = self.figure = plot_losses(self.history, title=self.title)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        png = buffer.getvalue()
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_bytes(png)
        if _running_in_a_kernel():
            from IPython.display import Image, display

            if self._handle is None:
                self._handle = display(Image(data=png), display_id=True)
            else:
                self._handle.update(Image(data=png))
        self.draws += 1
        self._last_draw = time.perf_counter()


def plot_attention(
    maps: torch.Tensor, tokens: Sequence[str], layer: int = 0, *, batch_index: int = 0
) -> Figure:
    """One heatmap per head of `layer` of `model.attention_maps(idx)`; `tokens` labels the positions."""
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
