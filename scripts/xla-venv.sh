# Sourced by scripts/test-xla.sh and scripts/test-oldest.sh: the oldest supported stack in its own
# virtual environment, made once in a cache folder outside the repository and reused afterwards.
#
# torch_xla 2.9.0 pairs with torch 2.9.0 exactly (its wheel does not declare torch, and a mismatch
# fails at import with an undefined symbol), so the pair is installed together (about 7 GB: PyPI's
# torch 2.9.0 is a CUDA build). ipywidgets 7.7.1 (it brings ipython_genutils) is what Colab
# pins. charformer goes in editable and without dependencies: that torch stays.
# Sets `venv` and `python`; CHARFORMER_XLA_VENV chooses where the environment lives.
venv=${CHARFORMER_XLA_VENV:-$HOME/.cache/charformer/xla-venv}
python=$venv/bin/python
if ! "$python" -c "import torch, torch_xla; assert torch.__version__.startswith('2.9.0')" 2>/dev/null; then
  echo "creating $venv with torch==2.9.0 and torch_xla==2.9.0 (about 7 GB, once)"
  python3 -m venv "$venv"
  "$python" -m pip install -q --upgrade pip
  "$python" -m pip install -q "torch==2.9.0" "torch_xla==2.9.0"
fi
"$python" -m pip install -q "numpy>=1.24" "matplotlib>=3.7" "requests>=2.31" "tqdm>=4.66" \
  "pytest>=8.0" "hypothesis>=6.100" "papermill>=2.5" "ipykernel>=6.25" \
  "ipywidgets==7.7.1"
"$python" -m pip install -q --no-deps -e "$root"
"$python" -c "import torch, torch_xla, ipywidgets; print('torch', torch.__version__, 'torch_xla', torch_xla.__version__, 'ipywidgets', ipywidgets.__version__)"
