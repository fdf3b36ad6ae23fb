"""The text, its character vocabulary, the train/val split and random batches."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch

from .checks import as_int, check_token_dtype
from .download import download, sha256_of

TINY_SHAKESPEARE_URL = (
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
)
TINY_SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
TINY_SHAKESPEARE_FILE = "input.txt"

_REPO_DATA = Path(__file__).resolve().parent.parent / "data"


def default_data_dir() -> Path:
    """$CHARFORMER_DATA, else the repository's data/ (a source checkout), else ~/.cache/charformer."""
    from_env = os.environ.get("CHARFORMER_DATA")
    if from_env:
        return Path(from_env).expanduser()
    if _REPO_DATA.is_dir():
        return _REPO_DATA
    return Path.home() / ".cache" / "charformer"


def load_tiny_shakespeare(
    data_dir: str | os.PathLike[str] | None = None, *, url: str = TINY_SHAKESPEARE_URL
) -> str:
    """The Tiny Shakespeare text: the verified copy in the data folder, downloaded there if needed."""
    folder = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    path = folder / TINY_SHAKESPEARE_FILE
    if not (path.is_file() and sha256_of(path) == TINY_SHAKESPEARE_SHA256):
        download(url, path, sha256=TINY_SHAKESPEARE_SHA256)
    return path.read_text(encoding="utf-8")


class CharTokenizer:
    """Maps each character of a fixed vocabulary to an id (its index) and back."""

    def __init__(self, chars: Iterable[str]) -> None:
        chars = list(chars)
        if not chars:
            raise ValueError("the vocabulary is empty")
        for ch in chars:
            if not isinstance(ch, str) or len(ch) != 1:
                raise ValueError(f"vocabulary entries must be single characters, got {ch!r}")
        if len(set(chars)) != len(chars):
            raise ValueError("the vocabulary has repeated characters")
        self.chars: list[str] = chars
        self._stoi = {ch: i for i, ch in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        """The sorted unique characters of `text`."""
        if not isinstance(text, str):
            raise ValueError(f"text must be a str, got {type(text).__name__}")
        if not text:
            raise ValueError("cannot build a vocabulary from empty text")
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise ValueError(f"encode takes a str, got {type(text).__name__}")
        try:
            return [self._stoi[ch] for ch in text]
        except KeyError:
            unknown = sorted(set(text) - self._stoi.keys())
            listed = ", ".join(repr(ch) for ch in unknown)
            raise ValueError(
                f"{len(unknown)} character(s) not in the vocabulary: {listed}"
            ) from None

    def decode(self, ids: Iterable[int]) -> str:
        chars = self.chars
        out = []
        for raw in ids:
            i = int(raw)
            if not 0 <= i < len(chars):
                raise ValueError(f"token id {i} is outside the vocabulary (0..{len(chars) - 1})")
            out.append(chars[i])
        return "".join(out)

    def to_dict(self) -> dict[str, Any]:
        return {"chars": "".join(self.chars)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> CharTokenizer:
        if not isinstance(values, dict) or not isinstance(values.get("chars"), (str, list)):
            raise ValueError("a tokenizer dict needs 'chars': a string or list of characters")
        return cls(values["chars"])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharTokenizer) and other.chars == self.chars

    def __hash__(self) -> int:
        return hash(tuple(self.chars))

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"


SequenceT = TypeVar("SequenceT", bound=Sequence[Any] | torch.Tensor)


def train_val_split(data: SequenceT, train_fraction: float = 0.9) -> tuple[SequenceT, SequenceT]:
    """The first `train_fraction` of `data` for training, the rest for validation (by position)."""
    if isinstance(train_fraction, bool) or not 0.0 < float(train_fraction) < 1.0:
        raise ValueError(f"train_fraction must be strictly between 0 and 1, got {train_fraction}")
    n = int(train_fraction * len(data))
    if n == 0 or n == len(data):
        raise ValueError(
            f"splitting {len(data)} items at {train_fraction} leaves one side empty"
        )
    return data[:n], data[n:]  # type: ignore[return-value]


def _check_batch_args(data: torch.Tensor, batch_size: Any, block_size: Any) -> tuple[int, int]:
    """The batch and block sizes as Python ints (numpy ints accepted), once data and both are checked."""
    if not isinstance(data, torch.Tensor) or data.dim() != 1:
        raise ValueError("data must be a 1-D tensor of token ids")
    check_token_dtype("data", data)
    batch_size = as_int("batch_size", batch_size, 1)
    block_size = as_int("block_size", block_size, 1)
    if len(data) < block_size + 1:
        raise ValueError(
            f"data has {len(data)} tokens; a window of block_size={block_size} needs at least "
            f"{block_size + 1}"
        )
    return batch_size, block_size


def gather_windows(
    data: torch.Tensor, starts: torch.Tensor, block_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Windows of `block_size + 1` tokens at `starts`, in one gather: inputs and next-token targets.

    The windows are int64 whatever integer dtype `data` is stored in (cross-entropy's targets
    must be), so compact token storage costs nothing downstream.
    """
    offsets = torch.arange(block_size + 1, device=data.device)
    windows = data[starts.to(data.device)[:, None] + offsets].long()  # (B, T+1)
    # Contiguous, so that callers may .view() them as the lecture code does.
    return windows[:, :-1].contiguous(), windows[:, 1:].contiguous()  # (B, T), (B, T)


def get_batch(
    data: torch.Tensor,
    batch_size: int,
    block_size: int,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`batch_size` random windows of `data`; `y` is `x` shifted one token to the left.

    `data` may be of any integer dtype (the windows are int64); sizes may be numpy ints.
    """
    batch_size, block_size = _check_batch_args(data, batch_size, block_size)
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
    x, y = gather_windows(data, starts, block_size)
    if device is not None and x.device != torch.device(device):
        pin = x.device.type == "cpu" and torch.device(device).type == "cuda"
        if pin:
            x, y = x.pin_memory(), y.pin_memory()
        x, y = x.to(device, non_blocking=pin), y.to(device, non_blocking=pin)
    return x, y
