"""How many CPU cores this process may use now: its share of the machine, less what others take
(two threads on 2 cores collapse once another process holds one: benchmarks/RESULTS.md)."""

from __future__ import annotations

import contextlib
import glob
import os
import time
from collections.abc import Iterator
from pathlib import Path

import torch

LOOKS = 6


def machine_cores() -> int:
    """The cores this process may run on: its affinity mask where the OS has one."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def available_cores() -> int:
    """This process's share of the cores: torchrun's processes on this machine split them, and
    OMP_NUM_THREADS, where set, is the most it uses."""
    cores = machine_cores()
    return max(1, min(cores // int(os.environ.get("LOCAL_WORLD_SIZE") or 1), int(os.environ.get("OMP_NUM_THREADS") or cores)))


def others_running() -> int:
    """Threads of other processes running or waiting for a core now (Linux; elsewhere 0): the
    fewest of LOOKS looks a millisecond apart, so a passing command is not counted (a quiet 2-core
    machine gave 1 false count in 2,603 five-look windows, 4 in 4,339 three-look ones)."""
    if not os.path.exists("/proc/stat"):  # not Linux: nothing to look at, so no looks to wait between
        return 0
    counts = []
    for look in range(LOOKS):
        time.sleep(0.001 * bool(look))
        with contextlib.suppress(OSError, ValueError, IndexError, StopIteration):
            with open("/proc/stat") as stat:
                runnable = next(int(line.split()[1]) for line in stat if line.startswith("procs_running"))
            ours = sum(Path(path).read_text().rsplit(")", 1)[1].split()[0] == "R"
                       for path in glob.glob("/proc/self/task/*/stat"))
            counts.append(max(0, runnable - ours))
    return min(counts, default=0)


def free_cores() -> int:
    """This process's share of the cores that other processes leave free now (at least 1); the
    other ranks of a torchrun launch on this machine count as using their own shares."""
    cores, share = machine_cores(), available_cores()
    ranks_here = int(os.environ.get("LOCAL_WORLD_SIZE") or 1)
    foreign = max(0, others_running() - (ranks_here - 1) * share)
    return max(1, min(share, (cores - foreign) // ranks_here))


def seconds_waiting() -> float:
    """Seconds this process's threads have waited, runnable, for a core (Linux's schedstat; else 0)."""
    with contextlib.suppress(OSError, ValueError, IndexError):  # a thread may end while it is read
        return sum(int(Path(path).read_text().split()[1]) for path in glob.glob("/proc/self/task/*/schedstat")) / 1e9
    return 0.0


def threads_now(device: torch.device) -> int:
    """The thread count for work starting now: torch's, lowered on the CPU to the free cores."""
    threads = torch.get_num_threads()
    return min(threads, free_cores()) if device.type == "cpu" and threads > 1 else threads


@contextlib.contextmanager
def using_threads(threads: int) -> Iterator[None]:
    """torch's intra-op thread count set to `threads` for the block, then put back."""
    previous = torch.get_num_threads()
    if threads != previous:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if threads != previous:
            torch.set_num_threads(previous)
