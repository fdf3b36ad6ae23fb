#!/usr/bin/env bash
# One command for a machine with a CUDA GPU: the `cuda` tests, the GPU preset through cf.train
# (the table row for benchmarks/RESULTS.md), the sampling timing, and the training step and sampling
# against the lecture's code at the same size (scripts/gpu_compare.py). No install step: run it from
# a plain copy of the repository where torch (CUDA), numpy, matplotlib, tqdm, requests and pytest
# are installed. About 2-5 minutes on one H100/H200.
#
#   scripts/gpu-check.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" TQDM_DISABLE=1 PYTHONUNBUFFERED=1
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU here'; print('torch', torch.__version__, torch.cuda.get_device_name())"
python3 -m pytest -m cuda tests/test_cuda.py -q -p no:cacheprovider
python3 scripts/gpu_check.py
python3 scripts/gpu_compare.py
