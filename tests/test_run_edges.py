"""The edges of a run (issue 22): checkpoint paths that are not regular files, a non-finite loss
after a resumable checkpoint, torchrun's variables without a process group, and resuming from
the command line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import charformer as cf
from charformer.__main__ import main as cli_main

from .conftest import REPO, tiny_model

TINY = dict(batch_size=8, learning_rate=1e-3, eval_interval=5, eval_iters=2, min_lr=0.0)


@pytest.fixture(scope="module")
def small(splits) -> tuple[torch.Tensor, torch.Tensor]:
    train, val = splits
    return train[:20_000], val[:4000]


def no_evaluation_expected(history: cf.History) -> None:
    raise AssertionError("an evaluation ran: the run was not refused before its first step")


# -- 1. a checkpoint path that is not a regular file -------------------------------------------


def test_a_fifo_or_socket_checkpoint_path_is_refused_before_the_first_step(small, tokenizer, tmp_path: Path) -> None:
    train, val = small
    fifo = tmp_path / "pipe.pt"
    os.mkfifo(fifo)
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "sock.pt"))
    try:
        for path in (fifo, tmp_path / "sock.pt"):
            with pytest.raises(cf.CheckpointError, match="not a regular file") as caught:
                cf.train(tiny_model(), train, val, cf.TrainConfig(max_iters=5, **TINY), tokenizer=tokenizer,
                         checkpoint_path=path, on_evaluation=no_evaluation_expected)
            assert str(path) in str(caught.value)
        assert fifo.is_fifo() and (tmp_path / "sock.pt").is_socket()  # both left as they were
        with pytest.raises(cf.CheckpointError, match="not a regular file"):
            cf.save_checkpoint(fifo, tiny_model(), tokenizer)
        with pytest.raises(cf.CheckpointError, match="not a regular file"):  # never opened: it would block
            cf.train(tiny_model(), train, val, cf.TrainConfig(max_iters=5, **TINY), resume_from=fifo)
        assert fifo.is_fifo()
    finally:
        server.close()


def test_a_symlinked_checkpoint_path_writes_its_target_and_keeps_the_link(small, tokenizer, tmp_path: Path) -> None:
    train, val = small
    (tmp_path / "store").mkdir()
    (tmp_path / "links").mkdir()
    target, link = tmp_path / "store" / "run.pt", tmp_path / "links" / "run.pt"
    target.write_bytes(b"")
    link.symlink_to(target)
    cf.train(tiny_model(), train, val, cf.TrainConfig(max_iters=5, **TINY), tokenizer=tokenizer,
             checkpoint_path=link)
    assert link.is_symlink() and link.resolve() == target
    assert cf.load_checkpoint(target).iteration == 5
    assert sorted(p.name for p in (tmp_path / "links").iterdir()) == ["run.pt"]  # no temporary file
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == ["run.pt"]


# -- 7. every path error before the first step is a CheckpointError ----------------------------


def test_a_file_name_too_long_is_a_checkpoint_error_before_the_first_step(small, tokenizer, tmp_path: Path) -> None:
    train, val = small
    long_name = tmp_path / ("a" * 256 + ".pt")
    with pytest.raises(cf.CheckpointError, match="File name too long"):
        cf.train(tiny_model(), train, val, cf.TrainConfig(max_iters=5, **TINY), tokenizer=tokenizer,
                 checkpoint_path=long_name, on_evaluation=no_evaluation_expected)
    with pytest.raises(cf.CheckpointError, match="File name too long"):
        cf.train(tiny_model(), train, val, cf.TrainConfig(max_iters=5, **TINY), resume_from=long_name,
                 on_evaluation=no_evaluation_expected)


# -- 2. a non-finite loss leaves the resumable checkpoint resumable -----------------------------


def test_a_non_finite_loss_keeps_the_resumable_checkpoint(small, tokenizer, tmp_path: Path) -> None:
    train, val = small
    path = tmp_path / "ck.pt"
    config = cf.TrainConfig(max_iters=20, **TINY)
    cf.train(tiny_model(), train, val, config, tokenizer=tokenizer, checkpoint_path=path)
    before = path.read_bytes()
    blowup = cf.TrainConfig(max_iters=200, **{**TINY, "learning_rate": 1e6})  # not finite before step 25
    with pytest.raises(cf.NonFiniteLossError) as caught:
        cf.train(tiny_model(), train, val, blowup, resume_from=path, checkpoint_path=path, checkpoint_every=1)
    assert 20 < caught.value.iteration < 25 and path.read_bytes() == before  # left as it was
    checkpoint = cf.load_checkpoint(path)
    assert checkpoint.training_state is not None and checkpoint.iteration == 20
    assert f"{path} still holds the resumable run at step {checkpoint.iteration}" in str(caught.value)
    # The way back: resume from it with a lower learning rate.
    history = cf.train(tiny_model(), train, val, cf.TrainConfig(max_iters=checkpoint.iteration + 5, **TINY),
                       resume_from=path)
    assert history.iteration == checkpoint.iteration + 5


def test_weights_written_after_a_non_finite_loss_record_their_own_step(small, tokenizer, tmp_path: Path) -> None:
    train, val = small
    path = tmp_path / "blowup.pt"
    blowup = cf.TrainConfig(max_iters=200, **{**TINY, "learning_rate": 1e6, "eval_interval": 1})
    with pytest.raises(cf.NonFiniteLossError) as caught:
        cf.train(tiny_model(), train, val, blowup, tokenizer=tokenizer, checkpoint_path=path)
    checkpoint = cf.load_checkpoint(path)
    assert checkpoint.training_state is None
    assert checkpoint.iteration == caught.value.history.best_iter < caught.value.iteration


# -- 5. torchrun's variables without a process group -------------------------------------------


def test_torchrun_variables_without_a_process_group_are_refused(small, tokenizer, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    train, val = small
    for name, value in (("RANK", "1"), ("WORLD_SIZE", "2"), ("LOCAL_RANK", "1")):
        monkeypatch.setenv(name, value)
    with pytest.raises(RuntimeError, match=r"rank 1 of 2 started by torchrun.*init_process_group"):
        cf.train(tiny_model(), train, val, cf.TrainConfig(max_iters=5, **TINY), tokenizer=tokenizer,
                 checkpoint_path=tmp_path / "run.pt", on_evaluation=no_evaluation_expected)
    assert not list(tmp_path.iterdir())
    monkeypatch.setenv("WORLD_SIZE", "1")  # a launch of one process trains as it is
    assert cf.train(tiny_model(), train, val, cf.TrainConfig(max_iters=5, **TINY)).iteration == 5


# -- 6. the command line resumes, and its Ctrl-C message says how -------------------------------


@pytest.fixture(scope="module")
def text_slice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("text") / "slice.txt"
    path.write_text((REPO / "data" / "input.txt").read_text(encoding="utf-8")[:20_000], encoding="utf-8")
    return path


def test_the_cli_resumes_a_run_exactly(text_slice: Path, tmp_path: Path, capsys) -> None:
    common = ["--text", str(text_slice), "--eval-interval", "3", "--eval-iters", "1", "--sample-chars", "5"]
    assert cli_main(["train", *common, "--max-iters", "9", "--save", str(tmp_path / "straight.pt")]) == 0
    assert cli_main(["train", *common, "--max-iters", "6", "--save", str(tmp_path / "ck.pt")]) == 0
    assert cli_main(["train", "--text", str(text_slice), "--sample-chars", "5",
                     "--resume", str(tmp_path / "ck.pt"), "--max-iters", "9"]) == 0
    assert "finished 9 steps" in capsys.readouterr().out
    straight, resumed = cf.load_checkpoint(tmp_path / "straight.pt"), cf.load_checkpoint(tmp_path / "ck.pt")
    assert resumed.iteration == 9 and resumed.history.val_loss == straight.history.val_loss
    for name, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name


def test_the_cli_interrupt_message_is_a_command_that_resumes(text_slice: Path, tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1",
           "TQDM_DISABLE": "1"}
    command = [sys.executable, "-m", "charformer", "train", "--text", str(text_slice), "--max-iters", "100000",
               "--eval-interval", "5", "--eval-iters", "1", "--sample-chars", "5", "--save", str(tmp_path / "ck.pt")]
    launch = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert launch.stdout is not None
        for line in launch.stdout:
            if line.startswith("step 5:"):
                break
        launch.send_signal(signal.SIGINT)
        out, _ = launch.communicate(timeout=120)
    finally:
        if launch.poll() is None:
            launch.kill()
    hint = next(line for line in out.splitlines() if line.startswith("continue with: "))
    resume = hint.removeprefix("continue with: ").split()
    assert resume[:5] == ["python", "-m", "charformer", "train", "--resume"]
    stopped_at = cf.load_checkpoint(tmp_path / "ck.pt").iteration
    more = [sys.executable, *resume[1:], "--max-iters", str(stopped_at + 2), "--sample-chars", "5"]
    result = subprocess.run(more, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"finished {stopped_at + 2} steps" in result.stdout
