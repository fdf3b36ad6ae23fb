#!/usr/bin/env bash
# Runs the tests marked `xla` for real on torch_xla's CPU backend (PJRT_DEVICE=CPU).
#
# torch_xla 2.9.0 pairs with torch 2.9.0 exactly (its wheel does not declare torch, and a
# mismatch fails at import with an undefined symbol), so it lives in its own virtual environment,
# made once in a cache folder outside the repository (about 7 GB: PyPI's torch 2.9.0 is a CUDA
# build) and reused afterwards. charformer is installed into it without touching that torch.
#
#   scripts/test-xla.sh            # extra arguments go to pytest, e.g. -k generate
#   CHARFORMER_XLA_VENV=/path ...  # choose where the environment lives
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${CHARFORMER_XLA_VENV:-$HOME/.cache/charformer/xla-venv}
python=$venv/bin/python

if ! "$python" -c "import torch, torch_xla; assert torch.__version__.startswith('2.9.0')" 2>/dev/null; then
  echo "creating $venv with torch==2.9.0 and torch_xla==2.9.0 (about 7 GB, once)"
  python3 -m venv "$venv"
  "$python" -m pip install -q --upgrade pip
  "$python" -m pip install -q "torch==2.9.0" "torch_xla==2.9.0"
fi
# charformer's other dependencies, then charformer itself without its torch requirement.
"$python" -m pip install -q "numpy>=1.24" "matplotlib>=3.7" "requests>=2.31" "tqdm>=4.66" \
  "pytest>=8.0" "hypothesis>=6.100"
"$python" -m pip install -q --no-deps -e "$root"
"$python" -c "import torch, torch_xla; print('torch', torch.__version__, 'torch_xla', torch_xla.__version__)"

cd "$root"
export PJRT_DEVICE=CPU TQDM_DISABLE=1
exec "$python" -m pytest -m xla tests/test_xla.py -v -p no:cacheprovider "$@"
