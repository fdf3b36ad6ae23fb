"""train(): AdamW on random batches, fixed-window evaluations, interrupts, checkpoints, resume.

This is the one module that ties the model, data, device and checkpoints together.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import torch
from torch import nn
from tqdm.auto import tqdm

from .checkpoint import (
    check_tokenizer_fits,
    load_model_state,
    read_checkpoint,
    save_checkpoint,
    temp_path_for,
    unwrap_model,
)
from .checks import as_int, as_token_tensor
from .config import TrainConfig, describe_model_difference
from .data import CharTokenizer, get_batch, too_short_message
from .distributed import (
    Agreement, data_parallel, interrupted_error, is_main_process, peer_failed, rank_seed,
    streams_for_rank, warn_if_world_size_changed, world_size,
)
from .errors import CheckpointError, NonFiniteLossError
from .evaluate import Evaluator, whole_split_loss
from .history import History
from .model import CharTransformer, switched_mode
from .state import TrainState
from .step import TrainStep, tf32_matmuls
from .threads import ThreadChoice

# Models that train() has trained in this process, and how many steps they had then.
_TRAINED_STEPS: weakref.WeakKeyDictionary[nn.Module, int] = weakref.WeakKeyDictionary()


class _InterruptLatch:
    """Turns SIGINT (Ctrl-C, the notebook's stop button) into a flag checked between steps."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> _InterruptLatch:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)


# Integer dtypes train() takes token ids in; narrow ones stay narrow (widened a batch at a time).
TOKEN_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)

# The end-of-run loss over the val split measures at most its first this many characters.
FINAL_VAL_MAX_CHARS = 1_000_000


def _as_token_tensor(name: str, data: Any, module: CharTransformer, device: torch.device) -> torch.Tensor:
    """The token ids on `device`, once dtype (any integer), length and range are checked.

    uint8, int8, int16, int32 and int64 keep their dtype (a narrow text is widened a batch at a
    time, never whole); torch's barely supported uint16/32/64 become int64 here.
    """
    tensor = as_token_tensor(name, data)
    if tensor.dtype not in TOKEN_DTYPES:
        tensor = tensor.long()
    block_size, vocab_size = module.config.block_size, module.config.vocab_size
    if len(tensor) < block_size + 1:
        raise ValueError(too_short_message(name, len(tensor), block_size))
    if int(tensor.min()) < 0 or int(tensor.max()) >= vocab_size:
        raise ValueError(
            f"{name} holds token ids up to {int(tensor.max())}, outside this model's vocabulary "
            f"of {vocab_size} characters (ids 0..{vocab_size - 1})"
        )
    return tensor.to(device=device)


@dataclass
class _Run:
    """The objects one call of train() shares between its named steps."""

    module: CharTransformer
    config: TrainConfig
    device: torch.device
    history: History
    state: TrainState
    step: TrainStep
    batches: torch.Generator
    evaluator: Evaluator
    train_tokens: torch.Tensor
    val_tokens: torch.Tensor
    tokenizer: CharTokenizer | None = None
    checkpoint_path: Path | None = None
    checkpoint_every: int | None = None
    on_evaluation: Callable[[History], Any] | None = None
    agreement: Agreement | None = None
    evaluations: int = 0
    started: float = field(default_factory=time.perf_counter)

    def __post_init__(self) -> None:
        self.seconds_before = self.state.train_seconds

    @property
    def iteration(self) -> int:
        return self.state.iteration

    def elapsed(self) -> float:
        return self.seconds_before + time.perf_counter() - self.started

    def record_progress(self) -> None:
        """Bring the state (optimizer, random streams, seconds) and the History up to now."""
        self.state.train_seconds = self.elapsed()
        self.state.optimizer = self.step.optimizer.state_dict()
        self.state.capture_rng(self.batches, self.device)
        self.history.iteration = self.state.iteration
        self.history.train_seconds = self.state.train_seconds
        self.history.run_state = self.state
        _TRAINED_STEPS[self.module] = self.state.iteration

    def evaluation_due(self) -> bool:
        at_interval = self.iteration % self.config.eval_interval == 0
        at_end = self.iteration >= self.config.max_iters
        done_already = bool(self.history.iters) and self.history.iters[-1] == self.iteration
        return (at_interval or at_end) and not done_already

    def out_of_patience(self) -> bool:
        patience = self.config.patience
        return patience is not None and self.history.evaluations_since_best() >= patience

    def train_one_step(self) -> None:
        x, y = get_batch(
            self.train_tokens, self.config.batch_size, self.module.config.block_size,
            generator=self.batches,
        )
        self.step(self.iteration, x, y)
        if self.device.type == "cpu" and self.step.saw_nonfinite():
            self.fail_nonfinite("training")
        self.state.iteration += 1

    def evaluate(self) -> None:
        assert self.agreement is not None
        if self.agreement.any_rank(self.step.saw_nonfinite()):
            self.fail_nonfinite("training")
        estimate = self.evaluator(self.module, self.step.autocast)
        if not (math.isfinite(estimate.train_loss) and math.isfinite(estimate.val_loss)):
            self.fail_nonfinite("evaluation")
        self.state.record_evaluation(self.iteration, estimate.val_loss, self.module)
        history = self.history
        history.iters.append(self.iteration)
        history.train_loss.append(estimate.train_loss)
        history.val_loss.append(estimate.val_loss)
        history.val_stderr.append(estimate.val_stderr)
        history.elapsed.append(self.elapsed())
        history.best_iter, history.best_val_loss = self.state.best_iter, self.state.best_val_loss
        if is_main_process():
            tqdm.write(
                f"step {self.iteration}: train loss {estimate.train_loss:.4f}, "
                f"val loss {estimate.val_loss:.4f}"
            )
        self.record_progress()
        self.evaluations += 1
        if self.checkpoint_every is not None and self.evaluations % self.checkpoint_every == 0:
            self.write_checkpoint()
        if self.on_evaluation is not None and is_main_process():
            self.on_evaluation(history)  # last: what it sees, and any error it raises, is whole

    def write_checkpoint(self) -> None:
        """Every rank calls it (their random streams are gathered); rank 0 writes."""
        assert self.checkpoint_path is not None and self.tokenizer is not None
        assert self.agreement is not None
        training_state = {**self.state.to_checkpoint(), "world_size": world_size()}
        rank_rngs = self.agreement.gather(self.state.rng)
        if len(rank_rngs) > 1:
            training_state["rank_rngs"] = rank_rngs
        if is_main_process():
            save_checkpoint(
                self.checkpoint_path, self.module, self.tokenizer, train_config=self.config,
                history=self.history, training_state=training_state,
            )

    def peer_failed(self, failed_rank: int, kind: str, message: str) -> NoReturn:
        """Another rank failed: stop here too, as NonFiniteLossError if that was its error."""
        if kind == NonFiniteLossError.__name__:
            self.fail_nonfinite("training", f" on rank {failed_rank}")
        peer_failed(failed_rank, kind, message, self.iteration)

    def fail_nonfinite(self, what: str, where: str = "") -> NoReturn:
        """Put the best finite evaluation's weights back and stop with NonFiniteLossError.

        With a checkpoint_path, those weights (and the History) are written there (by rank 0),
        without a training state: the optimizer has seen the non-finite step, so the run cannot
        continue exactly from it.
        """
        if self.state.best_weights is not None:
            self.module.load_state_dict(self.state.best_weights)
        self.history.iteration = self.iteration
        self.history.train_seconds = self.elapsed()
        self.history.final_val_loss = None
        self.history.final_val_chars = None
        self.history.run_state = None  # the optimizer has seen the non-finite step
        restored = (
            f"; the weights of the best evaluation (step {self.state.best_iter}) were restored"
            if self.state.best_weights is not None else ""
        )
        if restored and self.checkpoint_path is not None and is_main_process():
            assert self.tokenizer is not None
            try:
                save_checkpoint(self.checkpoint_path, self.module, self.tokenizer,
                                train_config=self.config, history=self.history)
                restored += f" and written to {self.checkpoint_path}"
            except CheckpointError as error:
                restored += f"; writing them failed: {error}"
        raise NonFiniteLossError(
            f"the {what} loss is not finite{where} at iteration {self.iteration} "
            f"(learning rate {self.config.learning_rate:g}){restored}",
            iteration=self.iteration,
            history=self.history,
        )

    def finish(self, interrupted: bool) -> None:
        """Keep the best weights (if asked), measure the whole val split, report, checkpoint."""
        history, state = self.history, self.state
        history.interrupted = interrupted
        history.stopped_early = not interrupted and self.iteration < self.config.max_iters
        self.record_progress()
        if interrupted:
            history.final_val_loss = None  # not measured: the weights moved since any earlier one
            history.final_val_chars = None
            if is_main_process():
                print(
                    f"interrupted after step {self.iteration} ({history.train_seconds:.1f} s); "
                    "call train(..., history=history) to continue"
                )
        else:
            kept_best = self.config.keep_best and state.hold_best(self.module)
            history.final_val_chars = min(len(self.val_tokens), FINAL_VAL_MAX_CHARS)
            history.final_val_loss = whole_split_loss(
                self.module, self.val_tokens, max_chars=FINAL_VAL_MAX_CHARS
            )
            if is_main_process():
                print(_summary(history, self.config, kept_best, len(self.val_tokens)))
        if self.checkpoint_path is not None:
            self.write_checkpoint()


def _summary(history: History, config: TrainConfig, kept_best: bool, val_chars: int | None = None) -> str:
    """The line a finished run prints: where it ended, its best evaluation, the val split (`val_chars`
    characters long; a capped pass says how many it measured)."""
    lines = [
        f"finished {history.iteration} steps in {history.train_seconds:.1f} s: "
        f"train loss {history.train_loss[-1]:.4f}, val loss {history.val_loss[-1]:.4f}"
    ]
    if history.stopped_early:
        lines.append(
            f"stopped early: no new best val in {config.patience} evaluations (patience={config.patience})"
        )
    best = f"best val {history.best_val_loss:.4f} at step {history.best_iter}"
    if history.best_iter == history.iteration:
        lines.append(f"{best} (the last evaluation)")
    elif kept_best:
        lines.append(f"{best} (kept); the last evaluation was {history.val_loss[-1]:.4f}")
    elif config.keep_best:
        lines.append(f"{best} (its weights are not in memory: kept the last)")
    else:
        lines.append(f"{best} (not kept: keep_best=False)")
    best_stderr = history.val_stderr_at(history.best_iter)
    gap = history.val_loss[-1] - history.best_val_loss if history.best_val_loss is not None else None
    if history.best_iter != history.iteration and best_stderr is not None and gap is not None \
            and gap < best_stderr:
        lines.append(
            f"best at step {history.best_iter} ({history.best_val_loss:.4f} ± {best_stderr:.4f}) is "
            f"within one standard error of the last evaluation ({history.val_loss[-1]:.4f})"
        )
    measured = history.final_val_chars
    where = (
        "whole val split" if measured is None or val_chars is None or measured == val_chars
        else f"val split (its first {measured:,} of {val_chars:,} characters)"
    )
    lines.append(
        f"{where} {history.final_val_loss:.4f} nats = "
        f"{history.final_val_loss / math.log(2):.4f} bits per character"  # type: ignore[operator]
    )
    return "; ".join(lines)


def _check_arguments(
    model: nn.Module, config: TrainConfig, history: History | None, tokenizer: CharTokenizer | None,
    checkpoint_path: Any, checkpoint_every: int | None, resume_from: Any, on_evaluation: Any,
) -> CharTransformer:
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    module = unwrap_model(model)
    if not isinstance(module, CharTransformer):
        raise ValueError(f"model must be a CharTransformer, got {type(module).__name__}")
    if history is not None and not isinstance(history, History):
        raise ValueError(f"history must be a History returned by train, got {type(history).__name__}")
    if history is not None and resume_from is not None:
        raise ValueError("pass history= (this process) or resume_from= (a checkpoint), not both")
    if checkpoint_every is not None:
        as_int("checkpoint_every", checkpoint_every, 1)  # None, or an int >= 1 (numpy ints too)
    if checkpoint_every is not None and checkpoint_path is None:
        raise ValueError("checkpoint_every needs a checkpoint_path to write to")
    if checkpoint_path is not None and tokenizer is None and resume_from is None:
        raise ValueError("checkpoint_path needs tokenizer= so that the checkpoint carries its vocabulary")
    if on_evaluation is not None and not callable(on_evaluation):
        raise ValueError(f"on_evaluation must be callable, got {on_evaluation!r}")
    if tokenizer is not None:
        check_tokenizer_fits(tokenizer, module)
    return module


def _check_checkpoint_path(path: Path) -> None:
    """Before the first step: the folder can be made and a file written there (a probe file,
    removed at once), so a run never learns at its end that its checkpoint cannot be saved."""
    if path.is_dir():
        raise CheckpointError(f"checkpoint_path {path} is a folder; give a file path inside it, "
                              f"such as {path / 'run.pt'}")
    probe = temp_path_for(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb"):
            pass
        probe.unlink()
    except OSError as error:
        raise CheckpointError(
            f"checkpoint_path {path} cannot be written ({type(error).__name__}: {error}); "
            "choose a folder you can write to"
        ) from error


def _keep_history_reachable(error: BaseException, history: History) -> None:
    """Attach the run's History to an error that ends it, unless the error carries one already."""
    if getattr(error, "history", None) is None:
        with contextlib.suppress(AttributeError, TypeError):
            error.history = history  # type: ignore[attr-defined]


def _read_resume_checkpoint(
    path: Path, module: CharTransformer, tokenizer: CharTokenizer | None, config: TrainConfig
) -> tuple[History, TrainState, CharTokenizer]:
    """The History, TrainState and vocabulary of a checkpoint that train() wrote, its weights
    loaded into `module` only once every check has passed (a refusal leaves the model as it was)."""
    payload = read_checkpoint(path)
    if payload.get("training_state") is None or payload.get("history") is None:
        raise CheckpointError(
            f"checkpoint {path} holds weights only, not the training state needed to "
            "resume (write it with train(..., checkpoint_path=...))"
        )
    saved_tokenizer = CharTokenizer.from_dict(payload["tokenizer"])
    history = History.from_dict(payload["history"])
    state = TrainState.from_checkpoint(payload, history.train_seconds)
    source = f"checkpoint {path}"
    _check_vocabulary(saved_tokenizer.chars, tokenizer, source, CheckpointError)
    _check_max_iters(state, config, source, CheckpointError)
    load_model_state(path, module, payload)  # refuses a different model, naming what differs
    saved = payload["training_state"]
    state.rng = streams_for_rank(saved, config.seed, state.iteration) or state.rng
    warn_if_world_size_changed(int(saved.get("world_size", 1)), config.batch_size, source)
    return history, state, saved_tokenizer


def _check_vocabulary(recorded: list[str] | None, tokenizer: CharTokenizer | None, source: str,
                      error: type[ValueError]) -> None:
    """Refuse a tokenizer whose characters differ from those the run was trained with."""
    if recorded is None or tokenizer is None or list(recorded) == tokenizer.chars:
        return
    only_there = sorted(set(recorded) - set(tokenizer.chars))
    only_here = sorted(set(tokenizer.chars) - set(recorded))
    raise error(
        f"{source} was recorded with a different vocabulary ({len(recorded)} characters there, "
        f"{tokenizer.vocab_size} here; only there: {only_there!r}; only here: {only_here!r})"
    )


def _check_max_iters(state: TrainState, config: TrainConfig, source: str, error: type[ValueError]) -> None:
    if config.max_iters < state.iteration:
        raise error(
            f"{source} has {state.iteration} steps already; max_iters={config.max_iters} is below "
            f"that (raise max_iters to {state.iteration} + the steps you want to add)"
        )


def _state_to_continue(
    module: CharTransformer, history: History | None, config: TrainConfig,
    tokenizer: CharTokenizer | None,
) -> tuple[History, TrainState]:
    """The History and TrainState a call starts from when no checkpoint is given; a history that
    this model, config or vocabulary cannot continue is refused in the user's terms."""
    if history is None:
        if module in _TRAINED_STEPS:
            warnings.warn(
                f"this model was already trained for {_TRAINED_STEPS[module]} steps in this "
                "process; training continues from its weights with a fresh optimizer and "
                "learning-rate schedule. Pass history= to continue that run exactly, or build a "
                "new model to start over.",
                UserWarning, stacklevel=3,
            )
        torch.manual_seed(rank_seed(config.seed))  # dropout's stream, on a fresh run only
        return History(), TrainState.fresh(module)
    state = TrainState.from_history(history, module)
    difference = describe_model_difference(state.model_config or {}, module.config.to_dict(), "history")
    if state.model_config is not None and difference:
        raise ValueError(difference)
    _check_max_iters(state, config, "history", ValueError)
    trained = state.module_ref() if state.module_ref is not None else None
    if trained is not None and trained is not module and state.last_weights is None:
        raise ValueError(
            "this history belongs to another model object; pass the model that train() returned "
            "it for, or continue from its checkpoint with resume_from="
        )
    _check_vocabulary(state.vocabulary, tokenizer, "history", ValueError)
    if history.run_state is None:
        warnings.warn(
            f"this History has no run state (it was rebuilt with from_dict or came from a failed "
            f"run): continuing from step {history.iteration} with a fresh optimizer and batch "
            "stream. To continue a saved run exactly, pass its checkpoint as resume_from=.",
            UserWarning, stacklevel=3,
        )
    return history, state


def _restore(state: TrainState, run_module: CharTransformer, step: TrainStep,
             batches: torch.Generator, device: torch.device, config: TrainConfig) -> None:
    """Put the model, optimizer and random streams where the state says the run stopped."""
    state.module_ref = weakref.ref(run_module)
    state.take_back_last(run_module)
    if state.optimizer is not None:
        step.load_optimizer_state(state.optimizer)
    if state.rng is not None:
        state.restore_rng(batches, device)
    elif state.iteration:
        batches.manual_seed(rank_seed(config.seed + state.iteration))  # a fresh stream for the new steps


def train(
    model: nn.Module,
    train_data: Any,
    val_data: Any,
    config: TrainConfig,
    *,
    device: torch.device | str | None = None,
    history: History | None = None,
    tokenizer: CharTokenizer | None = None,
    checkpoint_path: str | os.PathLike[str] | None = None,
    checkpoint_every: int | None = None,
    resume_from: str | os.PathLike[str] | None = None,
    on_evaluation: Callable[[History], Any] | None = None,
) -> History:
    """Train `model` to `config.max_iters` steps and return the History of its evaluations.

    Evaluates every `eval_interval` steps and at the end on fixed windows (their own random
    stream, so evaluation never shifts training) and calls `on_evaluation(history)` after each.
    A finished run leaves the best evaluation's weights in the model (`keep_best`); Ctrl-C / the
    stop button ends the current step and returns with `interrupted=True`. Continue exactly with
    `history=` (this process) or `resume_from=` (a checkpoint `train` wrote): both continue from
    the last step's weights, optimizer and random streams, never from the restored best.
    `checkpoint_path` is rewritten every `checkpoint_every` evaluations (None: at the end only).

    The steps themselves are a plain loop. On the CPU, with `keep_best=False`, a fresh model
    ends with the very same weights (`torch.equal`) as this loop run on a model built under the
    same seed (tests/test_hand_loop.py keeps it true): `torch.set_num_threads(num_threads)` when
    the config sets it (train runs under it); `torch.manual_seed(config.seed)`; batches
    from `get_batch(train_data, batch_size, block_size, generator=g)` with
    `g = torch.Generator().manual_seed(config.seed)`; `torch.optim.AdamW` with `fused=True`,
    `betas=(beta1, beta2)` and two groups (`weight_decay` on the 2-D weights, 0 on the rest); and
    at each step: every group's lr set to `learning_rate_at(step, config)`, forward, loss,
    `zero_grad(set_to_none=True)`, backward, `clip_grad_norm_` when `grad_clip > 0`, step.
    Evaluations draw nothing from either random stream.

    Contracts:
    - A continued run uses the config it is given for the learning rate, weight decay and betas
      (the schedule is computed from it at every step); with an unchanged config, continuing is
      exact, bit for bit.
    - `history.final_val_loss` is the whole-split val loss of the weights the model holds (its
      first FINAL_VAL_MAX_CHARS characters on a big text; `history.final_val_chars` says how
      many), or None when it was not measured (an interrupted or failed run), never an earlier
      run's.
    - Everything that can be checked is checked before the first step: the data (1-D, any
      integer dtype, kept as it is: a uint8 text is widened a batch at a time, never whole;
      floating-point ids are refused, never truncated; ids inside the vocabulary), the
      tokenizer's vocabulary against the model, a writable `checkpoint_path`.
      An error that still ends a run carries its History as `error.history`.
    - A run that ends in NonFiniteLossError restores the best evaluation's weights and, with a
      `checkpoint_path`, writes them there (weights and History, no training state).
    """
    # 1. Check the arguments.
    module = _check_arguments(model, config, history, tokenizer, checkpoint_path, checkpoint_every,
                              resume_from, on_evaluation)
    device = torch.device(device) if device is not None else next(module.parameters()).device
    module.to(device)
    train_tokens = _as_token_tensor("train_data", train_data, module, device)
    val_tokens = _as_token_tensor("val_data", val_data, module, device)
    if checkpoint_path is not None and is_main_process():  # rank 0 alone writes it
        _check_checkpoint_path(Path(checkpoint_path))

    # 2. Build or restore the run's state.
    if resume_from is not None:
        history, state, tokenizer = _read_resume_checkpoint(Path(resume_from), module, tokenizer, config)
    else:
        history, state = _state_to_continue(module, history, config, tokenizer)
    state.vocabulary = tokenizer.chars if tokenizer is not None else state.vocabulary
    step = TrainStep(module, config, device, forward_module=data_parallel(module, device))
    batches = torch.Generator().manual_seed(rank_seed(config.seed))  # each rank its own batches
    _restore(state, module, step, batches, device, config)
    history.interrupted = history.stopped_early = False
    history.final_val_loss = None  # an earlier run's number: these weights will move
    history.final_val_chars = None
    evaluator = Evaluator(train_tokens, val_tokens, module.config.block_size, config.eval_iters,
                          config.batch_size, config.seed)
    run = _Run(module, config, device, history, state, step, batches, evaluator, train_tokens,
               val_tokens, tokenizer, None if checkpoint_path is None else Path(checkpoint_path),
               checkpoint_every, on_evaluation)

    # 3. The loop: evaluate when due, stop when done or asked to, else take one step.
    # In a process group every phase ends where the ranks agree to go on (see distributed.py).
    interrupted = False
    try:
        with ThreadChoice(config.num_threads) as threads, tf32_matmuls(device), _InterruptLatch() as latch, \
                switched_mode(module, True), \
                contextlib.closing(Agreement(lambda: latch.requested, run.peer_failed)) as agreement:
            run.agreement = agreement
            with _progress_bar(run.iteration, config.max_iters) as progress:
                try:
                    while True:
                        if agreement.interrupted():
                            interrupted = True
                            break
                        if run.evaluation_due():
                            agreement.run(run.evaluate)
                        if run.iteration >= config.max_iters or run.out_of_patience():
                            break
                        agreement.run(run.train_one_step)
                        threads.after_step()
                        progress.update(1)
                except NonFiniteLossError:
                    raise
                except BaseException:
                    run.record_progress()  # consistent: history= continues from the last whole step
                    raise
            # 4. Finish: best weights, whole-split loss, summary, checkpoint.
            agreement.run(lambda: run.finish(interrupted))
            if interrupted and agreement.world_size > 1:  # Ctrl-C on any rank stops every rank
                raise interrupted_error(agreement.interrupted_ranks, history, checkpoint_path)
    except BaseException as error:
        _keep_history_reachable(error, history)  # error.history: what the run measured
        raise
    return history


def _notebook_bar_class() -> type | None:
    """tqdm's Jupyter widget class, if `tqdm.auto` chose it (a notebook kernel with ipywidgets)."""
    try:
        from tqdm.notebook import tqdm as notebook_tqdm
    except ImportError:
        return None
    return notebook_tqdm if issubclass(tqdm, notebook_tqdm) else None


@contextlib.contextmanager
def _progress_bar(start: int, total: int) -> Iterator[Any]:
    """A text bar in a terminal, a widget in Jupyter; none on the other processes of a DDP run.

    A notebook stores a widget's text/plain as it was when first displayed ("0/5000"), which
    is all a reader sees on the web or in an untrusted notebook. So the widget is shown under a
    display id and displayed again once closed: the stored fallback is the finished bar.
    """
    options = dict(total=total, initial=min(start, total), desc="training", unit="step",
                   dynamic_ncols=True, disable=not is_main_process())
    handle = None
    if _notebook_bar_class() is not None:
        from IPython.display import display

        progress = tqdm(**options, display=False)
        if not progress.disable:  # a disabled widget bar builds no widget
            handle = display(progress.container, display_id=True)
    else:
        progress = tqdm(**options)
    try:
        yield progress
    finally:
        progress.close()
        if handle is not None:
            handle.update(progress.container)
