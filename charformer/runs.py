"""Runs kept side by side: a fresh checkpoint name per run, and their curves and numbers compared."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Union

import torch
from matplotlib.figure import Figure

from .checkpoint import Checkpoint, load_checkpoint
from .config import TrainConfig
from .model import CharTransformer
from .presets import configs_from_settings
from .tables import aligned
from .threads import choose_num_threads

RunLike = Union[str, "os.PathLike[str]", Checkpoint]


def new_run_path(folder: str | os.PathLike[str] = "runs", label: str = "run") -> Path:
    """`folder/<label>-NNN.pt`, NNN one above every numbered run there, reserved on disk: created
    empty and exclusively (O_EXCL), it is never handed out twice, in this process or another."""
    folder = Path(folder)
    label = re.sub(r"[^A-Za-z0-9_.]+", "-", str(label)).strip("-") or "run"
    folder.mkdir(parents=True, exist_ok=True)
    matches = (re.search(r"-(\d+)\.pt$", path.name) for path in folder.glob("*.pt"))
    number = max((int(match.group(1)) for match in matches if match), default=0) + 1
    while True:
        path = folder / f"{label}-{number:03d}.pt"
        try:
            with open(path, "x"):
                return path
        except FileExistsError:
            number += 1


def new_run(
    settings: dict[str, Any], vocab_size: int, train_data: torch.Tensor, *,
    device: torch.device, folder: str | os.PathLike[str] = "runs", label: str = "run",
) -> tuple[CharTransformer, TrainConfig, Path]:
    """A fresh model seeded by `settings["seed"]`, its TrainConfig (threads measured unless set) and
    a path from new_run_path; prints both configs, so a run always says what it trains."""
    model_config, train_config = configs_from_settings(settings, vocab_size)
    train_config = choose_num_threads(model_config, train_config, train_data, device)
    print(repr(train_config))
    print(repr(model_config))
    torch.manual_seed(train_config.seed)
    model = CharTransformer(model_config).to(device)
    path = new_run_path(folder, label)
    print(f"{model.num_parameters():,} parameters; this run's checkpoint: {path}")
    return model, train_config, path


def _is_reserved(path: Path) -> bool:
    """An empty file: a name new_run_path reserved whose run has not written its checkpoint yet."""
    return path.is_file() and path.stat().st_size == 0


def _load_runs(runs: Sequence[RunLike]) -> list[Checkpoint | Path]:
    """Each run's checkpoint, or its path when it is still an empty placeholder (reserved)."""
    if isinstance(runs, (str, os.PathLike, Checkpoint)) or not isinstance(runs, Sequence):
        raise ValueError("runs must be a list of checkpoint paths or Checkpoints")
    if not runs:
        raise ValueError("runs is empty: give at least one checkpoint path or Checkpoint")
    if bad := [run for run in runs if not isinstance(run, (str, os.PathLike, Checkpoint))]:
        raise ValueError(f"a run must be a checkpoint path or a Checkpoint, got {type(bad[0]).__name__}")
    return [run if isinstance(run, Checkpoint) else Path(run) if _is_reserved(Path(run)) else load_checkpoint(run)
            for run in runs]


def _settings(checkpoint: Checkpoint) -> dict[str, Any]:
    values = {k: v for k, v in checkpoint.model_config.to_dict().items() if k != "vocab_size"}
    if checkpoint.train_config is not None:
        values.update(checkpoint.train_config.to_dict())
    return values


def differing_settings(checkpoints: Sequence[Checkpoint]) -> list[str]:
    """The config fields whose values are not the same in every run, in config order."""
    all_settings = [_settings(c) for c in checkpoints]
    names = list(dict.fromkeys(name for s in all_settings for name in s))
    return [n for n in names if len({repr(s.get(n, "-")) for s in all_settings}) > 1]


def run_score(checkpoint: Checkpoint) -> float | None:
    """The run's whole-split val: exact, so two runs differ only by their luck (their seeds)."""
    history = checkpoint.history
    return None if history is None or not history.iters else history.final_val_loss


def noise_verdicts(vals: Sequence[float | None], seed_sd: float | None = None) -> list[str]:
    """Each run's whole val against the best: "best", or the gap in seed s.d. (`seed_sd`, over seeds
    of one setting). Two one-seed runs differ by sqrt(2) * seed_sd from their seeds alone, so a gap
    under twice that (2.8 seed s.d.) is "within noise". Empty without a whole val, or for one run."""
    scored = [val for val in vals if val is not None]
    if len(scored) < 2:
        return [""] * len(vals)
    best = list(vals).index(min(scored))
    verdicts = []
    for index, val in enumerate(vals):
        if val is None or index == best:
            verdicts.append("" if val is None else "best")
            continue
        gap = val - min(scored)
        if not seed_sd:
            verdicts.append(f"+{gap:.4f} vs best (noise unknown: give seed_sd)")
        else:
            noise = "within noise" if gap < 2 * math.sqrt(2) * seed_sd else "beyond noise"
            verdicts.append(f"+{gap:.4f} vs best = {gap / seed_sd:.1f} seed s.d.: {noise}")
    return verdicts


def compare_runs(runs: Sequence[RunLike], *, title: str = "Validation loss by run",
                 seed_sd: float | None = None) -> Figure:
    """One val curve per run, labelled with the settings that differ, its best evaluation marked with
    its standard error; the best run and those within noise of it (hollow) are named under the
    legend. Paths new_run_path reserved that hold no checkpoint yet are left out."""
    checkpoints = [c for c in _load_runs(runs) if isinstance(c, Checkpoint)]
    if not checkpoints:
        raise ValueError("none of these runs has written a checkpoint yet: nothing to plot")
    differing = differing_settings(checkpoints)
    verdicts = noise_verdicts([run_score(c) for c in checkpoints], seed_sd)
    figure = Figure(figsize=(7, 4), dpi=80)
    axes = figure.add_subplot()
    notes = 0  # stacked under the legend, each with a line to its marker: apart, and inside the axes
    for index, (checkpoint, verdict) in enumerate(zip(checkpoints, verdicts)):
        history = checkpoint.history
        if history is None or not history.iters:
            raise ValueError(f"{checkpoint.path} has no History to plot (a weights-only checkpoint)")
        settings = _settings(checkpoint)
        detail = ", ".join(f"{name}={settings.get(name, '-')}" for name in differing)
        label = f"{checkpoint.path.stem} ({detail})" if detail else checkpoint.path.stem
        color = f"C{index % 10}"
        within_noise = verdict.endswith("within noise")
        axes.plot(history.iters, history.val_loss, color=color, label=label)
        if history.best_iter is None:
            continue
        x, y = history.best_iter, history.best_val_loss
        stderr = history.val_stderr_at(x)
        if stderr is not None:  # the best estimate's standard error, as a bar
            axes.vlines([x], [y - stderr], [y + stderr], color=color, zorder=3)
        axes.scatter([x], [y], color=color, facecolors="none" if within_noise else color, zorder=4)
        if verdict == "best" or within_noise:
            note = "best run" if verdict == "best" else "within noise of the best"
            axes.annotate(note, (x, y), xytext=(0.9, 0.42 - 0.08 * notes), textcoords="axes fraction",
                          ha="right", va="top", fontsize=8, color=color, arrowprops={
                              "arrowstyle": "-", "color": color, "linewidth": 0.8, "shrinkB": 4, "relpos": (1, 0.5)})
            notes += 1
    axes.set_xlabel("step")
    axes.set_ylabel("val loss (nats per character)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="upper right")
    figure.tight_layout()
    return figure


def runs_table(runs: Sequence[RunLike], *, seed_sd: float | None = None) -> str:
    """One line per run: its file, the settings that differ, steps, seconds, the best val estimate,
    the whole-split val ("-" when not measured) and, for several runs, its `noise_verdicts`."""
    loaded = _load_runs(runs)
    checkpoints = [c for c in loaded if isinstance(c, Checkpoint)]
    differing = differing_settings(checkpoints)
    scores = [run_score(c) for c in checkpoints]
    judged = iter(zip(scores, noise_verdicts(scores, seed_sd)))  # in the order of `checkpoints`
    rows = []
    for checkpoint in loaded:
        if isinstance(checkpoint, Path):
            rows.append([checkpoint.name, "no checkpoint yet (reserved by new_run_path)"])
            continue
        score, verdict = next(judged)
        settings = _settings(checkpoint)
        history = checkpoint.history
        row = [checkpoint.path.name, *(f"{name}={settings.get(name, '-')}" for name in differing)]
        if history is None:
            row += [f"{checkpoint.iteration} steps", "- s", "best val -", "whole val -"]
        else:
            best = ("best val -" if history.best_val_loss is None
                    else f"best val {history.best_val_loss:.4f} at step {history.best_iter}")
            final = "whole val -" if score is None else f"whole val {score:.4f}"
            row += [f"{history.iteration} steps", f"{history.train_seconds:.1f} s", best, final]
        rows.append(row + ([verdict] if len(checkpoints) > 1 else []))
    return aligned(rows)
