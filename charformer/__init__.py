"""charformer: a character-level transformer on Tiny Shakespeare, small enough to read."""

from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .config import ModelConfig, TrainConfig
from .data import (
    TINY_SHAKESPEARE_SHA256,
    TINY_SHAKESPEARE_URL,
    CharTokenizer,
    get_batch,
    load_tiny_shakespeare,
    train_val_split,
)
from .device import choose_device, choose_precision, compile_supported, describe_device, pick_device
from .download import download
from .errors import (
    CharformerError,
    CheckpointError,
    DownloadError,
    InsecureURLError,
    NonFiniteLossError,
)
from .evaluate import Estimate, Evaluator, whole_split_loss
from .history import History
from .model import CharTransformer, sinusoidal_positions
from .state import TrainState
from .plot import plot_attention, plot_losses
from .train import learning_rate_at, train

__version__ = "0.1.0"

__all__ = [
    "CharTokenizer",
    "CharTransformer",
    "CharformerError",
    "Checkpoint",
    "CheckpointError",
    "DownloadError",
    "Estimate",
    "Evaluator",
    "History",
    "InsecureURLError",
    "ModelConfig",
    "NonFiniteLossError",
    "TINY_SHAKESPEARE_SHA256",
    "TINY_SHAKESPEARE_URL",
    "TrainConfig",
    "TrainState",
    "choose_device",
    "choose_precision",
    "compile_supported",
    "describe_device",
    "download",
    "get_batch",
    "learning_rate_at",
    "load_checkpoint",
    "load_tiny_shakespeare",
    "pick_device",
    "plot_attention",
    "plot_losses",
    "save_checkpoint",
    "sinusoidal_positions",
    "train",
    "train_val_split",
    "whole_split_loss",
]
