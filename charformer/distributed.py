"""More than one process: which rank this is, DDP, per-rank seeds, and stopping every rank together.

`train()` runs distributed whenever it is called inside an initialised torch.distributed process
group (torchrun, then `init_process_group`); `launched` is how the CLI joins one. The one rule
that keeps a distributed run from hanging: every rank makes the same collective calls in the same
order. So a rank that fails, or is asked to stop, does not just leave: at the next agreement point
every rank learns it (`Agreement`) and every rank stops there, with an error that names the rank.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .errors import RankFailedError

# Rank r > 0 draws its batches (and dropout) from seed + r * RANK_SEED_OFFSET: far from the
# evaluation stream's offset (evaluate.EVAL_SEED_OFFSET), and rank 0 keeps the run's own seed.
RANK_SEED_OFFSET = 2_000_003

# The torchrun variables that say this process is one rank of a launched group.
LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def is_distributed() -> bool:
    """True inside an initialised torch.distributed process group."""
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
    return all(name in os.environ for name in LAUNCH_VARIABLES)


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


def data_parallel(module: nn.Module, device: torch.device) -> nn.Module:
    """`module` wrapped in DistributedDataParallel inside a process group (gradients averaged
    over the ranks in backward), else `module` itself. The caller keeps the plain module."""
    if not is_distributed():
        return module
    if dist.get_backend() == "nccl" and device.type != "cuda":
        raise ValueError(f"the process group uses NCCL, which needs CUDA; the model is on {device}")
    device_ids = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else None
    # The model's buffers (causal mask, sinusoidal table) are constants: nothing to broadcast.
    return DistributedDataParallel(module, device_ids=device_ids, broadcast_buffers=False)


class Agreement:
    """Where the ranks agree, after each phase of the run, whether to go on.

    `run(phase)` runs one phase (a step, an evaluation, the end) and then all-reduces a small
    flag tensor: which ranks failed and which were asked to stop (Ctrl-C). Any failure ends every
    rank: the failed one raises its own error, the others `on_peer_failure(rank, kind, message)`
    (which raises). Flags travel on a gloo group, so on GPUs they never wait on the device.
    Outside a process group every call is free: the phase runs, the latch is read directly.
    """

    def __init__(
        self,
        interrupt_requested: Callable[[], bool],
        on_peer_failure: Callable[[int, str, str], NoReturn],
    ) -> None:
        self.interrupt_requested = interrupt_requested
        self.on_peer_failure = on_peer_failure
        self.world_size = world_size()
        self.interrupted_ranks: list[int] = []
        self.group: Any = None
        self._own_group = False
        if self.world_size > 1 and dist.get_backend() != "gloo":
            self.group, self._own_group = dist.new_group(backend="gloo"), True

    def close(self) -> None:
        if self._own_group:
            dist.destroy_process_group(self.group)
            self._own_group = False

    def interrupted(self) -> bool:
        """Whether to stop here: this process's latch alone, or what the ranks last agreed."""
        if self.world_size == 1:
            return self.interrupt_requested()
        return bool(self.interrupted_ranks)

    def run(self, phase: Callable[[], Any]) -> None:
        if self.world_size == 1:
            phase()
            return
        try:
            phase()
        except BaseException as error:
            self._agree(error)
            raise
        self._agree(None)

    def any_rank(self, flag: bool) -> bool:
        """True on every rank when `flag` is True on any (a collective: every rank must call it)."""
        if self.world_size == 1:
            return flag
        value = torch.tensor([int(flag)], dtype=torch.int32)
        dist.all_reduce(value, op=dist.ReduceOp.MAX, group=self.group)
        return bool(value.item())

    def _agree(self, error: BaseException | None) -> None:
        flags = torch.zeros(2, self.world_size, dtype=torch.int32)  # (failed, interrupted) x ranks
        flags[0, rank()] = error is not None
        flags[1, rank()] = self.interrupt_requested()
        dist.all_reduce(flags, group=self.group)
        self.interrupted_ranks = flags[1].nonzero().flatten().tolist()
        failed = flags[0].nonzero().flatten().tolist()
        if not failed:
            return
        mine = None if error is None else (type(error).__name__, str(error))
        reports: list[Any] = [None] * self.world_size
        dist.all_gather_object(reports, mine, group=self.group)
        if error is None:
            first = failed[0]
            kind, message = reports[first]
            self.on_peer_failure(first, kind, message)

    def gather(self, value: Any) -> list[Any]:
        """Every rank's `value`, in rank order (a collective: every rank must call it)."""
        if self.world_size == 1:
            return [value]
        values: list[Any] = [None] * self.world_size
        dist.all_gather_object(values, value, group=self.group)
        return values


def peer_failed(failed_rank: int, kind: str, message: str, iteration: int) -> NoReturn:
    raise RankFailedError(
        f"rank {failed_rank} failed at iteration {iteration} ({kind}: {message}); every rank stopped",
        rank=failed_rank,
    )


def interrupted_error(ranks: list[int], history: Any, checkpoint: Any) -> KeyboardInterrupt:
    """What every rank raises when Ctrl-C reached any of them: they all stopped at one step."""
    continue_with = f"; continue with resume_from={str(checkpoint)!r}" if checkpoint else ""
    named = ("rank " if len(ranks) == 1 else "ranks ") + ", ".join(str(r) for r in ranks)
    return KeyboardInterrupt(
        f"interrupted on {named} after step {history.iteration}: every rank stopped "
        f"there{continue_with}"
    )


def streams_for_rank(
    training_state: dict[str, Any], seed: int, iteration: int
) -> dict[str, Any] | None:
    """This rank's random streams from a checkpoint: its own if the writing run had this rank,
    else fresh ones seeded from the seed, the step and the rank (None: rank 0's, as saved)."""
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
            UserWarning, stacklevel=3,
        )
