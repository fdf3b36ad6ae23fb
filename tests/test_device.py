"""Device and precision choices as pure functions, and the real probe on this machine."""

from __future__ import annotations

import pytest
import torch

import charformer as cf


@pytest.mark.parametrize(
    ("has_cuda", "has_tpu", "has_mps", "expected"),
    [
        (True, True, True, "cuda"),
        (False, True, True, "xla"),
        (False, False, True, "mps"),
        (False, False, False, "cpu"),
        (True, False, False, "cuda"),
    ],
)
def test_automatic_order(has_cuda: bool, has_tpu: bool, has_mps: bool, expected: str) -> None:
    assert cf.choose_device(has_cuda, has_tpu, has_mps) == expected


def test_preference_wins_when_available() -> None:
    assert cf.choose_device(True, False, True, prefer="cpu") == "cpu"
    assert cf.choose_device(True, False, True, prefer="mps") == "mps"
    assert cf.choose_device(False, False, False, prefer="xla") == "xla"


def test_unavailable_preference_says_why() -> None:
    with pytest.raises(RuntimeError, match="CUDA"):
        cf.choose_device(False, False, False, prefer="cuda")
    with pytest.raises(RuntimeError, match="MPS"):
        cf.choose_device(True, False, False, prefer="mps")


def test_unknown_preference() -> None:
    with pytest.raises(ValueError):
        cf.choose_device(False, False, False, prefer="gpu")
    with pytest.raises(ValueError):
        cf.pick_device("tpu")


def test_pick_device_here() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert cf.pick_device().type in (expected, "mps")
    assert cf.pick_device("cpu") == torch.device("cpu")
    line = cf.describe_device(torch.device("cpu"))
    assert "cpu" in line and torch.__version__ in line and "threads" in line
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            cf.pick_device("cuda")


def test_precision_choice() -> None:
    assert cf.choose_precision("cuda", True) == "bf16"
    assert cf.choose_precision("cuda", False) == "fp16"
    assert cf.choose_precision("cpu", False) == "fp32"
    assert cf.choose_precision("mps", True) == "fp32"


def test_compile_support() -> None:
    assert cf.compile_supported("cuda", "Linux", (8, 0))
    assert not cf.compile_supported("cuda", "Linux", (6, 1))
    assert not cf.compile_supported("mps", "Darwin", None)
    assert not cf.compile_supported("cpu", "Windows", None)
    assert cf.compile_supported("cpu", "Linux", None)
