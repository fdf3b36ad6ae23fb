"""Which device to train on, and at what precision: pure choices, then the calls that probe torch."""

from __future__ import annotations

import importlib.util
import os
import platform

import torch

DEVICE_KINDS = ("cuda", "xla", "mps", "cpu")


def choose_device(has_cuda: bool, has_tpu: bool, has_mps: bool, prefer: str | None = None) -> str:
    """The device kind to use, given what is available: CUDA, then a TPU (via torch_xla), MPS, CPU.

    `prefer` forces a kind; asking for one that is not available raises RuntimeError. "xla" is
    accepted whenever torch_xla can run (`has_tpu` or not), so its CPU backend can be tested.
    """
    if prefer is not None and prefer not in DEVICE_KINDS:
        raise ValueError(f"prefer must be one of {DEVICE_KINDS} or None, got {prefer!r}")
    if prefer == "cuda" and not has_cuda:
        raise RuntimeError("CUDA was requested but torch.cuda.is_available() is False")
    if prefer == "mps" and not has_mps:
        raise RuntimeError("MPS was requested but torch.backends.mps.is_available() is False")
    if prefer is not None:
        return prefer
    if has_cuda:
        return "cuda"
    if has_tpu:
        return "xla"
    if has_mps:
        return "mps"
    return "cpu"


def _torch_xla_installed() -> bool:
    return importlib.util.find_spec("torch_xla") is not None


def _tpu_present() -> bool:
    """True only when torch_xla is installed and its runtime reports a TPU."""
    if not _torch_xla_installed():
        return False
    try:
        import torch_xla.runtime as xr

        return str(xr.device_type()).upper() == "TPU"
    except Exception:  # a broken or mismatched torch_xla install is "no TPU", not a crash
        return False


def xla_sync() -> None:
    """Cut torch_xla's lazy graph here and run it (only called on an XLA device)."""
    import torch_xla

    torch_xla.sync()


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def pick_device(prefer: str | None = None) -> torch.device:
    """The best available torch.device, or the one `prefer` names (RuntimeError if unavailable)."""
    has_cuda = torch.cuda.is_available()
    kind = choose_device(has_cuda, _tpu_present(), _mps_available(), prefer)
    if kind == "xla":
        if not _torch_xla_installed():
            raise RuntimeError("XLA was requested but torch_xla is not installed")
        import torch_xla

        return torch_xla.device()
    return torch.device(kind)


def choose_precision(device_type: str, bf16_supported: bool) -> str:
    """"bf16" autocast on GPUs that support it, "fp16" (with a GradScaler) on older ones, else "fp32"."""
    if device_type == "cuda":
        return "bf16" if bf16_supported else "fp16"
    return "fp32"


def compile_supported(device_type: str, system: str, cuda_capability: tuple[int, int] | None) -> bool:
    """Whether torch.compile is worth offering: not on MPS or Windows, not on GPUs below sm_70."""
    if system == "Windows" or device_type == "mps":
        return False
    if device_type == "cuda":
        return cuda_capability is not None and cuda_capability >= (7, 0)
    return device_type in ("cpu", "xla")


def choose_compile(requested: bool | None, device_type: str, system: str,
                   cuda_capability: tuple[int, int] | None) -> bool:
    """Whether to torch.compile: None means on for supported CUDA GPUs only; True is honoured
    wherever compile is supported; False never compiles."""
    if requested is False:
        return False
    supported = compile_supported(device_type, system, cuda_capability)
    if requested is None:
        return supported and device_type == "cuda"
    return supported


def describe_device(device: torch.device) -> str:
    """One line for the notebook: which device, why it was chosen, threads, torch version."""
    kind = device.type
    if kind == "cuda":
        why = f"CUDA GPU {torch.cuda.get_device_name(device)}"
    elif kind == "xla":
        why = "torch_xla device (TPU or PJRT backend)"
    elif kind == "mps":
        why = "Apple GPU through MPS (no CUDA GPU found; sampling draws on the CPU)"
    else:
        why = "no CUDA GPU, TPU or MPS found"
    return (
        f"device: {device} ({why}); torch {torch.__version__}, "
        f"{torch.get_num_threads()} CPU threads of {os.cpu_count()} cores, {platform.system()}"
    )
