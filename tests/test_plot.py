"""Figures are real matplotlib figures with the expected panels, and bad input is refused."""

from __future__ import annotations

import io

import pytest
import torch
from matplotlib.figure import Figure

import charformer as cf

from .conftest import tiny_model


def test_plot_losses() -> None:
    history = cf.History(iters=[0, 100, 200], train_loss=[4.2, 2.5, 2.2], val_loss=[4.2, 2.6, 2.3], elapsed=[0, 1, 2])
    figure = cf.plot_losses(history)
    assert isinstance(figure, Figure)
    lines = figure.axes[0].get_lines()
    assert [list(line.get_ydata()) for line in lines] == [[4.2, 2.5, 2.2], [4.2, 2.6, 2.3]]
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    assert buffer.getvalue()[:4] == b"\x89PNG"
    with pytest.raises(ValueError):
        cf.plot_losses(cf.History())


def test_plot_attention(tokenizer: cf.CharTokenizer) -> None:
    model = tiny_model()
    line = "Citizen:\nBefore"
    maps = model.attention_maps(torch.tensor([tokenizer.encode(line)]))
    figure = cf.plot_attention(maps, line, layer=1)
    assert len(figure.axes) == 4  # one panel per head
    assert figure.axes[0].get_title() == "layer 1, head 0"
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()][8] == "\\n"
    with pytest.raises(ValueError):
        cf.plot_attention(maps, line, layer=2)
    with pytest.raises(ValueError):
        cf.plot_attention(maps, line[:-1])
    with pytest.raises(ValueError):
        cf.plot_attention(maps[0], line)


def _frame_axes(live: cf.LivePlot, history: cf.History):
    live(history)
    assert live.figure is not None
    axes = live.figure.axes[0]
    live.figure.savefig(io.BytesIO(), format="png")  # lays out ticks and the offset text
    return axes


def test_live_plot_first_frames_have_readable_axes() -> None:
    """One evaluation used to be a lone red dot on an axis labelled +4.167 with ticks 0.0001-0.0008."""
    live = cf.LivePlot(min_seconds=0.0)
    one = cf.History(iters=[0], train_loss=[4.1670], val_loss=[4.1672], elapsed=[0.0],
                     val_stderr=[0.001], best_iter=0, best_val_loss=4.1672)
    axes = _frame_axes(live, one)
    low, high = axes.get_ylim()
    assert high - low >= 0.2 - 1e-9 and low < 4.1670 < 4.1672 < high
    assert axes.yaxis.get_offset_text().get_text() == ""
    assert axes.xaxis.get_offset_text().get_text() == ""
    assert -0.1 < axes.get_xlim()[0] <= 0 and all(float(t).is_integer() for t in axes.get_xticks())
    assert all(len(line.get_xdata()) == 1 and line.get_marker() == "o" for line in axes.get_lines())
    labels = [t.get_text() for t in axes.get_yticklabels() if t.get_text()]
    assert labels and all(label.startswith("4.") for label in labels), labels

    two = cf.History(iters=[0, 100], train_loss=[4.1670, 3.1], val_loss=[4.1672, 3.2],
                     elapsed=[0.0, 1.0], val_stderr=[0.001, 0.01], best_iter=100, best_val_loss=3.2)
    axes = _frame_axes(live, two)
    low, high = axes.get_ylim()
    assert low < 3.1 and high > 4.1672 and high - low < 1.5
    assert axes.get_xlim() == pytest.approx((-2.04, 102)) and axes.yaxis.get_offset_text().get_text() == ""
    assert live.draws == 2
