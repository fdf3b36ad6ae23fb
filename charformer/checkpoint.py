"""One-file checkpoints of tensors and plain values, written atomically and loaded without pickle."""

from __future__ import annotations

import contextlib
import os
import pickle
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import ModelConfig, TrainConfig, describe_model_difference
from .data import CharTokenizer
from .errors import CheckpointError
from .history import History
from .model import CharTransformer

FORMAT = "charformer-checkpoint"
# The first bytes of every file torch.save writes (a zip archive's local file header).
ZIP_MAGIC = b"PK\x03\x04"
VERSION = 1


@dataclass
class Checkpoint:
    """What load_checkpoint returns: a ready model plus everything saved beside it."""

    model: CharTransformer
    tokenizer: CharTokenizer
    model_config: ModelConfig
    train_config: TrainConfig | None
    history: History | None
    iteration: int
    training_state: dict[str, Any] | None
    path: Path


def to_cpu(value: Any) -> Any:
    """A copy of nested dicts/lists/tuples with every tensor moved to the CPU (XLA/CUDA-safe)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_cpu(v) for v in value)
    return value


def unwrap_model(model: Any) -> CharTransformer:
    """The CharTransformer behind `model` or its torch.compile wrapper (whose weights have other names)."""
    module = getattr(model, "_orig_mod", model)
    if not isinstance(module, CharTransformer):
        raise ValueError(f"model must be a CharTransformer, got {type(module).__name__}")
    return module


def temp_path_for(path: Path) -> Path:
    """The one temporary name a save writes first; a stale one is overwritten by the next save."""
    return path.with_name(f".{path.name}.tmp")


def check_tokenizer_fits(tokenizer: Any, module: CharTransformer) -> None:
    """Refuse anything but a CharTokenizer with as many characters as the model's vocabulary."""
    if not isinstance(tokenizer, CharTokenizer):
        raise ValueError(f"tokenizer must be a CharTokenizer, got {type(tokenizer).__name__}")
    if tokenizer.vocab_size != module.config.vocab_size:
        raise ValueError(
            f"tokenizer has {tokenizer.vocab_size} characters but the model's vocab_size is "
            f"{module.config.vocab_size}: the model was built for another vocabulary"
        )


def target_path(path: str | os.PathLike[str], what: str = "checkpoint_path") -> Path:
    """The file a checkpoint at `path` is: a symlink's target (the link is kept); anything but a
    regular file or nothing (a folder, /dev/null, a FIFO, a socket) is refused."""
    path = Path(path)
    target = Path(os.path.realpath(path))
    try:
        mode = os.stat(target).st_mode
    except (FileNotFoundError, NotADirectoryError):  # nothing there (a folder on the way is a file)
        return target
    except OSError as error:  # a name too long, no permission
        raise CheckpointError(f"{what} {path} cannot be used ({type(error).__name__}: {error})") from error
    if stat.S_ISDIR(mode):
        raise CheckpointError(f"{what} {path} is a folder; give a file path inside it, "
                              f"such as {path / 'run.pt'}")
    if not stat.S_ISREG(mode):
        raise CheckpointError(f"{what} {path} is not a regular file (a device, FIFO or socket); "
                              "give a checkpoint file's path")
    return target


def check_checkpoint_path(path: str | os.PathLike[str], probe: bool = True) -> None:
    """Before the first step, so a run never learns at its end that its checkpoint cannot be saved:
    `path` is, or can be, a regular file and (with `probe`) a file can be written in its folder."""
    target = target_path(path)
    if not probe:
        return
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        temp_path_for(target).touch()
        temp_path_for(target).unlink()
    except OSError as error:
        raise CheckpointError(
            f"checkpoint_path {path} cannot be written ({type(error).__name__}: {error}); "
            "choose a folder you can write to"
        ) from error


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    tokenizer: CharTokenizer,
    *,
    train_config: TrainConfig | None = None,
    history: History | None = None,
    training_state: dict[str, Any] | None = None,
    iteration: int | None = None,
) -> Path:
    """Write weights, configs, vocabulary and (optionally) `training_state` to `path` atomically (a
    crash leaves the previous file); `iteration` defaults to the training state's, else the history's."""
    module = unwrap_model(model)
    check_tokenizer_fits(tokenizer, module)
    given, path = Path(path), target_path(path, "checkpoint")
    if iteration is None:
        iteration = int(training_state["iteration"]) if training_state else history.iteration if history else 0
    payload: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "model_config": module.config.to_dict(),
        "model_state": to_cpu(module.state_dict()),
        "tokenizer": tokenizer.to_dict(),
        "train_config": train_config.to_dict() if train_config is not None else None,
        "history": history.to_dict() if history is not None else None,
        "iteration": iteration,
        "training_state": to_cpu(training_state),
    }
    temp = temp_path_for(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(temp, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except Exception as exc:
        raise CheckpointError(
            f"could not write checkpoint {path} ({type(exc).__name__}: {exc}); "
            "any previous checkpoint there is unchanged"
        ) from exc
    finally:  # a leftover temporary file (after os.replace there is none)
        with contextlib.suppress(OSError):
            temp.unlink(missing_ok=True)
    return given


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The raw, validated payload of a checkpoint file; CheckpointError (naming it) if unusable."""
    path = Path(path)
    if not target_path(path, "checkpoint").exists():  # a folder or a FIFO is refused there
        raise CheckpointError(f"checkpoint {path} does not exist")
    with open(path, "rb") as handle:
        head = handle.read(len(ZIP_MAGIC))
    if not head:
        raise CheckpointError(
            f"checkpoint {path} is empty: a run path reserved by new_run_path whose run has not "
            "written its checkpoint yet (or a file cut to nothing)"
        )
    if head != ZIP_MAGIC:
        raise CheckpointError(
            f"{path} is not a torch checkpoint file: torch.save writes a zip archive, and this "
            "file does not start like one"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"refused to load {path}: it is not a plain-tensor charformer checkpoint and would "
            f"need pickle to build arbitrary objects ({str(exc).splitlines()[0]})"
        ) from exc
    except Exception as exc:  # torch.load raises many types on damaged bytes; all mean "unreadable"
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupted and cannot be read "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a charformer checkpoint")
    if payload.get("version") != VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {payload.get('version')!r}; "
            f"this charformer reads version {VERSION}"
        )
    for key in ("model_config", "model_state", "tokenizer"):
        if not isinstance(payload.get(key), dict):
            raise CheckpointError(f"checkpoint {path} lacks its {key.replace('_', ' ')}")
    for key in ("train_config", "history", "training_state"):
        if not isinstance(payload.get(key), (dict, type(None))):
            raise CheckpointError(f"checkpoint {path} has a {key} that is not a dict: {payload[key]!r}")
    iteration = payload.setdefault("iteration", 0)
    if isinstance(iteration, bool) or not isinstance(iteration, int) or iteration < 0:
        raise CheckpointError(f"checkpoint {path} has iteration {iteration!r}: it must be a whole number >= 0")
    return payload


def load_model_state(path: Path, model: nn.Module, payload: dict[str, Any]) -> None:
    """Load the payload's weights into `model`, refusing (with what differs) if the shapes do not fit."""
    module = unwrap_model(model)
    difference = describe_model_difference(
        payload["model_config"], module.config.to_dict(), f"checkpoint {path}"
    )
    if difference:
        raise CheckpointError(difference)
    state = payload["model_state"]
    expected = module.state_dict()
    problems = [f"missing {k}" for k in expected if k not in state]
    problems += [f"unexpected {k}" for k in state if k not in expected]
    problems += [
        f"{k}: checkpoint shape {tuple(state[k].shape)}, model shape {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and isinstance(state[k], torch.Tensor) and state[k].shape != v.shape
    ]
    problems += [f"{k} is not a tensor" for k, v in state.items()
                 if k in expected and not isinstance(v, torch.Tensor)]
    if problems:
        raise CheckpointError(f"checkpoint {path} does not fit the model: " + "; ".join(problems))
    module.load_state_dict(state)


def load_checkpoint(
    path: str | os.PathLike[str], device: torch.device | str | None = None
) -> Checkpoint:
    """Rebuild the model from a checkpoint (in eval mode, on `device` or the CPU)."""
    path = Path(path)
    payload = read_checkpoint(path)
    try:
        model_config = ModelConfig.from_dict(payload["model_config"])
        tokenizer = CharTokenizer.from_dict(payload["tokenizer"])
        train_config = (
            TrainConfig.from_dict(payload["train_config"]) if payload.get("train_config") else None
        )
        history = History.from_dict(payload["history"]) if payload.get("history") else None
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"checkpoint {path} holds an invalid configuration: {exc}") from exc
    if tokenizer.vocab_size != model_config.vocab_size:
        raise CheckpointError(
            f"checkpoint {path} is inconsistent: {tokenizer.vocab_size} characters in its "
            f"vocabulary, vocab_size {model_config.vocab_size} in its model configuration"
        )
    model = CharTransformer(model_config)
    load_model_state(path, model, payload)
    if device is not None:
        try:
            if torch.device(device).type == "meta":
                raise ValueError("the meta device holds no weights, so its model could not sample")
            model.to(device)
        except (RuntimeError, AssertionError, ValueError, TypeError) as exc:
            cause = str(exc).splitlines()[0]
            raise CheckpointError(f"cannot load checkpoint {path} onto device {device!r} ({cause}); "
                                  "pass device='cpu' or cf.pick_device()") from exc
    model.eval()
    return Checkpoint(
        model=model,
        tokenizer=tokenizer,
        model_config=model_config,
        train_config=train_config,
        history=history,
        iteration=payload["iteration"],
        training_state=payload.get("training_state"),
        path=path,
    )
