"""Argument checks shared by the public functions: numbers (numpy's too, never bools), token ids."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import torch


def as_int(name: str, value: Any, minimum: int | None = None) -> int:
    """`value` as a Python int if it is an integer (Python or numpy, not a bool), else ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an int, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def as_real(name: str, value: Any) -> float:
    """`value` as a Python float if it is a finite real (Python or numpy, not a bool), else ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def check_token_dtype(name: str, tokens: torch.Tensor) -> None:
    """Refuse a tensor that is not of an integer dtype, naming a fractional id if it holds one."""
    if tokens.dtype != torch.bool and not tokens.dtype.is_floating_point and not tokens.dtype.is_complex:
        return  # any signed or unsigned integer dtype
    detail = ""
    if tokens.dtype.is_floating_point and tokens.numel():
        fractional = tokens[tokens != tokens.trunc()]
        if fractional.numel():
            detail = f" (it holds fractional values such as {float(fractional.flatten()[0])!r})"
    raise ValueError(
        f"{name} must hold integer token ids, got dtype {tokens.dtype}{detail}; "
        "token ids are whole numbers: convert whole-valued floats with .long()"
    )


def as_token_tensor(name: str, data: Any) -> torch.Tensor:
    """A 1-D integer tensor of token ids from a tensor, numpy array or list (no copy when possible)."""
    if isinstance(data, torch.Tensor):
        tensor = data
    else:
        if isinstance(data, np.ndarray):
            data = data.astype(data.dtype.newbyteorder("="), order="C", copy=False)
        try:
            tensor = torch.as_tensor(data)
        except (TypeError, ValueError, RuntimeError) as error:
            raise ValueError(f"{name} must be a 1-D sequence of integer token ids ({error})") from None
    if tensor.dim() != 1:
        raise ValueError(f"{name} must be a 1-D sequence of integer token ids, got shape {tuple(tensor.shape)}")
    check_token_dtype(name, tensor)
    return tensor
