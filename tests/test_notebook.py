"""The tutorial notebook: the committed copy is a clean real run, and it executes headless."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from .conftest import REPO

NOTEBOOK = REPO / "notebooks" / "tiny_shakespeare_transformer.ipynb"
MACHINE_PATH = re.compile(r"(/work/|/home/|/root/|/tmp/|/Users/|[A-Z]:\\\\)")


def code_cells(notebook: dict) -> list[dict]:
    return [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]


def output_text(output: dict) -> str:
    if "text" in output:
        return "".join(output["text"])
    data = output.get("data", {})
    return "".join(data.get("text/plain", ""))


def parameters_cell(notebook: dict) -> dict[str, object]:
    cell = next(c for c in code_cells(notebook) if "parameters" in c["metadata"].get("tags", []))
    values = {}
    for node in ast.parse("".join(cell["source"])).body:
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
    assert (params["batch_size"], params["learning_rate"], params["max_iters"], params["eval_interval"]) == (16, 1e-3, 5000, 100)
    assert params["train_fraction"] == 0.9 and params["preset"] == "cpu"
    text = "\n".join(output_text(o) for o in outputs)
    assert "step 5000: train loss" in text  # the stored run is the full seed recipe
    assert sum(1 for o in outputs if "image/png" in o.get("data", {})) >= 4


def test_parameters_are_named_like_the_config_fields() -> None:
    import charformer as cf

    params = parameters_cell(json.loads(NOTEBOOK.read_text(encoding="utf-8")))
    fields = set(cf.TrainConfig.__dataclass_fields__) | set(cf.ModelConfig.__dataclass_fields__)
    assert fields - {"compile", "vocab_size"} <= set(params)


@pytest.mark.notebook
def test_notebook_runs_headless_with_a_tiny_override(tmp_path: Path) -> None:
    import papermill

    executed = tmp_path / "executed.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOK), str(executed), cwd=str(NOTEBOOK.parent), progress_bar=False,
        parameters=dict(max_iters=30, eval_interval=10, eval_iters=2, sample_chars=1600,
                        bigram_iters=30, warmup_iters=5),
        kernel_name="python3",
    )
    notebook = json.loads(executed.read_text(encoding="utf-8"))
    outputs = [o for c in code_cells(notebook) for o in c["outputs"]]
    assert not [o for o in outputs if o["output_type"] == "error"]
    text = "\n".join(output_text(o) for o in outputs)
    assert "step 30: train loss" in text
    assert "explicit == fused: True" in text and "same text: True" in text
    train_cell = next(i for i, c in enumerate(code_cells(notebook)) if "history = cf.train(" in "".join(c["source"]))
    plot_outputs = code_cells(notebook)[train_cell + 1]["outputs"]
    assert any("image/png" in o.get("data", {}) for o in plot_outputs)  # the loss figure
    sample_cell = next(c for c in code_cells(notebook) if "max_new_tokens=sample_chars" in "".join(c["source"]))
    sample = "".join(output_text(o) for o in sample_cell["outputs"])
    assert len(sample) >= 1500
