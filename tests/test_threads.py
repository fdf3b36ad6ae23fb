"""The thread choice under load (issue 26): its decisions on step times and waits measured on the
shared 2-core machine, the cores each process counts, and the under-load benchmark's smoke run.

Measured there (2026-12-04, the default model, batch 16, medians of 25 steps, with the other
helpers' jobs running; waiting: seconds a second this process's threads waited for a core):
beside one python busy loop, 2 threads 274.7 ms waiting 1.66, 1 thread 37.8 ms waiting 0.67;
earlier, with one job beside it, 2 threads 9.5 ms and 1 thread 10.9 ms.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

import charformer as cf
from benchmarks.under_load import busy_processes
from charformer.cores import free_cores, machine_cores, others_running, using_threads
from charformer.threads import ThreadChoice, available_cores

from .conftest import REPO

# threads: (median seconds per step, waiting, cores the other processes leave free)
BUSY = {2: (0.2747, 1.66, 1), 1: (0.0378, 0.67, 1)}
CALM = {2: (0.0095, 0.0, 2), 1: (0.0109, 0.0, 2)}  # nothing else runs: no thread waits for a core


def windows(choice: ThreadChoice, measured: dict[int, tuple[float, float]], count: int) -> list[int]:
    """The counts `choice` trains at over `count` windows, each measured as given for its count."""
    used = []
    for _ in range(count):
        choice.threads = choice.record(*measured[choice.threads])
        used.append(choice.threads)
    return used


def two_core_choice() -> ThreadChoice:
    choice = ThreadChoice(cores=2)
    choice.counts, choice.fixed, choice.threads = [1, 2], None, 2  # as on 2 idle cores
    return choice


def test_a_calm_machine_keeps_all_cores_so_the_digits_stay() -> None:
    assert windows(two_core_choice(), CALM, count=200) == [2] * 200


def test_one_thread_while_another_process_takes_a_core_then_all_cores_again(capsys) -> None:
    choice = two_core_choice()
    assert windows(choice, CALM, count=4) == [2, 2, 2, 2]
    # A busy process starts: the next window waits, a trial at 1 thread wins.
    assert windows(choice, BUSY, count=2) == [1, 1]
    printed = capsys.readouterr().out
    assert "waited 1.66 s a second for a core" in printed and "training with 1" in printed
    # 1 thread still waits for a core now and then, but no core is free: it never tries 2 (a
    # 2-thread trial beside the busy process would cost TRIAL slow steps)...
    assert windows(choice, BUSY, count=40) == [1] * 40
    assert capsys.readouterr().out == ""  # nothing changed, nothing said
    # ...and goes back to 2 at the first window once it is gone (its last trial was more than
    # 4 x 274.7 / 37.8 windows ago).
    assert windows(choice, CALM, count=40) == [2] * 40
    assert "cores are free again" in capsys.readouterr().out


def test_threads_waiting_in_the_first_window_already_bring_a_trial(capsys) -> None:
    # Beside two busy processes a 2-thread step took 1.7 s: the first window is TRIAL steps (or
    # SECONDS), so a run that starts at all cores, and then waits for them, tries 1 thread at once.
    assert windows(two_core_choice(), BUSY, count=3) == [1, 1, 1]
    assert "at step 0, its threads waited 1.66 s" in capsys.readouterr().out


@pytest.fixture
def two_busy_processes(monkeypatch):
    """Two CPU-bound processes beside this one for the test, and this process free to use every core."""
    if machine_cores() < 2 or not os.path.exists("/proc/stat"):
        pytest.skip("needs Linux and at least 2 cores")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    with busy_processes(2, "python", limit=60), using_threads(machine_cores()):
        yield


def test_other_processes_running_are_counted_and_their_cores_left_to_them(two_busy_processes) -> None:
    assert others_running() >= 2
    assert free_cores() <= max(1, machine_cores() - 2)


def test_a_run_started_beside_busy_processes_starts_at_the_free_cores(two_busy_processes, capsys) -> None:
    choice = ThreadChoice()
    assert choice.threads <= max(1, machine_cores() - 2) < choice.counts[-1] == machine_cores()
    assert "other processes are running: training with" in capsys.readouterr().out
    assert ThreadChoice(1).threads == 1 and capsys.readouterr().out == ""  # set, not chosen: nothing said
    with choice:
        assert torch.get_num_threads() == choice.threads
    assert torch.get_num_threads() == machine_cores()


def test_sampling_and_evaluation_use_the_free_cores_and_put_the_count_back(two_busy_processes, splits) -> None:
    torch.manual_seed(0)
    model = cf.CharTransformer(cf.ModelConfig(vocab_size=65, n_layer=1, n_embd=32))
    seen: list[int] = []
    model.head.register_forward_hook(lambda *_: seen.append(torch.get_num_threads()))
    idx = torch.zeros((1, 1), dtype=torch.long)
    model.generate(idx, 5)
    tokens = model.stream(idx, 5)
    for _ in tokens:
        assert torch.get_num_threads() == machine_cores()  # between tokens: the caller's count
    cf.whole_split_loss(model, splits[1][:2000])
    assert len(seen) >= 11 and max(seen) <= max(1, machine_cores() - 2)
    assert torch.get_num_threads() == machine_cores()


def test_choose_num_threads_does_not_time_the_other_processes(two_busy_processes, splits, capsys) -> None:
    config = cf.TrainConfig(batch_size=8)
    model_config = cf.ModelConfig(vocab_size=65, n_layer=1, n_embd=32)
    assert cf.choose_num_threads(model_config, config, splits[0], torch.device("cpu")) is config
    assert "ms" not in capsys.readouterr().out  # train's ThreadChoice says what it does


def test_off_the_cpu_the_count_stays_where_it_is() -> None:
    # There a step's time is its launch time, not its run time: a trial would decide on nothing.
    for device in ("cuda", torch.device("meta")):
        assert ThreadChoice(device=device).fixed == torch.get_num_threads()
    assert ThreadChoice(device="cpu").fixed == (1 if ThreadChoice().counts == [1] else None)


def test_an_explicit_count_never_moves_and_is_restored() -> None:
    before = torch.get_num_threads()
    explicit = 2 if before == 1 else 1
    with ThreadChoice(explicit) as choice:
        for _ in range(5 * ThreadChoice.WINDOW):
            torch.ones(64, 64) @ torch.ones(64, 64)
            choice.after_step()
            assert torch.get_num_threads() == explicit
    assert torch.get_num_threads() == before


def test_each_process_counts_its_share_of_the_cores(monkeypatch) -> None:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert available_cores() == cores
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(cores))  # torchrun, one process per core
    assert available_cores() == 1
    with using_threads(cores):
        assert ThreadChoice().fixed == 1  # one core: nothing to choose, train at 1
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    with using_threads(1):  # a count the process set itself is the most it uses
        assert ThreadChoice().fixed == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert available_cores() == 1


@pytest.mark.skipif(not hasattr(os, "getloadavg"), reason="the benchmark reports the load average")
def test_under_load_benchmark_smoke_run(tmp_path) -> None:
    out = tmp_path / "under_load.json"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.under_load", "--quick", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**{k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}, "TQDM_DISABLE": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(out.read_text())
    rows = results["rows"]
    assert set(rows) == {"default", "default, load came later", "1 thread", f"{results['cores']} threads"}
    for row in rows.values():
        assert set(row) == {"0", "1"} and all(cell["settled_ms"] > 0 for cell in row.values())
    assert "+1 busy" in result.stdout and "load average after" in result.stdout
