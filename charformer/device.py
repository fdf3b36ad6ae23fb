"""Which device to train on, and at what precision: pure choices, then the calls that probe torch."""

from __future__ import annotations

import importlib.util
import os
import platform

import torch

from .errors import DeviceError

DEVICE_KINDS = ("cuda", "tpu", "xla", "mps", "cpu")  # "tpu": torch_xla's device, on a TPU only
# The kind pick_device() takes when none is named, e.g. CHARFORMER_DEVICE=xla with PJRT_DEVICE=CPU
# runs the notebook on torch_xla's CPU backend without editing it.
DEVICE_VARIABLE = "CHARFORMER_DEVICE"


def choose_device(has_cuda: bool, has_tpu: bool, has_mps: bool, prefer: str | None = None,
                  has_xla: bool = False) -> str:
    """CUDA, then a TPU (via torch_xla), MPS, CPU; or `prefer`, which must be available ("xla" needs
    only torch_xla, so its CPU backend can be tested). DeviceError names the kinds that are."""
    available = {"cuda": has_cuda, "tpu": has_tpu, "xla": has_xla or has_tpu, "mps": has_mps, "cpu": True}
    if prefer is not None and not available.get(prefer, False):
        what = "is not available here" if prefer in available else "is not a device kind"
        names = ", ".join(repr(kind) for kind, present in available.items() if present)
        raise DeviceError(f"device {prefer!r} {what}; available here: {names} (with none named, the first)")
    kind = prefer or next(kind for kind in ("cuda", "tpu", "mps", "cpu") if available[kind])
    return "xla" if kind == "tpu" else kind


def _torch_xla_installed() -> bool:
    return importlib.util.find_spec("torch_xla") is not None


def _tpu_present() -> bool:
    try:
        import torch_xla.runtime as xr

        return str(xr.device_type()).upper() == "TPU"
    except Exception:  # torch_xla not installed, or broken or mismatched: "no TPU", not a crash
        return False


def mark_step(device: torch.device | str) -> None:
    """End a step: on XLA, run its lazy graph now (compiled once) rather than grow one over the loop."""
    if torch.device(device).type == "xla":
        import torch_xla

        torch_xla.sync()


def pick_device(prefer: str | None = None) -> torch.device:
    """The best available torch.device, or the kind `prefer` (else $CHARFORMER_DEVICE) names."""
    named = prefer or os.environ.get(DEVICE_VARIABLE) or None
    try:
        kind = choose_device(torch.cuda.is_available(), _tpu_present(), torch.backends.mps.is_available(), named,
                             has_xla=_torch_xla_installed())
    except DeviceError as error:
        if prefer:
            raise
        raise DeviceError(f"{error} (from ${DEVICE_VARIABLE})") from None
    if kind == "xla":
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
    if device_type == "cuda":
        return system != "Windows" and cuda_capability is not None and cuda_capability >= (7, 0)
    return system != "Windows" and device_type in ("cpu", "xla")


def choose_compile(requested: bool | None, device_type: str, system: str,
                   cuda_capability: tuple[int, int] | None) -> bool:
    """Whether to torch.compile: None means on supported CUDA GPUs only, True wherever supported."""
    wanted = device_type == "cuda" if requested is None else requested
    return wanted and compile_supported(device_type, system, cuda_capability)


def describe_device(device: torch.device) -> str:
    """One line for the notebook: which device, why it was chosen, threads, torch version."""
    kind = device.type
    why = "Apple GPU through MPS (no CUDA GPU found; sampling draws on the CPU)" if kind == "mps" else (
        "no CUDA GPU, TPU or MPS found")
    if kind == "cuda":
        # Native bf16 only: a T4 (Colab's free GPU) emulates it, slowly, so it gets fp16.
        precision = choose_precision(kind, torch.cuda.is_bf16_supported(including_emulation=False))
        why = f"CUDA GPU {torch.cuda.get_device_name(device)}, {precision} autocast"
    elif kind == "xla":
        import torch_xla.runtime as xr

        why = f"torch_xla on its {xr.device_type()} backend"
    return (
        f"device: {device} ({why}); torch {torch.__version__}, "
        f"{torch.get_num_threads()} CPU threads of {os.cpu_count()} cores, {platform.system()}"
    )
