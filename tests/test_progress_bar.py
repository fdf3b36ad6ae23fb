"""What a notebook stores of train()'s progress bar: the finished bar, not its first frame."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from .conftest import REPO

SETUP = f"""import sys
sys.path.insert(0, {str(REPO)!r})
from pathlib import Path
import torch
import charformer as cf
text = Path({str(REPO)!r}, "data", "input.txt").read_text(encoding="utf-8")[:20_000]
tok = cf.CharTokenizer.from_text(text)
train_data, val_data = cf.train_val_split(torch.tensor(tok.encode(text)))
torch.manual_seed(0)
model = cf.CharTransformer(cf.ModelConfig(vocab_size=tok.vocab_size, block_size=8, n_embd=16,
                                          n_head=2, n_layer=1))"""
TRAIN = "history = cf.train(model, train_data, val_data, cf.TrainConfig(max_iters=20, batch_size=4, eval_interval=10, eval_iters=2))"


@pytest.mark.notebook
def test_the_stored_progress_bar_is_the_finished_one(tmp_path: Path) -> None:
    from nbclient import NotebookClient

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(SETUP), nbformat.v4.new_code_cell(TRAIN)]
    NotebookClient(notebook, kernel_name="python3", timeout=120,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = notebook.cells[1].outputs
    bars = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(bars) == 1, outputs  # one widget, shown once
    fallback = "".join(bars[0]["data"]["text/plain"])  # what the web and untrusted readers see
    assert "20/20" in fallback and "100%" in fallback, fallback
    assert "0/20" not in fallback.replace("20/20", "")
