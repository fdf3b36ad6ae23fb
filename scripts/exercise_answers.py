"""Measured answers to the notebook's exercises (section 15): one changed value per run.

Every run is the "quick" preset (2 layers, 64 channels, context 32, 1200 steps) with one setting
changed, trained by `cf.train` on one thread. Each prints its whole-split val with the standard
error of its last val estimate, the seconds of training and the steps it ran, and whether it
differs from the unchanged preset by more than noise (two standard errors of the difference).
Two more seeds of the unchanged preset show how far the seed alone moves the result.

    PYTHONPATH=. python scripts/exercise_answers.py            # about 10 runs of ~25-60 s each
    PYTHONPATH=. python scripts/exercise_answers.py --max-iters 50 --only "dropout = 0.1"
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("TQDM_DISABLE", "1")  # no progress bars in the printed answers

import torch  # noqa: E402

import charformer as cf  # noqa: E402

PRESET = "quick"
BASELINE = "the quick preset"
# (label, the one changed value); the label is what the notebook's exercise sets.
EXERCISES: list[tuple[str, dict[str, Any]]] = [
    (BASELINE, {}),
    ("seed = 1338", {"seed": 1338}),
    ("seed = 1339", {"seed": 1339}),
    ('positional = "none"', {"positional": "none"}),
    ('positional = "sinusoidal"', {"positional": "sinusoidal"}),
    ("dropout = 0.1", {"dropout": 0.1}),
    ("block_size = 64", {"block_size": 64}),
    ("n_layer = 4", {"n_layer": 4}),
    ('activation = "gelu"', {"activation": "gelu"}),
    ("patience = 3", {"patience": 3}),
]


def train_one(change: dict[str, Any], data: tuple[torch.Tensor, torch.Tensor], tokenizer: cf.CharTokenizer,
              path: Path, num_threads: int, max_iters: int | None) -> cf.History:
    """The preset with `change` put over it, trained quietly; its checkpoint goes to `path`."""
    settings = cf.resolve_settings(PRESET, num_threads=num_threads, max_iters=max_iters, **change)
    model_config, train_config = cf.configs_from_settings(settings, tokenizer.vocab_size)
    torch.manual_seed(train_config.seed)
    model = cf.CharTransformer(model_config)
    train_data, val_data = data
    with contextlib.redirect_stdout(io.StringIO()):  # train's own lines; the summary is ours
        return cf.train(model, train_data, val_data, train_config, tokenizer=tokenizer,
                        checkpoint_path=path)


def against_baseline(history: cf.History, baseline: cf.History) -> str:
    """The gap to the unchanged preset, and whether it is under two standard errors of it."""
    gap = history.final_val_loss - baseline.final_val_loss
    stderr = math.hypot(history.val_stderr[-1], baseline.val_stderr[-1])
    verdict = "within noise" if abs(gap) < 2 * stderr else f"{abs(gap) / stderr:.1f} s.e."
    return f"{gap:+.4f} vs the preset ({verdict}; 2 s.e. = {2 * stderr:.4f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-iters", type=int, default=None, help="steps per run (default: the preset's)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per run (default 1)")
    parser.add_argument("--only", action="append", help="run only the exercises with these labels")
    args = parser.parse_args()

    text = cf.load_tiny_shakespeare()
    tokenizer = cf.CharTokenizer.from_text(text)
    data = cf.train_val_split(torch.tensor(tokenizer.encode(text), dtype=torch.long), 0.9)
    chosen = [(label, change) for label, change in EXERCISES if not args.only or label in args.only]
    print(f'preset "{PRESET}" with one value changed; {args.threads} thread(s); whole val split '
          "± the standard error of the last val estimate")
    histories: dict[str, cf.History] = {}
    paths = []
    with tempfile.TemporaryDirectory() as folder:
        for number, (label, change) in enumerate(chosen, start=1):
            path = Path(folder) / f"exercise-{number:02d}.pt"
            history = train_one(change, data, tokenizer, path, args.threads, args.max_iters)
            histories[label] = history
            paths.append(path)
            stopped = " (stopped early)" if history.stopped_early else ""
            line = (f"{label:<28} whole val {history.final_val_loss:.4f} ± {history.val_stderr[-1]:.4f}"
                    f"  {history.train_seconds:6.1f} s  {history.iteration} steps{stopped}")
            if BASELINE in histories and label != BASELINE:
                line += "  " + against_baseline(history, histories[BASELINE])
            print(line, flush=True)
        seeds = [histories[label].final_val_loss for label in histories if label == BASELINE or label.startswith("seed")]
        if len(seeds) > 1:
            print(f"seed alone: {len(seeds)} seeds of the preset span {max(seeds) - min(seeds):.4f} "
                  f"({min(seeds):.4f} to {max(seeds):.4f})")
        print()
        print(cf.runs_table(paths))


if __name__ == "__main__":
    main()
