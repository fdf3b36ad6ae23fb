"""charformer: a character-level transformer on Tiny Shakespeare, small enough to read."""

from types import ModuleType as _ModuleType

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
from .device import choose_device, choose_precision, compile_supported, describe_device, mark_step, pick_device
from .download import download
from .errors import (
    CharformerError,
    CheckpointError,
    DeviceError,
    DownloadError,
    InsecureURLError,
    NonFiniteLossError,
    RankFailedError,
)
from .evaluate import Estimate, Evaluator, whole_split_loss
from .history import History
from .model import CharTransformer, sinusoidal_positions
from .state import TrainState
from .text import load_text
from .plot import LivePlot, plot_attention, plot_losses
from .presets import (
    PRESETS,
    SETTING_NAMES,
    changed_settings,
    configs_from_settings,
    resolve_settings,
    setting_sources,
    settings_table,
)
from .runs import compare_runs, new_run, new_run_path, runs_table
from .threads import ThreadChoice, choose_num_threads, measure_threads
from .step import learning_rate_at
from .train import train

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """SamplingPlayground is imported on first use, so `import charformer` never loads ipywidgets."""
    if name == "SamplingPlayground":
        from .playground import SamplingPlayground

        globals()[name] = SamplingPlayground
        return SamplingPlayground
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "SamplingPlayground"})


# Every name imported above (the modules themselves aside), and the lazily imported playground.
__all__ = sorted(
    [name for name, value in globals().items() if not name.startswith("_") and not isinstance(value, _ModuleType)]
    + ["SamplingPlayground"]
)
