"""More than one process: which rank this is, per-rank seeds, and every rank stopping together.

Every rank must make the same collective calls in the same order, or the run hangs. So the only
collectives of a run are `Ranks`' own, each begins with an agreement (which ranks failed, which
were asked to stop), and a failing rank makes that agreement on its way out: the others raise
`RankFailedError` naming it within one step.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from .errors import CheckpointError, RankFailedError

# Rank r > 0 draws its batches (and dropout) from seed + r * RANK_SEED_OFFSET: far from the
# evaluation stream's offset (evaluate.EVAL_SEED_OFFSET), and rank 0 keeps the run's own seed.
RANK_SEED_OFFSET = 2_000_003

# Errors that a refusal before the first step raises on every rank, with the same words.
SAME_ON_EVERY_RANK = {error.__name__: error for error in (CheckpointError, ValueError)}


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """Rank 0 (or no process group): the one process that prints, plots and writes checkpoints."""
    return rank() == 0


def rank_seed(seed: int, process_rank: int | None = None) -> int:
    """The seed of a rank's batch and dropout streams; rank 0 keeps `seed` (one process unchanged)."""
    process_rank = rank() if process_rank is None else process_rank
    return seed + process_rank * RANK_SEED_OFFSET


def launched_by_torchrun() -> bool:
    """Whether torchrun's variables say this process is one rank of a launched group."""
    return all(name in os.environ for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))


@contextlib.contextmanager
def launched(device: torch.device) -> Iterator[torch.device]:
    """Join the process group torchrun describes (gloo on CPUs, NCCL on CUDA) for the block, then
    leave it; yields the device this rank trains on. Without torchrun: `device`, no group."""
    if not launched_by_torchrun() or is_distributed():
        yield device
        return
    if device.type not in ("cpu", "cuda"):
        raise ValueError(
            f"torchrun runs charformer on CPUs (gloo) or CUDA GPUs (NCCL), not on {device.type}"
        )
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        dist.init_process_group("gloo")
    try:
        yield device
    finally:
        dist.destroy_process_group()


class Ranks:
    """Every rank of a run agreeing where to go on. Inside the block Ctrl-C sets a flag read between
    steps; the block ends with an agreement, so no rank finishes while another waits."""

    def __init__(self) -> None:
        # One of several processes torchrun started, with no group joining them, would train alone.
        if launched_by_torchrun() and int(os.environ["WORLD_SIZE"]) > 1 and not is_distributed():
            raise RuntimeError(
                f"this process is rank {os.environ['RANK']} of {os.environ['WORLD_SIZE']} started by "
                "torchrun, but no process group joins them: call "
                "torch.distributed.init_process_group('gloo') ('nccl' on CUDA) before train(), or "
                "train inside `with charformer.distributed.launched(device) as device:`"
            )
        self.world_size = world_size()
        self.interrupt_requested = False
        self.interrupted_ranks: list[int] = []
        self.on_peer_failure: Callable[[int, str, str], None] | None = None
        self.started = False  # the first step began: refusals before it read the same everywhere
        self._stopped = False  # a failure was agreed: no collective is made again
        self._previous_handler: Any = None
        self.group: Any = None
        if self.world_size > 1 and dist.get_backend() != "gloo":  # flags never wait on a GPU
            self.group = dist.new_group(backend="gloo")

    def __enter__(self) -> Ranks:
        if threading.current_thread() is threading.main_thread():
            self._previous_handler = signal.signal(signal.SIGINT, self._request_interrupt)
        return self

    def _request_interrupt(self, signum: int, frame: Any) -> None:
        self.interrupt_requested = True

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: Any) -> None:
        try:
            if not self._stopped:
                self.agree(error)
        finally:
            if self._previous_handler is not None:
                signal.signal(signal.SIGINT, self._previous_handler)
            if self.group is not None:
                dist.destroy_process_group(self.group)

    def interrupted(self) -> bool:
        """Whether to stop here: this process's Ctrl-C alone, or what the ranks last agreed."""
        if self.world_size == 1:
            return self.interrupt_requested
        return bool(self.interrupted_ranks)

    def agree(self, error: BaseException | None = None) -> None:
        """Every rank says whether it failed (`error`) or was interrupted; any failure stops all:
        the others raise here (the failed rank goes on to raise its own `error`)."""
        if self.world_size == 1 or self._stopped:
            return
        flags = torch.zeros(2, self.world_size, dtype=torch.int32)  # (failed, interrupted) x ranks
        flags[0, rank()] = error is not None
        flags[1, rank()] = self.interrupt_requested
        dist.all_reduce(flags, group=self.group)
        self.interrupted_ranks = flags[1].nonzero().flatten().tolist()
        failed = flags[0].nonzero().flatten().tolist()
        if not failed:
            return
        self._stopped = True
        mine = None if error is None else (type(error).__name__, str(error))
        reports: list[Any] = [None] * self.world_size
        dist.all_gather_object(reports, mine, group=self.group)
        if error is not None:
            return
        first = failed[0]
        kind, message = reports[first]
        if not self.started and kind in SAME_ON_EVERY_RANK:
            raise SAME_ON_EVERY_RANK[kind](message)
        if self.on_peer_failure is not None:
            self.on_peer_failure(first, kind, message)
        raise RankFailedError(
            f"rank {first} failed before the first step ({kind}: {message}); every rank stopped",
            rank=first,
        )

    def share_weights(self, module: nn.Module) -> None:
        """Every rank starts from rank 0's weights (as DistributedDataParallel would)."""
        self.agree()
        if self.world_size > 1:
            for value in module.state_dict().values():
                dist.broadcast(value, src=0)
        self.started = True

    def average_gradients(self, module: nn.Module) -> None:
        """After backward, on every rank: agree, then replace each gradient by the ranks' mean."""
        if self.world_size == 1:
            return
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads])  # one all-reduce for the whole model
        self.agree()
        dist.all_reduce(flat)
        flat /= self.world_size
        for grad, mean in zip(grads, flat.split([g.numel() for g in grads])):
            grad.copy_(mean.view_as(grad))

    def gather(self, value: Any) -> list[Any]:
        """Every rank's `value`, in rank order, once the ranks agree to go on."""
        if self.world_size == 1:
            return [value]
        self.agree()
        values: list[Any] = [None] * self.world_size
        dist.all_gather_object(values, value, group=self.group)
        return values

    def raise_if_interrupted(self, iteration: int, checkpoint: Any) -> None:
        """In a process group, Ctrl-C on any rank ends every rank with KeyboardInterrupt."""
        if not self.interrupted_ranks:  # set by agreements, only in a process group
            return
        continue_with = f"; continue with resume_from={str(checkpoint)!r}" if checkpoint else ""
        ranks = self.interrupted_ranks
        named = ("rank " if len(ranks) == 1 else "ranks ") + ", ".join(str(r) for r in ranks)
        raise KeyboardInterrupt(
            f"interrupted on {named} after step {iteration}: every rank stopped there{continue_with}"
        )


def streams_for_rank(
    training_state: dict[str, Any], seed: int, iteration: int
) -> dict[str, Any] | None:
    """This rank's random streams from a checkpoint: its own if saved, else fresh (None: as saved)."""
    process_rank = rank()
    per_rank = training_state.get("rank_rngs")
    if per_rank and process_rank < len(per_rank):
        return per_rank[process_rank]
    if process_rank == 0:
        return None
    fresh = torch.Generator().manual_seed(rank_seed(seed + iteration, process_rank)).get_state()
    return {"batch_rng": fresh, "torch_rng": fresh}


def warn_if_world_size_changed(saved: int, batch_size: int, source: str) -> None:
    now = world_size()
    if saved != now:
        warnings.warn(
            f"{source} was written by {saved} process(es) and continues in {now}: the effective "
            f"batch changes from {batch_size} x {saved} = {batch_size * saved} to "
            f"{batch_size} x {now} = {batch_size * now} sequences per step",
            UserWarning, stacklevel=4,
        )
