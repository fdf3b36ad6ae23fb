"""Run: the books one call of train() keeps around its loop: the checks before the first step,
the evaluations, the checkpoints, and the ending (finished, interrupted or failed)."""

from __future__ import annotations

import contextlib
import math
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import torch
from tqdm.auto import tqdm

from .checkpoint import check_checkpoint_path, read_checkpoint, save_checkpoint
from .checks import as_token_tensor
from .config import TrainConfig
from .data import CharTokenizer, too_short_message
from .distributed import Ranks, is_main_process, rank_seed, world_size
from .errors import CheckpointError, NonFiniteLossError, RankFailedError
from .evaluate import Evaluator, whole_split_loss
from .history import History
from .model import CharTransformer
from .state import TRAINED_STEPS, state_to_start_from
from .step import TrainStep

# The end-of-run loss over the val split measures at most its first this many characters.
FINAL_VAL_MAX_CHARS = 1_000_000


def token_ids(name: str, data: Any, module: CharTransformer, device: torch.device) -> torch.Tensor:
    """The token ids on `device`, checked; narrow dtypes stay narrow (widened a batch at a time)."""
    tensor = as_token_tensor(name, data)
    if tensor.dtype in (torch.uint16, torch.uint32, torch.uint64):  # few ops take these: int64
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


class Run:
    """The objects one call of train() shares between its named steps."""

    def __init__(
        self, module: CharTransformer, config: TrainConfig, device: torch.device, ranks: Ranks,
        train_data: Any, val_data: Any, *, history: History | None, tokenizer: CharTokenizer | None,
        resume_from: Any, checkpoint_path: Any, checkpoint_every: int | None,
        on_evaluation: Callable[[History], Any] | None,
    ) -> None:
        self.module, self.config, self.device, self.ranks = module, config, device, ranks
        ranks.on_peer_failure = self.peer_failed
        self.train_tokens = token_ids("train_data", train_data, module, device)
        self.val_tokens = token_ids("val_data", val_data, module, device)
        self.checkpoint_path = None if checkpoint_path is None else Path(checkpoint_path)
        if self.checkpoint_path is not None:  # every rank checks it; rank 0, which writes, probes
            check_checkpoint_path(self.checkpoint_path, probe=is_main_process())
        self.checkpoint_every, self.on_evaluation = checkpoint_every, on_evaluation
        self.history, self.state, self.tokenizer = state_to_start_from(
            module, config, history, tokenizer, resume_from
        )
        self.history.interrupted = self.history.stopped_early = False
        self.history.final_val_loss = None  # until finish() measures these weights
        self.history.final_val_chars = None
        self.evaluator = Evaluator(self.train_tokens, self.val_tokens, module.config.block_size,
                                   config.eval_iters, config.batch_size, config.seed)
        self.batches = torch.Generator().manual_seed(rank_seed(config.seed))  # each rank its own
        self.evaluations = 0
        self.seconds_before, self.started = self.state.train_seconds, time.perf_counter()

    @property
    def iteration(self) -> int:
        return self.state.iteration

    def restore(self, step: TrainStep) -> None:
        """Model, optimizer and random streams where the run stopped; every rank from rank 0's weights."""
        state = self.state
        state.module_ref = weakref.ref(self.module)
        state.take_back_last(self.module)
        if state.optimizer is not None:
            step.load_optimizer_state(state.optimizer)
        if state.rng is not None:
            state.restore_rng(self.batches, self.device)
        elif state.iteration:  # a fresh stream for the new steps
            self.batches.manual_seed(rank_seed(self.config.seed + state.iteration))
        self.ranks.share_weights(self.module)

    def elapsed(self) -> float:
        return self.seconds_before + time.perf_counter() - self.started

    def record_progress(self, step: TrainStep) -> None:
        """Bring the state (optimizer, random streams, seconds) and the History up to now."""
        self.state.train_seconds = self.elapsed()
        self.state.optimizer = step.optimizer.state_dict()
        self.state.capture_rng(self.batches, self.device)
        self.history.iteration = self.state.iteration
        self.history.train_seconds = self.state.train_seconds
        self.history.run_state = self.state
        TRAINED_STEPS[self.module] = self.state.iteration

    @contextlib.contextmanager
    def recording(self, step: TrainStep) -> Iterator[None]:
        """An error that ends the run leaves the state at the last whole step and carries the History."""
        try:
            yield
        except NonFiniteLossError:
            raise
        except BaseException as error:
            self.record_progress(step)  # consistent: history= continues from the last whole step
            if getattr(error, "history", None) is None:
                with contextlib.suppress(AttributeError, TypeError):
                    error.history = self.history  # type: ignore[attr-defined]
            raise

    def evaluation_due(self) -> bool:
        at_interval = self.iteration % self.config.eval_interval == 0
        at_end = self.iteration >= self.config.max_iters
        done_already = bool(self.history.iters) and self.history.iters[-1] == self.iteration
        return (at_interval or at_end) and not done_already

    def done(self) -> bool:
        """max_iters reached, or `patience` evaluations in a row without a new best."""
        patience = self.config.patience
        return self.iteration >= self.config.max_iters or (
            patience is not None and self.history.evaluations_since_best() >= patience
        )

    def step_done(self, step: TrainStep) -> None:
        if self.device.type == "cpu" and step.saw_nonfinite():  # elsewhere: at each evaluation
            self.fail_nonfinite("training")
        self.state.iteration += 1

    def evaluate(self, step: TrainStep) -> None:
        """Estimate, record and print both losses; checkpoint when due; `on_evaluation` last, so that
        what it sees and any error it raises is whole."""
        if step.saw_nonfinite():
            self.fail_nonfinite("training")
        estimate = self.evaluator(self.module, step.autocast)
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
            tqdm.write(f"step {self.iteration}: train loss {estimate.train_loss:.4f}, "
                       f"val loss {estimate.val_loss:.4f}")
        self.record_progress(step)
        self.evaluations += 1
        if self.checkpoint_every is not None and self.evaluations % self.checkpoint_every == 0:
            self.write_checkpoint()
        if self.on_evaluation is not None and is_main_process():
            self.on_evaluation(history)

    def write_checkpoint(self) -> None:
        """Every rank calls it (their random streams are gathered); rank 0 writes."""
        assert self.checkpoint_path is not None and self.tokenizer is not None
        training_state = {**self.state.to_checkpoint(), "world_size": world_size()}
        rank_rngs = self.ranks.gather(self.state.rng)
        if len(rank_rngs) > 1:
            training_state["rank_rngs"] = rank_rngs
        if is_main_process():
            save_checkpoint(self.checkpoint_path, self.module, self.tokenizer, train_config=self.config,
                            history=self.history, training_state=training_state)

    def peer_failed(self, failed_rank: int, kind: str, message: str) -> NoReturn:
        """Another rank failed: stop here too, as NonFiniteLossError if that was its error."""
        if kind == NonFiniteLossError.__name__:
            self.fail_nonfinite("training", f" on rank {failed_rank}")
        error = RankFailedError(f"rank {failed_rank} failed at iteration {self.iteration} "
                                f"({kind}: {message}); every rank stopped", rank=failed_rank)
        error.history = self.history  # type: ignore[attr-defined]
        raise error

    def fail_nonfinite(self, what: str, where: str = "") -> NoReturn:
        """Put the best finite weights back and stop with NonFiniteLossError; a resumable checkpoint
        at checkpoint_path is left as it is (the way back), else the best weights are written there."""
        state, history = self.state, self.history
        if state.best_weights is not None:
            self.module.load_state_dict(state.best_weights)
        history.iteration, history.train_seconds = self.iteration, self.elapsed()
        history.run_state = None  # the optimizer has seen the non-finite step
        restored = (f"; the weights of the best evaluation (step {state.best_iter}) were restored"
                    if state.best_weights is not None else "")
        path = self.checkpoint_path
        if path is not None and is_main_process():
            try:  # a missing or unreadable file holds no resumable run
                saved = read_checkpoint(path).get("training_state")
            except CheckpointError:
                saved = None
            if saved is not None:
                restored += (f"; {path} still holds the resumable run at step {int(saved['iteration'])}: "
                             "resume from it (resume_from=) with a lower learning_rate")
            elif restored:
                try:
                    save_checkpoint(path, self.module, self.tokenizer, train_config=self.config,
                                    history=history, iteration=state.best_iter)
                    restored += f" and written to {path}"
                except CheckpointError as error:
                    restored += f"; writing them failed: {error}"
        raise NonFiniteLossError(
            f"the {what} loss is not finite{where} at iteration {self.iteration} "
            f"(learning rate {self.config.learning_rate:g}){restored}",
            iteration=self.iteration, history=history,
        )

    def finish(self, interrupted: bool, step: TrainStep) -> None:
        """Keep the best weights (if asked), measure the whole val split, report, checkpoint."""
        history, state = self.history, self.state
        history.interrupted = interrupted
        history.stopped_early = not interrupted and self.iteration < self.config.max_iters
        self.record_progress(step)
        if interrupted:
            if is_main_process():
                saved = f" (or resume_from={str(self.checkpoint_path)!r})" if self.checkpoint_path else ""
                print(f"interrupted after step {self.iteration} ({history.train_seconds:.1f} s); "
                      f"call train(..., history=history){saved} to continue")
        else:
            kept_best = self.config.keep_best and state.hold_best(self.module)
            history.final_val_chars = min(len(self.val_tokens), FINAL_VAL_MAX_CHARS)
            history.final_val_loss = whole_split_loss(self.module, self.val_tokens,
                                                      max_chars=FINAL_VAL_MAX_CHARS)
            if is_main_process():
                print(summary(history, self.config, kept_best, len(self.val_tokens)))
        if self.checkpoint_path is not None:
            self.write_checkpoint()


def summary(history: History, config: TrainConfig, kept_best: bool, val_chars: int | None = None) -> str:
    """The line a finished run prints: where it ended, its best evaluation, the val split."""
    lines = [
        f"finished {history.iteration} steps in {history.train_seconds:.1f} s: "
        f"train loss {history.train_loss[-1]:.4f}, val loss {history.val_loss[-1]:.4f}"
    ]
    if history.stopped_early:
        lines.append(
            f"stopped early: no new best val in {config.patience} evaluations (patience={config.patience})"
        )
    which = ("(the last evaluation)" if history.best_iter == history.iteration
             else f"(kept); the last evaluation was {history.val_loss[-1]:.4f}" if kept_best
             else "(its weights are not in memory: kept the last)" if config.keep_best
             else "(not kept: keep_best=False)")
    lines.append(f"best val {history.best_val_loss:.4f} at step {history.best_iter} {which}")
    best_stderr = history.val_stderr_at(history.best_iter)  # None: best_iter not evaluated here
    if history.best_iter != history.iteration and best_stderr is not None \
            and history.val_loss[-1] - history.best_val_loss < best_stderr:  # type: ignore[operator]
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


@contextlib.contextmanager
def progress_bar(start: int, total: int) -> Iterator[Any]:
    """A text bar in a terminal, a widget in Jupyter (shown again once closed, so that the notebook
    stores the finished bar, not "0/5000", as its text); none on ranks other than 0."""
    options = dict(total=total, initial=min(start, total), desc="training", unit="step",
                   dynamic_ncols=True, disable=not is_main_process())
    from tqdm.notebook import tqdm as notebook_tqdm  # tqdm.auto's choice in a kernel with ipywidgets

    widget = issubclass(tqdm, notebook_tqdm)
    progress = tqdm(**options, **({"display": False} if widget else {}))
    handle = None
    if widget and not progress.disable:  # a disabled widget bar builds no widget
        from IPython.display import display

        handle = display(progress.container, display_id=True)
    try:
        yield progress
    finally:
        progress.close()
        if handle is not None:
            handle.update(progress.container)
