"""Produce the committed notebook: one clean papermill run of the default preset, widget state dropped.

    PYTHONPATH=. python scripts/run_notebook.py            # runs in notebooks/, rewrites the notebook
    PYTHONPATH=. python scripts/run_notebook.py --output /tmp/out.ipynb -p preset quick

Jupyter stores a widget's model in the notebook's metadata and the output only points at it by id.
An executed notebook ends up with models no output shows (tqdm bars redrawn, widgets replaced) and,
once saved by another client, outputs whose model is gone: a reopened notebook then shows "Error
displaying widget: model not found". A widget cannot run on a static page anyway, so the committed
notebook keeps each widget output's text/plain fallback and drops the widget views and the state.
The script ends by printing the seconds each section's cells took (papermill times every cell).
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import time
from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "tiny_shakespeare_transformer.ipynb"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def drop_widget_state(notebook: dict) -> int:
    """Remove the widget state and every widget view, keeping each output's other data (text/plain);
    an output left with no data at all is removed. Returns how many widget views were dropped."""
    notebook["metadata"].pop("widgets", None)
    dropped = 0
    for cell in notebook["cells"]:
        kept = []
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_VIEW in data:
                del data[WIDGET_VIEW]
                dropped += 1
                if not data:
                    continue
            kept.append(output)
        if cell["cell_type"] == "code":
            cell["outputs"] = kept
    return dropped


def section_seconds(notebook: dict) -> dict[str, float]:
    """Seconds papermill measured per cell, added up under each "## N." heading above them."""
    seconds: dict[str, float] = {}
    section = "before the first section"
    for cell in notebook["cells"]:
        heading = re.search(r"^## (\d+\..*)$", "".join(cell["source"]), re.MULTILINE)
        if cell["cell_type"] == "markdown" and heading:
            section = heading.group(1)
        duration = cell.get("metadata", {}).get("papermill", {}).get("duration")
        if duration is not None:
            seconds[section] = seconds.get(section, 0.0) + duration
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=NOTEBOOK, help="where to write (default: the notebook itself)")
    parser.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="a parameter, as papermill's -p (the value is read as a Python literal)")
    args = parser.parse_args()
    import papermill

    if any((NOTEBOOK.parent / "runs").glob("*.pt")):
        raise SystemExit("notebooks/runs/ holds earlier runs, so this run's checkpoints would not be numbered "
                         "from 001: move it away or delete it (rm -r notebooks/runs), then run this again")
    parameters = {}
    for name, value in args.p:
        try:
            parameters[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            parameters[name] = value
    started = time.perf_counter()
    executed = papermill.execute_notebook(str(NOTEBOOK), str(args.output), parameters=parameters,
                                          cwd=str(NOTEBOOK.parent), kernel_name="python3", progress_bar=False)
    wall = time.perf_counter() - started
    dropped = drop_widget_state(executed)
    executed["metadata"].get("papermill", {}).pop("input_path", None)  # machine paths stay out of git
    executed["metadata"].get("papermill", {}).pop("output_path", None)
    args.output.write_text(json.dumps(executed, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{args.output}: {dropped} widget views dropped; {wall:.0f} s wall time including the kernel's start")
    for section, seconds in section_seconds(executed).items():
        print(f"  {section:<50} {seconds:6.1f} s")
    print(f"  {'all cells':<50} {sum(section_seconds(executed).values()):6.1f} s")


if __name__ == "__main__":
    main()
