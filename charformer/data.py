"""The text, its character vocabulary, the train/val split and random batches."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from .checks import as_int, as_token_tensor
from .download import download, sha256_of

TINY_SHAKESPEARE_URL = (
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
)
TINY_SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
TINY_SHAKESPEARE_FILE = "input.txt"

# Characters encoded per numpy pass in encode_array: bounds its scratch memory (4 bytes per
# character of UTF-32 plus the looked-up ids) however long the text.
ENCODE_CHUNK_CHARS = 1 << 22

_REPO_DATA = Path(__file__).resolve().parent.parent / "data"


def load_tiny_shakespeare(
    data_dir: str | os.PathLike[str] | None = None, *, url: str = TINY_SHAKESPEARE_URL
) -> str:
    """The Tiny Shakespeare text: the verified copy in the data folder, downloaded there if needed.
    The folder by default: $CHARFORMER_DATA, else the repository's data/, else ~/.cache/charformer."""
    if data_dir is None:
        default = _REPO_DATA if _REPO_DATA.is_dir() else Path.home() / ".cache" / "charformer"
        data_dir = os.environ.get("CHARFORMER_DATA") or default
    path = Path(data_dir).expanduser() / TINY_SHAKESPEARE_FILE
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
        # _id_by_code_point[ord(ch)] is ch's id, -1 for a character outside the vocabulary.
        points = np.array([ord(ch) for ch in chars], dtype=np.int64)
        self._id_by_code_point = np.full(int(points.max()) + 1, -1, dtype=np.int32)
        self._id_by_code_point[points] = np.arange(len(points), dtype=np.int32)

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

    @property
    def token_dtype(self) -> torch.dtype:
        """uint8 for up to 256 characters, int16 for up to 32767 (int16's largest value), else int32."""
        if self.vocab_size <= 256:
            return torch.uint8
        return torch.int16 if self.vocab_size <= 32767 else torch.int32

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise ValueError(f"encode takes a str, got {type(text).__name__}")
        return self.encode_array(text).tolist()

    def encode_array(self, text: str) -> torch.Tensor:
        """`encode(text)` as a 1-D tensor of `token_dtype` (1 byte a character where a list of ints
        needs 16), vectorised: UTF-32 code points through a lookup table, a chunk at a time."""
        if not isinstance(text, str):
            raise ValueError(f"encode_array takes a str, got {type(text).__name__}")
        table = self._id_by_code_point
        ids = torch.empty(len(text), dtype=self.token_dtype)
        for start in range(0, len(text), ENCODE_CHUNK_CHARS):
            chunk = text[start:start + ENCODE_CHUNK_CHARS]
            # surrogatepass: a lone surrogate (legal in a str) is a code point like any other.
            points = np.frombuffer(chunk.encode("utf-32-le", "surrogatepass"), dtype="<u4")
            if int(points.max()) >= len(table):
                raise self._unknown_characters(text)
            chunk_ids = table[points]
            if int(chunk_ids.min()) < 0:
                raise self._unknown_characters(text)
            ids[start:start + len(chunk)] = torch.from_numpy(chunk_ids)
        return ids

    def _unknown_characters(self, text: str) -> ValueError:
        unknown = sorted(set(text) - set(self.chars))
        listed = ", ".join(repr(ch) for ch in unknown)
        return ValueError(f"{len(unknown)} character(s) not in the vocabulary: {listed}")

    def decode(self, ids: Iterable[int]) -> str:
        """The characters of `ids` (ints, numpy's too, or an integer tensor; never floats or bools)."""
        chars = self.chars
        out = []
        for raw in ids.tolist() if isinstance(ids, torch.Tensor) else ids:
            i = raw if type(raw) is int else as_int("a token id", raw)  # plain ints: the fast path
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


def default_prompt(tokenizer: CharTokenizer) -> str:
    """What an empty prompt becomes (CLI and playground): a newline where the vocabulary has one
    (a text starts a fresh line), else its first character."""
    return "\n" if "\n" in tokenizer.chars else tokenizer.chars[0]


SequenceT = TypeVar("SequenceT", bound=Sequence[Any] | torch.Tensor)


def train_val_split(
    data: SequenceT, train_fraction: float = 0.9, *, block_size: int | None = None
) -> tuple[SequenceT, SequenceT]:
    """The first `train_fraction` of `data` for training, the rest for validation (sliced, not
    copied); with `block_size`, a text too short for a window on each side is refused here."""
    if isinstance(train_fraction, bool) or not 0.0 < float(train_fraction) < 1.0:
        raise ValueError(f"train_fraction must be strictly between 0 and 1, got {train_fraction}")
    n = int(train_fraction * len(data))
    if n == 0 or n == len(data):
        raise ValueError(
            f"{len(data)} items are too short to split at train_fraction={train_fraction}: "
            "one side would be empty"
        )
    if block_size is not None:
        block_size = as_int("block_size", block_size, 1)
        shorter = min(n, len(data) - n)
        if shorter < block_size + 1:
            train_percent = 100 * float(train_fraction)
            raise ValueError(
                f"a text of {len(data):,} characters is too short for the "
                f"{train_percent:g}/{100 - train_percent:g} split with block_size={block_size}: one side gets "
                f"{shorter:,} characters and each needs at least {block_size + 1:,}; use a longer "
                "text or a smaller block_size"
            )
    return data[:n], data[n:]  # type: ignore[return-value]


def too_short_message(name: str, n_tokens: int, block_size: int) -> str:
    """One line for data with no room for a single window of `block_size + 1` tokens."""
    return (
        f"{name} has {n_tokens:,} tokens: too short for a window of block_size={block_size}, which "
        f"needs at least {block_size + 1:,}; use a longer text, a smaller block_size, or a split "
        "that leaves this side more of the text"
    )


def gather_windows(
    data: torch.Tensor, starts: torch.Tensor, block_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next-token targets of the windows at `starts`, in one gather, as int64
    (cross-entropy's targets must be): a narrow text is widened here, a batch at a time."""
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
    """`batch_size` random windows of `data`; `y` is `x` shifted one token to the left."""
    data = as_token_tensor("data", data)
    batch_size = as_int("batch_size", batch_size, 1)
    block_size = as_int("block_size", block_size, 1)
    if len(data) < block_size + 1:
        raise ValueError(too_short_message("data", len(data), block_size))
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
    x, y = gather_windows(data, starts, block_size)
    if device is not None and x.device != torch.device(device):
        pin = x.device.type == "cpu" and torch.device(device).type == "cuda"
        if pin:
            x, y = x.pin_memory(), y.pin_memory()
        x, y = x.to(device, non_blocking=pin), y.to(device, non_blocking=pin)
    return x, y
