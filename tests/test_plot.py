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
