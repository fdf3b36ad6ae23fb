"""Presets: named sets of hyperparameters that fill in whatever the reader did not set (None)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from .checks import as_int
from .config import ModelConfig, TrainConfig
from .tables import aligned

# Every setting a preset can supply: both configs' fields, less the vocabulary (the data decides it).
MODEL_SETTINGS = tuple(f.name for f in fields(ModelConfig) if f.name != "vocab_size")
TRAIN_SETTINGS = tuple(f.name for f in fields(TrainConfig))
SETTING_NAMES = TRAIN_SETTINGS + MODEL_SETTINGS

# The notebook's default: the configs' defaults (the seed recipe: batch 16, learning rate 1e-3, 5000
# steps, an evaluation every 100; a model sized for a laptop CPU), warmed up and decaying over the run.
_CPU: dict[str, Any] = {
    **TrainConfig(warmup_iters=100, lr_decay_iters=5000).to_dict(),
    **{name: getattr(ModelConfig(), name) for name in MODEL_SETTINGS},
}

PRESETS: dict[str, dict[str, Any]] = {
    "cpu": _CPU,
    # The tweaking loop on a laptop: half the depth, twice the batch, three times the rate, 1200
    # steps: val 1.9102 after 22.9-25.7 s of training on 2 cores (the notebook's section 14).
    "quick": {**_CPU, "n_layer": 2, "batch_size": 32, "learning_rate": 3e-3, "max_iters": 1200,
              "lr_decay_iters": 1200, "eval_interval": 100, "eval_iters": 40},
    # nanoGPT's shakespeare_char model (6 layers, 6 heads, 384 channels, context 256, dropout
    # 0.2), trained for 2000 steps with the rate decaying over all of them: nanoGPT's 5000 steps
    # reach their best val near step 1800 and overfit after it.
    "gpu": {**_CPU, "block_size": 256, "n_embd": 384, "n_head": 6, "n_layer": 6, "dropout": 0.2,
            "activation": "gelu", "batch_size": 64, "learning_rate": 1e-3, "min_lr": 1e-4,
            "beta2": 0.99, "grad_clip": 1.0, "weight_decay": 0.1, "warmup_iters": 100,
            "max_iters": 2000, "lr_decay_iters": 2000, "eval_interval": 250, "eval_iters": 50},
}


# The most of a run the warmup takes when it was not set explicitly: the rest decays.
WARMUP_FRACTION = 0.1


def resolve_settings(preset: str, **explicit: Any) -> dict[str, Any]:
    """The preset's settings with every explicit (non-None) value put over them; the values you did
    not set follow those you did (decay over `max_iters`, warmup at most `WARMUP_FRACTION` of the
    run, `min_lr` at most `learning_rate`). `lr_decay_iters=0` asks for a constant rate."""
    if not (isinstance(preset, str) and preset in PRESETS):
        choices = ", ".join(repr(name) for name in PRESETS)
        hint = ""
        if isinstance(preset, str) and preset.strip().lower() in PRESETS:
            hint = f" (names are lower case: did you mean {preset.strip().lower()!r}?)"
        raise ValueError(f"unknown preset {preset!r}{hint}; choose one of {choices}")
    settings = dict(PRESETS[preset])
    unknown = sorted(set(explicit) - set(SETTING_NAMES))
    if unknown:
        raise ValueError(f"unknown settings: {', '.join(unknown)}; known: {', '.join(SETTING_NAMES)}")
    given = {name: value for name, value in explicit.items() if value is not None}
    settings.update(given)
    if "lr_decay_iters" not in given and settings["lr_decay_iters"] is not None:
        settings["lr_decay_iters"] = settings["max_iters"]
    if settings["lr_decay_iters"] == 0:
        settings["lr_decay_iters"] = None
    if "min_lr" not in given:  # a learning rate set below the preset's floor lowers the floor
        settings["min_lr"] = min(settings["min_lr"], settings["learning_rate"])
    if "warmup_iters" not in given:
        run_length = as_int("max_iters", settings["max_iters"], 1)
        settings["warmup_iters"] = min(settings["warmup_iters"], int(run_length * WARMUP_FRACTION))
    if settings["lr_decay_iters"] is not None:
        settings["lr_decay_iters"] = max(settings["lr_decay_iters"], settings["warmup_iters"])
    return settings


def configs_from_settings(settings: dict[str, Any], vocab_size: int) -> tuple[ModelConfig, TrainConfig]:
    """The ModelConfig and TrainConfig that resolved settings describe (validated as usual)."""
    model_config = ModelConfig(vocab_size=vocab_size, **{k: settings[k] for k in MODEL_SETTINGS})
    train_config = TrainConfig(**{k: settings[k] for k in TRAIN_SETTINGS})
    return model_config, train_config


def setting_sources(preset: str, **explicit: Any) -> dict[str, str]:
    """Where each resolved setting came from: "preset", "you" (used as given) or "derived" (changed
    by one of `resolve_settings`' rules)."""
    settings = resolve_settings(preset, **explicit)
    given = {name: value for name, value in explicit.items() if value is not None}
    if given.get("lr_decay_iters") == 0:
        given["lr_decay_iters"] = None  # the constant rate 0 asks for
    return {
        name: "derived" if settings[name] != given.get(name, PRESETS[preset][name])
        else "you" if name in given else "preset"
        for name in SETTING_NAMES
    }


def _shown(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def settings_table(preset: str, **explicit: Any) -> str:
    """A plain-text table, one aligned row per setting: its name, resolved value and source."""
    settings = resolve_settings(preset, **explicit)
    sources = setting_sources(preset, **explicit)
    rows = [("setting", "value", "source")]
    rows += [(name, _shown(settings[name]), sources[name]) for name in SETTING_NAMES]
    return aligned(rows)


def changed_settings(preset: str, **explicit: Any) -> list[str]:
    """One line per setting whose resolved value differs from the preset's, e.g.
    `n_head 4 -> 8 (you)` or `lr_decay_iters 5000 -> 1200 (derived)`."""
    settings = resolve_settings(preset, **explicit)
    sources = setting_sources(preset, **explicit)
    preset_values = PRESETS[preset]
    return [
        f"{name} {_shown(preset_values[name])} -> {_shown(settings[name])} ({sources[name]})"
        for name in SETTING_NAMES
        if settings[name] != preset_values[name]
    ]
