#!/usr/bin/env bash
# Runs the tests marked `xla` for real on torch_xla's CPU backend (PJRT_DEVICE=CPU).
#
# torch_xla 2.9.0 pairs with torch 2.9.0 exactly, so it lives in its own virtual environment,
# made once (about 7 GB) and shared with scripts/test-oldest.sh: see scripts/xla-venv.sh.
#
#   scripts/test-xla.sh            # extra arguments go to pytest, e.g. -k generate
#   CHARFORMER_XLA_VENV=/path ...  # choose where the environment lives
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/xla-venv.sh
. "$root/scripts/xla-venv.sh"

cd "$root"
export PJRT_DEVICE=CPU TQDM_DISABLE=1
exec "$python" -m pytest -m xla tests/test_xla.py -v -p no:cacheprovider "$@"
