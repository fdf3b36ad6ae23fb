#!/usr/bin/env bash
# The oldest supported stack, as Colab's TPU image has it: torch 2.9.0 (+ torch_xla 2.9.0) and
# ipywidgets 7.7.1. Runs the notebook top to bottom with the quick preset, then the playground and
# device tests, once on the CPU device and once on torch_xla's device on its CPU backend
# (CHARFORMER_DEVICE=xla, PJRT_DEVICE=CPU). Too long for CI (a 7 GB environment, built once by
# scripts/xla-venv.sh); run it before a release and put its summary in README's Colab section.
#
#   scripts/test-oldest.sh             # both devices
#   scripts/test-oldest.sh xla         # one: cpu or xla; papermill options may follow (-p max_iters 300)
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
  [ "$device" = xla ] && export PJRT_DEVICE=CPU || unset PJRT_DEVICE
  export CHARFORMER_DEVICE=$device
  out=notebooks/executed/oldest-$device.ipynb
  work=$(mktemp -d)  # the notebook's runs/ go here, not into the repository
  start=$(date +%s)
  "$python" -m papermill notebooks/tiny_shakespeare_transformer.ipynb "$out" --cwd "$work" \
    -k python3 --execution-timeout 3600 --log-level WARNING -p preset quick "$@" || status=1
  seconds=$(($(date +%s) - start))
  "$python" - "$out" "$device" "$seconds" <<'PY' || status=1
import json, sys
path, device, seconds = sys.argv[1:]
cells = [c for c in json.load(open(path))["cells"] if c["cell_type"] == "code"]
ran = [c for c in cells if c.get("execution_count")]
errors = [o for c in cells for o in c["outputs"] if o["output_type"] == "error"]
device_line = next((line for c in cells for o in c["outputs"] for line in "".join(o.get("text", "")).splitlines()
                    if line.startswith("device: ")), "no device line")
print(f"[{device}] notebook (quick preset): {len(ran)} of {len(cells)} code cells ran, {len(errors)} errors, "
      f"{seconds} s; {device_line}")
for error in errors:
    print(f"[{device}]   {error['ename']}: {error['evalue']}")
sys.exit(1 if errors or len(ran) < len(cells) else 0)
PY
  rm -rf "$work"
  tests="tests/test_playground.py tests/test_device.py"
  [ "$device" = xla ] && tests="$tests tests/test_xla.py"
  # shellcheck disable=SC2086
  "$python" -m pytest $tests -q -p no:cacheprovider || status=1
done
exit $status
