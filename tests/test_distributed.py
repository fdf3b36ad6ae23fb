"""More than one process: real torchrun launches of 2 gloo ranks on the CPU, tiny models.

Each launch runs tests/distributed_worker.py (or the CLI) under `python -m torch.distributed.run`
with one thread per rank; every subprocess is bounded by a timeout, so a hang fails the test
instead of stalling the suite.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist

import charformer as cf
from charformer.distributed import RANK_SEED_OFFSET, rank_seed

from .distributed_worker import tiny_run

REPO = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "distributed_worker.py"
LAUNCH_TIMEOUT = 180  # seconds; a run that hangs on a collective would sit at gloo's 30 minutes

pytestmark = pytest.mark.skipif(not dist.is_gloo_available(), reason="torch without gloo")


def torchrun(*args: str | Path, nproc: int = 2, module: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={nproc}", *(["-m"] if module else []), *map(str, args)]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=LAUNCH_TIMEOUT)


def report(out: Path, name: str, rank: int) -> dict[str, Any]:
    return json.loads((out / f"{name}.rank{rank}.json").read_text())


def weights(out: Path, name: str, rank: int) -> dict[str, torch.Tensor]:
    return torch.load(out / f"{name}.rank{rank}.pt", weights_only=True)


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """One launch of 2 ranks (see distributed_worker.runs), given a 10-step one-process checkpoint."""
    out = tmp_path_factory.mktemp("two_ranks")
    model, config, tokenizer, train_data, val_data = tiny_run(10)
    cf.train(model, train_data, val_data, config, tokenizer=tokenizer, checkpoint_path=out / "one.pt")
    result = torchrun(WORKER, out, "--one-process-checkpoint", out / "one.pt")
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


@pytest.fixture(scope="module")
def failures(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """One launch of 2 ranks that injects each failure in turn (see distributed_worker.failures)."""
    out = tmp_path_factory.mktemp("failures")
    return out, torchrun(WORKER, out)


def test_the_ranks_end_with_identical_weights_and_histories(two_ranks) -> None:
    out, _ = two_ranks
    for name in ("first", "continued", "resumed", "from_one_process"):
        assert same_weights(weights(out, name, 0), weights(out, name, 1)), name
        first, second = report(out, name, 0), report(out, name, 1)
        for key in ("iters", "val_loss", "train_loss", "best_iter", "final_val_loss"):
            assert first[key] == second[key], (name, key)
    assert report(out, "continued", 0)["iters"] == [0, 10, 20, 30]


def test_two_ranks_saw_different_batches_than_one_process(two_ranks) -> None:
    """Same seed, same model: one process draws only rank 0's batches, so it ends elsewhere."""
    out, _ = two_ranks
    model, config, tokenizer, train_data, val_data = tiny_run(20)
    history = cf.train(model, train_data, val_data, config)
    assert not same_weights(model.state_dict(), weights(out, "first", 0))
    assert history.val_loss[0] == report(out, "first", 0)["val_loss"][0]  # the same start


def test_only_rank_0_reports(two_ranks) -> None:
    printed = two_ranks[1].stdout
    assert printed.count("step 10: train loss") == 1 and printed.count("step 30: train loss") == 2
    assert printed.count("finished 20 steps in") == 2 and printed.count("finished 30 steps in") == 2


def test_a_one_process_group_keeps_the_single_process_numbers() -> None:
    """Rank 0 of a 1-process group trains exactly as without a group."""
    model, config, tokenizer, train_data, val_data = tiny_run(12)
    alone = cf.train(model, train_data, val_data, config)
    grouped_model = tiny_run(12)[0]
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        grouped = cf.train(grouped_model, train_data, val_data, config)
    finally:
        dist.destroy_process_group()
    assert grouped.val_loss == alone.val_loss
    assert same_weights(grouped_model.state_dict(), model.state_dict())
    assert type(grouped_model) is cf.CharTransformer  # the caller's module stays unwrapped


def test_rank_seeds_keep_rank_0_on_the_run_seed() -> None:
    assert rank_seed(7, 0) == 7 and rank_seed(7, 1) == 7 + RANK_SEED_OFFSET


def test_a_two_process_checkpoint_resumes_in_one_process(two_ranks) -> None:
    out, _ = two_ranks
    payload = torch.load(out / "run.pt", weights_only=True)
    assert payload["training_state"]["world_size"] == 2
    assert len(payload["training_state"]["rank_rngs"]) == 2
    model, config, tokenizer, train_data, val_data = tiny_run(30)
    with pytest.warns(UserWarning, match=r"written by 2 process\(es\) and continues in 1.*8 x 2 = 16"):
        history = cf.train(model, train_data, val_data, config, resume_from=out / "run.pt")
    assert history.iteration == 30 and history.iters == [0, 10, 20, 30]


def test_a_two_process_checkpoint_resumes_exactly_in_two(two_ranks) -> None:
    """Every rank's streams ride in the checkpoint: resuming equals continuing in memory."""
    out, _ = two_ranks
    for rank in (0, 1):
        assert same_weights(weights(out, "resumed", rank), weights(out, "continued", rank))


def test_a_one_process_checkpoint_continues_in_two_with_a_warning(two_ranks) -> None:
    out, result = two_ranks
    assert result.stderr.count("written by 1 process(es) and continues in 2") == 2  # each rank
    assert "written by 2" not in result.stderr  # the same world size continues silently
    assert report(out, "from_one_process", 0)["iteration"] == 20


@pytest.mark.parametrize(
    ("failure", "failing_rank", "own_error", "others_error", "words"),
    [
        ("on_evaluation", 0, "RuntimeError", "RankFailedError", "on_evaluation failed on purpose"),
        ("checkpoint", 0, "CheckpointError", "RankFailedError", "could not write checkpoint"),
        ("nonfinite", 1, "NonFiniteLossError", "NonFiniteLossError", "not finite"),
        ("forward", 1, "RuntimeError", "RankFailedError", "forward failed on rank 1"),
        ("backward", 1, "RuntimeError", "RankFailedError", "backward failed on rank 1"),
        ("evaluation", 1, "RuntimeError", "RankFailedError", "evaluation failed on rank 1"),
        ("preflight", 0, "CheckpointError", "CheckpointError", "cannot be written"),
        ("sigint", 1, "KeyboardInterrupt", "KeyboardInterrupt", "interrupted on rank 1"),
    ],
)
def test_a_failure_on_one_rank_stops_every_rank(
    failures, failure: str, failing_rank: int, own_error: str, others_error: str, words: str
) -> None:
    """Each rank ends with an error and stays in step for the next run: no rank is killed by
    torchrun or left waiting on a collective."""
    out, result = failures
    errors = {rank: report(out, failure, rank) for rank in (0, 1)}
    other = 1 - failing_rank
    assert errors[failing_rank]["type"] == own_error, errors
    assert errors[other]["type"] == others_error, errors
    assert words in errors[failing_rank]["message"]
    if others_error == "RankFailedError":
        assert f"rank {failing_rank} failed at iteration" in errors[other]["message"]
        assert words in errors[other]["message"]
    if failure == "nonfinite":
        assert "on rank 1" in errors[other]["message"]
    if failure == "preflight":  # a refusal before the first step reads the same on every rank
        assert errors[other]["message"] == errors[failing_rank]["message"]


def test_the_launch_ends_non_zero_with_the_error(failures) -> None:
    _, result = failures
    assert result.returncode != 0
    assert "interrupted on rank 1 after step" in result.stderr


def test_the_cli_trains_one_model_under_torchrun(tmp_path: Path) -> None:
    text = tmp_path / "slice.txt"
    text.write_text((REPO / "data" / "input.txt").read_text(encoding="utf-8")[:20_000], encoding="utf-8")
    result = torchrun("charformer", "train", "--text", text, "--max-iters", "4", "--eval-interval", "2",
                      "--eval-iters", "1", "--sample-chars", "20", "--save", tmp_path / "cli.pt",
                      module=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("parameters") == 1 and result.stdout.count("finished 4 steps") == 1
    checkpoint = cf.load_checkpoint(tmp_path / "cli.pt")
    assert checkpoint.iteration == 4 and checkpoint.training_state["world_size"] == 2


def test_ctrl_c_on_a_torchrun_launch_stops_every_rank_after_the_checkpoint(tmp_path: Path) -> None:
    """Ctrl-C in a terminal reaches the whole process group; torchrun passes SIGINT on too."""
    text = tmp_path / "slice.txt"
    text.write_text((REPO / "data" / "input.txt").read_text(encoding="utf-8")[:20_000], encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1",
           "TQDM_DISABLE": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "charformer", "train", "--text", str(text), "--max-iters", "1000000",
               "--eval-interval", "20", "--eval-iters", "1", "--save", str(tmp_path / "cli.pt")]
    launch = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert launch.stdout is not None
        for line in launch.stdout:  # wait until the steps run
            if line.startswith("step 20:"):
                break
        os.killpg(launch.pid, signal.SIGINT)
        _, stderr = launch.communicate(timeout=LAUNCH_TIMEOUT)
    finally:
        if launch.poll() is None:
            os.killpg(launch.pid, signal.SIGKILL)
    assert launch.returncode != 0
    stops = re.findall(r"rank (\d): interrupted: interrupted on ranks? [\d, ]+ after step (\d+)", stderr)
    assert sorted(rank for rank, _ in stops) == ["0", "1"], stderr[-3000:]
    assert len({step for _, step in stops}) == 1  # both at the same step
    checkpoint = cf.load_checkpoint(tmp_path / "cli.pt")
    assert checkpoint.iteration >= 20 and checkpoint.training_state["world_size"] == 2
