#!/usr/bin/env bash
# The oldest supported stack, as Colab's TPU image has it: torch 2.9.0 (+ torch_xla 2.9.0) and
# ipywidgets 7.7.1. Runs the notebook top to bottom with the quick preset, then the playground and
# device tests, once on the CPU device and once on torch_xla's device on its CPU backend
# (CHARFORMER_DEVICE=xla, PJRT_DEVICE=CPU). Too long for CI (a 7 GB environment, built once by
# scripts/xla-venv.sh); run it before a release and put its summary in README's Colab section.
#
#   scripts/test-oldest.sh                   # both devices
#   scripts/test-oldest.sh xla max_iters=300 # one device (cpu or xla); notebook parameters may follow
#   NOTEBOOK=other.ipynb scripts/test-oldest.sh  # another copy of the notebook
# Every cell runs even after one fails, so the summary lists every error; any error fails the run.
# Executed notebooks go to notebooks/executed/oldest-<device>.ipynb (git-ignored).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/xla-venv.sh
. "$root/scripts/xla-venv.sh"
devices=${1:-both}
[ "$devices" = both ] && devices="cpu xla"
shift $(($# > 0 ? 1 : 0))
export PATH="$venv/bin:$PATH" TQDM_DISABLE=1 PYTHONUNBUFFERED=1
cd "$root"
mkdir -p notebooks/executed
status=0
for device in $devices; do
  if [ "$device" = xla ]; then export PJRT_DEVICE=CPU; else unset PJRT_DEVICE; fi
  export CHARFORMER_DEVICE=$device
  work=$(mktemp -d)  # the notebook's runs/ go here, not into the repository
  "$python" - "${NOTEBOOK:-notebooks/tiny_shakespeare_transformer.ipynb}" "$device" "$work" "$@" <<'PY' || status=1
import ast, sys, time
import papermill
notebook, device, work, *assignments = sys.argv[1:]
parameters = {"preset": "quick"}
for assignment in assignments:
    name, value = assignment.split("=", 1)
    parameters[name] = ast.literal_eval(value)
path = f"notebooks/executed/oldest-{device}.ipynb"
start = time.perf_counter()
try:
    nb = papermill.execute_notebook(notebook, path, parameters=parameters,
                                    cwd=work, kernel_name="python3", execution_timeout=3600, allow_errors=True,
                                    progress_bar=False)
except Exception as error:  # a cell's error (listed below), or a kernel that died
    print(f"[{device}] {type(error).__name__}: {str(error).strip().splitlines()[-1][:300]}")
    nb = papermill.iorw.load_notebook_node(path)
cells = [c for c in nb.cells if c.cell_type == "code"]
ran = [c for c in cells if c.get("execution_count")]
errors = [(i, o) for i, c in enumerate(cells) for o in c.outputs if o.output_type == "error"]
device_line = next((line for c in cells for o in c.outputs for line in o.get("text", "").splitlines()
                    if line.startswith("device: ")), "no device line")
print(f"[{device}] notebook ({parameters}): {len(ran)} of {len(cells)} code cells ran, {len(errors)} with errors, "
      f"{time.perf_counter() - start:.0f} s; {device_line}")
for index, error in errors:
    print(f"[{device}]   code cell {index}: {error.ename}: {error.evalue[:300]}")
sys.exit(1 if errors or len(ran) < len(cells) else 0)
PY
  rm -rf "$work"
  "$python" -m pytest tests/test_playground.py tests/test_device.py -q -p no:cacheprovider || status=1
  if [ "$device" = xla ]; then
    # A process of its own: torch_xla's device must exist before the first backward pass of the process.
    "$python" -m pytest -m xla tests/test_xla.py -q -p no:cacheprovider || status=1
  fi
done
exit $status
