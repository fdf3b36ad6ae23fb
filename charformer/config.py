"""Validated configuration dataclasses: plain data, checked once at construction."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, fields
from typing import Any

from .checks import as_int, as_real

ATTENTION_MODES = ("fused", "explicit")
ACTIVATIONS = ("relu", "gelu")
POSITIONAL_MODES = ("learned", "sinusoidal", "none")


def _check_numbers(config: Any, ints: dict[str, int], reals: dict[str, float]) -> None:
    """Check int fields (>= their minimum; None where that is the default) and real fields (in
    [0, their bound)), storing plain Python numbers (numpy's too, never bools)."""
    defaults = {f.name: f.default for f in fields(config)}
    for name, minimum in ints.items():
        if getattr(config, name) is not None or defaults[name] is not None:
            object.__setattr__(config, name, as_int(name, getattr(config, name), minimum))
    for name, bound in reals.items():
        raw = getattr(config, name)
        value = as_real(name, raw)
        if not 0.0 <= value < bound:
            raise ValueError(f"{name} must be in [0.0, {bound}), got {value}")
        # A whole Python int stays an int (its repr and to_dict are unchanged); numpy becomes Python.
        object.__setattr__(config, name, raw if type(raw) in (int, float) else value)


class DictFields:
    """A dataclass's fields (less `_not_saved`) as a plain dict, and back with unknown names refused."""

    _not_saved: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        names = [f.name for f in fields(self) if f.name not in self._not_saved]  # type: ignore[arg-type]
        return {name: copy.copy(getattr(self, name)) for name in names}  # lists copied, not shared

    @classmethod
    def from_dict(cls, values: dict[str, Any]):  # type: ignore[no-untyped-def]
        known = {f.name for f in fields(cls)} - set(cls._not_saved)  # type: ignore[arg-type]
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields: {', '.join(unknown)}")
        return cls(**values)


@dataclass(frozen=True)
class ModelConfig(DictFields):
    """The shape of a CharTransformer. Defaults are the lecture's small model."""

    vocab_size: int = 65
    block_size: int = 32
    n_embd: int = 64
    n_head: int = 4
    n_layer: int = 4
    dropout: float = 0.0
    attention: str = "fused"
    positional: str = "learned"
    # ReLU as in the lecture: under the small GPT-2 init GELU starts nearly linear and, at the seed
    # recipe, ended at val 1.86 against ReLU's 1.77 (benchmarks/RESULTS.md).
    activation: str = "relu"

    def __post_init__(self) -> None:
        _check_numbers(
            self, dict(vocab_size=1, block_size=1, n_embd=1, n_head=1, n_layer=1), dict(dropout=1.0)
        )
        if self.n_embd % self.n_head != 0:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        choices = dict(attention=ATTENTION_MODES, activation=ACTIVATIONS, positional=POSITIONAL_MODES)
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head


@dataclass(frozen=True)
class TrainConfig(DictFields):
    """How to train. The first five fields are the seed recipe; the rest are chosen by measurement."""

    batch_size: int = 16
    learning_rate: float = 1e-3
    max_iters: int = 5000
    eval_interval: int = 100
    # Batches of fixed windows for the val estimate (train's gets a quarter): 80 x 16 give a standard
    # error under 0.01 nats, far faster than the lecture's 200 random batches (benchmarks/RESULTS.md).
    eval_iters: int = 80
    # On 2-D weights only (nanoGPT's grouping); at the seed recipe 0.01 without clipping ended at
    # val 1.750, 0.1 with clipping at 1.765 (benchmarks/RESULTS.md).
    weight_decay: float = 0.01
    beta1: float = 0.9
    # 0.99, not 0.999: with batches of 16 the second moment must follow the loss quickly (nanoGPT).
    beta2: float = 0.99
    # Off by default (0): at this size clipping only slowed learning; set 1.0 for big models.
    grad_clip: float = 0.0
    warmup_iters: int = 0
    lr_decay_iters: int | None = None
    min_lr: float = 1e-4
    seed: int = 1337
    num_threads: int | None = None
    # None: on for CUDA GPUs that support it, off elsewhere (on a CPU its warm-up outweighs the gain).
    compile: bool | None = None
    # A finished run ends with the best evaluation's weights; False keeps the last step's.
    keep_best: bool = True
    # Stop after this many evaluations in a row without a new best val estimate (None: never).
    patience: int | None = None

    def __post_init__(self) -> None:
        _check_numbers(
            self,
            dict(batch_size=1, max_iters=1, eval_interval=1, eval_iters=1, warmup_iters=0, seed=0,
                 lr_decay_iters=1, num_threads=1, patience=1),
            dict(learning_rate=math.inf, min_lr=math.inf, weight_decay=math.inf, beta1=1.0, beta2=1.0,
                 grad_clip=math.inf),
        )
        if self.lr_decay_iters is not None and self.lr_decay_iters < self.warmup_iters:
            raise ValueError(
                f"lr_decay_iters ({self.lr_decay_iters}) must be >= warmup_iters ({self.warmup_iters})"
            )
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.min_lr > self.learning_rate:
            raise ValueError(f"min_lr ({self.min_lr}) must not exceed learning_rate ({self.learning_rate})")
        if self.compile is not None and not isinstance(self.compile, bool):
            raise ValueError(f"compile must be True, False or None (automatic), got {self.compile!r}")
        if not isinstance(self.keep_best, bool):
            raise ValueError(f"keep_best must be a bool, got {self.keep_best!r}")


_MODEL_FIELD_PHRASES = {
    "vocab_size": "a vocabulary of {} characters",
    "block_size": "a context of {} characters",
    "n_embd": "{} channels",
    "n_head": "{} heads",
    "n_layer": "{} layers",
    "dropout": "dropout {}",
    "attention": "{!r} attention",
    "positional": "{!r} positions",
    "activation": "{!r} activation",
}


def describe_model_difference(recorded: dict[str, Any], current: dict[str, Any], source: str) -> str | None:
    """'<source> was recorded with a model of 4 layers; this model has 2 layers', or None if equal."""
    differing = [k for k in _MODEL_FIELD_PHRASES if recorded.get(k) != current.get(k)]
    if not differing:
        return None

    def describe(values: dict[str, Any]) -> str:
        return " and ".join(_MODEL_FIELD_PHRASES[k].format(values.get(k)) for k in differing)

    return f"{source} was recorded with a model of {describe(recorded)}; this model has {describe(current)}"
