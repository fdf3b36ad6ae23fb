"""Device and precision choices as pure functions, and the real probe on this machine."""

from __future__ import annotations

from importlib.util import find_spec

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
    assert cf.choose_device(False, False, False, prefer="xla", has_xla=True) == "xla"
    assert cf.choose_device(False, True, False, prefer="tpu") == "xla"  # what a TPU runtime calls it


@pytest.mark.parametrize(
    ("prefer", "has", "message"),
    [
        ("cuda", (False, False, False, False), "device 'cuda' is not available here; available here: 'cpu' "),
        ("mps", (True, False, False, False), "device 'mps' is not available here; available here: 'cuda', 'cpu' "),
        ("tpu", (False, False, False, True), "device 'tpu' is not available here; available here: 'xla', 'cpu' "),
        ("xla", (False, False, True, False), "device 'xla' is not available here; available here: 'mps', 'cpu' "),
        ("gpu", (True, True, False, True),
         "device 'gpu' is not a device kind; available here: 'cuda', 'tpu', 'xla', 'cpu' "),
        ("cdua", (False, False, False, False), "device 'cdua' is not a device kind; available here: 'cpu' "),
    ],
)
def test_a_wrong_request_names_what_is_available(prefer: str, has: tuple[bool, ...], message: str) -> None:
    has_cuda, has_tpu, has_mps, has_xla = has
    with pytest.raises(cf.DeviceError) as raised:
        cf.choose_device(has_cuda, has_tpu, has_mps, prefer=prefer, has_xla=has_xla)
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value)
    assert isinstance(raised.value, (ValueError, RuntimeError))  # what callers caught before


def test_pick_device_here(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHARFORMER_DEVICE", raising=False)  # scripts/test-oldest.sh sets it
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert cf.pick_device().type in (expected, "mps")
    assert cf.pick_device("cpu") == torch.device("cpu")
    line = cf.describe_device(torch.device("cpu"))
    assert "cpu" in line and torch.__version__ in line and "threads" in line
    if not torch.cuda.is_available():
        available = "'xla', 'cpu'" if find_spec("torch_xla") else "'cpu'"
        with pytest.raises(cf.DeviceError, match=f"^device 'cuda' is not available here; available here: {available} "):
            cf.pick_device("cuda")
    if find_spec("torch_xla") is None:
        for kind in ("tpu", "xla"):
            with pytest.raises(cf.DeviceError, match=f"^device '{kind}' is not available here"):
                cf.pick_device(kind)


def test_the_environment_names_the_device_when_the_code_does_not(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHARFORMER_DEVICE", "cpu")
    assert cf.pick_device() == torch.device("cpu")
    monkeypatch.setenv("CHARFORMER_DEVICE", "cdua")
    with pytest.raises(cf.DeviceError, match=r"^device 'cdua' is not a device kind; .* \(from \$CHARFORMER_DEVICE\)$"):
        cf.pick_device()
    assert cf.pick_device("cpu") == torch.device("cpu")  # a device named in code wins


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
