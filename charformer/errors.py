"""The exceptions charformer raises, so callers can catch its failures by kind."""

from __future__ import annotations

from typing import Any


class CharformerError(Exception):
    """Base class of every error charformer raises on purpose."""


class DownloadError(CharformerError, OSError):
    """A file could not be fetched; the message names the URL, the cause and where to put it by hand."""


class InsecureURLError(DownloadError, ValueError):
    """A plain-http URL to a non-loopback host was refused (an invalid argument and a failed download)."""


class DeviceError(CharformerError, ValueError, RuntimeError):
    """A device was asked for that is unknown or not available here; the message names those that are."""


class CheckpointError(CharformerError, ValueError):
    """A checkpoint is missing, damaged, unsafe, or does not fit the model it is loaded into."""


class NonFiniteLossError(CharformerError, FloatingPointError):
    """Training produced a NaN or infinite loss; `.history` keeps what was learned until then."""

    def __init__(self, message: str, iteration: int, history: Any = None) -> None:
        super().__init__(message)
        self.iteration = iteration
        self.history = history


class RankFailedError(CharformerError, RuntimeError):
    """Another process of a distributed run failed; every rank stops, naming it (`.rank`) and its error."""

    def __init__(self, message: str, rank: int) -> None:
        super().__init__(message)
        self.rank = rank
