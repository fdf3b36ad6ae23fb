"""Measured answers to the notebook's exercises (section 15): one changed value per run.

Every run is the "quick" preset (2 layers, 64 channels, context 32, 1200 steps) with one setting
changed, trained by `cf.train` on one thread. Three seeds of the unchanged preset run first: the
standard deviation of their whole-split val is the seed spread, the one thing that varies between
runs of one setting (the whole-split val is exact for given weights). Each run then prints its
whole-split val, the seconds of training and the steps it ran, and its gap to the preset in seed
standard deviations: within noise when under 2.8 of them (`charformer.runs.noise_verdicts`).

    PYTHONPATH=. python scripts/exercise_answers.py            # about 10 runs of ~25-60 s each
    PYTHONPATH=. python scripts/exercise_answers.py --max-iters 50 --only "dropout = 0.1"
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import statistics
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


def against_baseline(history: cf.History, baseline: cf.History, seed_sd: float | None) -> str:
    """The gap to the unchanged preset, in seed standard deviations (noise_verdicts' yardstick)."""
    gap = history.final_val_loss - baseline.final_val_loss
    if not seed_sd:
        return f"{gap:+.4f} vs the preset"
    verdict = "within noise" if abs(gap) < 2 * math.sqrt(2) * seed_sd else "beyond noise"
    return f"{gap:+.4f} vs the preset = {abs(gap) / seed_sd:.1f} seed s.d.: {verdict}"


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
    print(f'preset "{PRESET}" with one value changed; {args.threads} thread(s); whole val split')
    histories: dict[str, cf.History] = {}
    paths = []
    with tempfile.TemporaryDirectory() as folder:
        for number, (label, change) in enumerate(chosen, start=1):
            path = Path(folder) / f"exercise-{number:02d}.pt"
            history = train_one(change, data, tokenizer, path, args.threads, args.max_iters)
            histories[label] = history
            paths.append(path)
            stopped = " (stopped early)" if history.stopped_early else ""
            line = (f"{label:<28} whole val {history.final_val_loss:.4f}"
                    f"  {history.train_seconds:6.1f} s  {history.iteration} steps{stopped}")
            seeds = [h.final_val_loss for name, h in histories.items() if name == BASELINE or name.startswith("seed")]
            seed_sd = statistics.stdev(seeds) if len(seeds) > 1 else None
            if BASELINE in histories and label != BASELINE and not label.startswith("seed"):
                line += "  " + against_baseline(history, histories[BASELINE], seed_sd)
            print(line, flush=True)
            if label.startswith("seed") and seed_sd:
                print(f"seed spread: {len(seeds)} seeds of the preset, mean {statistics.mean(seeds):.4f}, "
                      f"standard deviation {seed_sd:.4f}", flush=True)
        print()
        print(cf.runs_table(paths, seed_sd=seed_sd))


if __name__ == "__main__":
    main()
