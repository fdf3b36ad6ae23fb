"""The tutorial notebook: the committed copy is a clean real run, it executes headless, and it
stays right when a reader edits, re-runs and continues cells in one kernel."""

from __future__ import annotations

import ast
import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import nbformat
import pytest

import charformer as cf

from .conftest import REPO

NOTEBOOK = REPO / "notebooks" / "tiny_shakespeare_transformer.ipynb"
MACHINE_PATH = re.compile(r"(/work/|/home/|/root/|/tmp/|/Users/|[A-Z]:\\\\)")
# Small enough to run the whole notebook in seconds; everything else comes from the preset.
TINY = dict(max_iters=30, eval_interval=10, eval_iters=2, sample_chars=1600, bigram_iters=30,
            extra_iters=20, loop_iters=10, ladder_iters=10, ladder_seeds=2)


def code_cells(notebook: dict) -> list[dict]:
    return [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def tagged(notebook: dict, tag: str) -> dict:
    (cell,) = [c for c in code_cells(notebook) if tag in c["metadata"].get("tags", [])]
    return cell


def output_text(output: dict) -> str:
    if "text" in output:
        return "".join(output["text"])
    data = output.get("data", {})
    return "".join(data.get("text/plain", ""))


def cell_text(cell: dict) -> str:
    return "\n".join(output_text(o) for o in cell["outputs"])


def parameters_cell(notebook: dict) -> dict[str, object]:
    values = {}
    for node in ast.parse(source(tagged(notebook, "parameters"))).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            values[node.targets[0].id] = ast.literal_eval(node.value)
    return values


def test_committed_notebook_is_one_clean_real_run() -> None:
    notebook = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    cells = code_cells(notebook)
    assert [c["execution_count"] for c in cells] == list(range(1, len(cells) + 1))
    outputs = [o for c in cells for o in c["outputs"]]
    assert not [o for o in outputs if o["output_type"] == "error"]
    for output in outputs:
        assert not MACHINE_PATH.search(output_text(output)), output_text(output)[:300]
    assert NOTEBOOK.stat().st_size < 2_000_000
    params = parameters_cell(notebook)
    assert params["preset"] == "cpu" and params["train_fraction"] == 0.9
    assert all(params[name] is None for name in cf.SETTING_NAMES)  # the preset decides the run
    train_text = cell_text(tagged(notebook, "train"))
    # The stored run is the seed recipe: batch 16, learning rate 1e-3, 5000 steps, eval every 100.
    assert "TrainConfig(batch_size=16, learning_rate=0.001, max_iters=5000, eval_interval=100," in train_text
    assert "step 5000: train loss" in train_text and "finished 5000 steps in" in train_text
    assert any("image/png" in o.get("data", {}) for o in tagged(notebook, "train")["outputs"])
    assert "finished" in cell_text(tagged(notebook, "train-further"))
    assert sum(1 for o in outputs if "image/png" in o.get("data", {})) >= 5


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def test_committed_notebook_carries_no_widget_state() -> None:
    """A stored widget view or model goes stale (a reopened notebook shows "Error displaying widget:
    model not found"), and no widget runs on a static page: scripts/run_notebook.py drops them,
    keeping each widget output's text/plain fallback (the progress bars' last line)."""
    notebook = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    assert "widgets" not in notebook["metadata"]
    outputs = [o for c in code_cells(notebook) for o in c["outputs"]]
    assert not [o for o in outputs if WIDGET_VIEW in o.get("data", {})]
    bars = [o for o in outputs if output_text(o).startswith("training: 100%")]
    assert bars, "the progress bars' text/plain fallback is kept"


def test_run_notebook_drops_widget_views_and_keeps_their_text() -> None:
    spec = importlib.util.spec_from_file_location("run_notebook", REPO / "scripts" / "run_notebook.py")
    run_notebook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_notebook)
    bar = {"output_type": "display_data", "metadata": {},
           "data": {WIDGET_VIEW: {"model_id": "gone", "version_major": 2, "version_minor": 0},
                    "text/plain": "training: 100%|##########| 10/10"}}
    view_only = {"output_type": "display_data", "metadata": {}, "data": {WIDGET_VIEW: {"model_id": "x"}}}
    printed = {"output_type": "stream", "name": "stdout", "text": "step 10"}
    notebook = {"metadata": {"widgets": {"application/vnd.jupyter.widget-state+json": {"state": {}}}},
                "cells": [{"cell_type": "code", "source": "", "metadata": {}, "outputs": [bar, view_only, printed]},
                          {"cell_type": "markdown", "source": "## 3. x", "metadata": {}}]}
    assert run_notebook.drop_widget_state(notebook) == 2
    assert "widgets" not in notebook["metadata"]
    assert notebook["cells"][0]["outputs"] == [
        {"output_type": "display_data", "metadata": {}, "data": {"text/plain": "training: 100%|##########| 10/10"}},
        printed]


def test_parameters_are_named_like_the_config_fields() -> None:
    params = parameters_cell(json.loads(NOTEBOOK.read_text(encoding="utf-8")))
    fields = set(cf.TrainConfig.__dataclass_fields__) | set(cf.ModelConfig.__dataclass_fields__)
    assert fields - {"vocab_size"} <= set(params)
    assert {"keep_best", "patience", "extra_iters", "preset"} <= set(params)


@pytest.mark.notebook
def test_headless_run_honours_explicit_values_over_the_gpu_preset(tmp_path: Path) -> None:
    """papermill -p preset gpu -p max_iters N: N steps, and the preset's values for the rest."""
    import papermill

    executed = tmp_path / "executed.ipynb"
    overrides = dict(TINY, n_layer=1, n_head=2, n_embd=32, block_size=16, batch_size=4)
    papermill.execute_notebook(
        str(NOTEBOOK), str(executed), cwd=str(tmp_path), progress_bar=False, kernel_name="python3",
        parameters=dict(overrides, preset="gpu"),
    )
    notebook = json.loads(executed.read_text(encoding="utf-8"))
    outputs = [o for c in code_cells(notebook) for o in c["outputs"]]
    assert not [o for o in outputs if o["output_type"] == "error"]
    train_text = cell_text(tagged(notebook, "train"))
    assert "max_iters=30," in train_text and "batch_size=4," in train_text
    assert "n_layer=1," in train_text and "block_size=16," in train_text
    # Not set explicitly, so the gpu preset's.
    assert "dropout=0.2" in train_text and "activation='gelu'" in train_text and "weight_decay=0.1," in train_text
    assert "step 30: train loss" in train_text and "step 40" not in train_text
    assert any("image/png" in o.get("data", {}) for o in tagged(notebook, "train")["outputs"])  # the loss plot
    text = "\n".join(output_text(o) for o in outputs)
    assert "explicit == fused: True" in text and "same text: True" in text
    assert "loop == matmul: True loop == softmax: True" in text
    sample_cell = next(c for c in code_cells(notebook) if "max_new_tokens=sample_chars" in source(c))
    assert len(cell_text(sample_cell)) >= 1500
    assert "finished 50 steps" in cell_text(tagged(notebook, "train-further"))
    # The comparison's two quick runs follow the explicit values too, and are both kept.
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [
        "gpu-001.pt", "quick-context32-seed1337-002.pt", "quick-context32-seed1338-003.pt",
        "quick-context32-seed1339-004.pt", "quick-context40-seed1337-005.pt"]


@pytest.mark.notebook
def test_edit_rerun_and_continue_in_one_kernel(tmp_path: Path) -> None:
    """A reader's session: Run All, change n_layer and re-run two cells, re-run training, continue twice."""
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    for cell in notebook.cells:
        cell.outputs = []
    params = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    params.source += "\n" + "\n".join(f"{name} = {value!r}" for name, value in TINY.items())
    client = NotebookClient(notebook, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}},
                            timeout=600)
    index = {id(cell): i for i, cell in enumerate(notebook.cells)}
    train = next(c for c in notebook.cells if "train" in c.metadata.get("tags", []))
    further = next(c for c in notebook.cells if "train-further" in c.metadata.get("tags", []))

    def run(cell) -> str:
        client.execute_cell(cell, index[id(cell)])
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert not errors, "\n".join(errors[0].traceback)
        return "\n".join(output_text(o) for o in cell.outputs)

    def ask(expression: str) -> object:
        probe = nbformat.v4.new_code_cell(f"print(repr({expression}))")
        notebook.cells.append(probe)
        index[id(probe)] = len(notebook.cells) - 1
        return ast.literal_eval(run(probe).strip().splitlines()[-1])

    with client.setup_kernel():
        for cell in list(notebook.cells):
            if cell.cell_type == "code":
                run(cell)
        assert ask("history.iteration") == 30 + 20  # Run All includes one "train further"

        params.source += "\nn_layer = 1"
        run(params)
        printed = run(train)
        assert "n_layer=1," in printed
        assert ask("len(model.blocks)") == 1 and ask("model.config.n_layer") == 1
        assert ask("history.iters[0]") == 0 and ask("history.iteration") == 30

        run(train)  # again: a fresh model, not the trained one trained further
        first_val = ask("history.val_loss[0]")
        assert abs(first_val - math.log(65)) < 0.15, first_val
        assert ask("history.iters") == [0, 10, 20, 30]

        run(further)
        run(further)
        assert ask("history.iteration") == 30 + 2 * 20
        assert ask("history.iters") == [0, 10, 20, 30, 40, 50, 60, 70]
        assert ask("cf.load_checkpoint(run_path).iteration") == 70

    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert runs == ["cpu-001.pt", "cpu-006.pt", "cpu-007.pt", "quick-context32-seed1337-002.pt",
                    "quick-context32-seed1338-003.pt", "quick-context32-seed1339-004.pt",
                    "quick-context40-seed1337-005.pt"]


def fresh_venv_without_charformer(tmp_path: Path) -> Path:
    """A new virtual environment that sees this one's packages but not charformer; its python.

    Its .pth file lists this environment's site-packages as plain directories: Python puts them on
    sys.path but does not process the .pth files inside them, so an editable install of
    charformer there stays invisible (and PYTHONPATH is dropped by the caller)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    ours = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    (Path(site) / "outer_packages.pth").write_text("\n".join(ours) + "\n", encoding="utf-8")
    return python


@pytest.mark.notebook
def test_run_all_in_a_fresh_environment_without_the_package(tmp_path: Path, monkeypatch) -> None:
    """A fresh checkout opened where charformer is not installed: Run All works with no restart."""
    import papermill

    checkout = tmp_path / "checkout"
    shutil.copytree(REPO / "charformer", checkout / "charformer", ignore=shutil.ignore_patterns("__pycache__"))
    (checkout / "data").symlink_to(REPO / "data", target_is_directory=True)
    (checkout / "notebooks").mkdir()
    monkeypatch.delenv("PYTHONPATH", raising=False)
    python = fresh_venv_without_charformer(tmp_path)
    probe = subprocess.run([str(python), "-c", "import charformer"], cwd=checkout / "notebooks",
                           capture_output=True, text=True, env=dict(os.environ))
    assert probe.returncode != 0 and "No module named 'charformer'" in probe.stderr, probe.stderr
    kernel = tmp_path / "jupyter" / "kernels" / "fresh-venv"
    kernel.mkdir(parents=True)
    (kernel / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "fresh venv without charformer", "language": "python",
    }), encoding="utf-8")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))

    executed = tmp_path / "executed.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOK), str(executed), cwd=str(checkout / "notebooks"), progress_bar=False,
        kernel_name="fresh-venv",
        parameters=dict(TINY, n_layer=1, n_head=2, n_embd=32, block_size=16, batch_size=4),
    )
    notebook = json.loads(executed.read_text(encoding="utf-8"))
    cells = code_cells(notebook)
    assert not [o for c in cells for o in c["outputs"] if o["output_type"] == "error"]
    assert "charformer is not installed: importing it from the checkout at '..'" in cell_text(cells[0])
    train_text = cell_text(tagged(notebook, "train"))
    assert "step 30: train loss" in train_text and "finished 30 steps" in train_text
    terminal = next(c for c in cells if "-m charformer sample" in source(c))
    assert cell_text(terminal).startswith("ROMEO:"), cell_text(terminal)[:300]  # the subprocess finds it too
    assert sorted(p.name for p in (checkout / "notebooks" / "runs").iterdir()) == [
        "cpu-001.pt", "quick-context32-seed1337-002.pt", "quick-context32-seed1338-003.pt",
        "quick-context32-seed1339-004.pt", "quick-context40-seed1337-005.pt"]
