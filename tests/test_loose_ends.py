"""Issue 25's loose contracts (decode, load_checkpoint's device and fields, the CLI's seed and a
closed pipe) and issue 22's inputs: every token-taking function accepts what `train` accepts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import charformer as cf

from charformer.__main__ import main as cli_main

from .conftest import REPO, tiny_model

# --- decode refuses what encode's inverse cannot be --------------------------------------------


@pytest.mark.parametrize("bad", [1.5, 1.0, True, np.True_, "1", np.float32(1), None])
def test_decode_refuses_ids_that_are_not_integers(bad: object) -> None:
    tokenizer = cf.CharTokenizer("abc")
    with pytest.raises(ValueError, match="token id must be an int"):
        tokenizer.decode([0, bad])  # type: ignore[list-item]


def test_decode_takes_python_numpy_and_tensor_integers() -> None:
    tokenizer = cf.CharTokenizer("abc")
    assert tokenizer.decode([0, np.int64(1), np.uint8(2)]) == "abc"
    assert tokenizer.decode(torch.tensor([2, 1], dtype=torch.uint8)) == "cb"
    with pytest.raises(ValueError, match="token id must be an int"):
        tokenizer.decode(torch.tensor([1.0]))


# --- get_batch and friends take what train takes (issue 22, item 7) ------------------------------


def token_inputs(data: torch.Tensor) -> dict[str, object]:
    """The same ids as a tensor, numpy arrays torch cannot share, and a list."""
    ids = data[:2000].numpy().astype(np.int64)
    reversed_twice = ids[::-1].copy()[::-1]  # a negative-stride view holding `ids` in order
    return {
        "numpy": ids,
        "list": ids.tolist(),
        "negative stride": reversed_twice,
        "big-endian": ids.astype(">i4"),
        "non-native uint16 view": ids.astype(">u2")[::-1].copy()[::-1],
    }


def test_get_batch_accepts_what_train_accepts(data: torch.Tensor) -> None:
    expected = cf.get_batch(data[:2000], 4, 8, generator=torch.Generator().manual_seed(5))
    for name, ids in token_inputs(data).items():
        x, y = cf.get_batch(ids, 4, 8, generator=torch.Generator().manual_seed(5))  # type: ignore[arg-type]
        assert torch.equal(x, expected[0]) and torch.equal(y, expected[1]), name
        assert x.dtype == torch.int64
    with pytest.raises(ValueError, match="integer token ids"):
        cf.get_batch(np.arange(100.0), 4, 8)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="1-D"):
        cf.get_batch(np.arange(100).reshape(10, 10), 4, 8)  # type: ignore[arg-type]


def test_evaluation_and_training_accept_views_and_byte_orders(data: torch.Tensor) -> None:
    model = tiny_model()
    tensor = data[:2000]
    whole = cf.whole_split_loss(model, tensor)
    evaluator = cf.Evaluator(tensor, tensor, 16, 2, 4, seed=0)
    estimate = evaluator(model)
    for name, ids in token_inputs(data).items():
        assert cf.whole_split_loss(model, ids) == pytest.approx(whole), name  # type: ignore[arg-type]
        assert cf.Evaluator(ids, ids, 16, 2, 4, seed=0)(model) == estimate, name  # type: ignore[arg-type]
    config = cf.TrainConfig(max_iters=2, eval_interval=2, eval_iters=1, batch_size=4)
    history = cf.train(tiny_model(), tensor.numpy()[::-1], tensor.numpy().astype(">i4"), config)
    assert history.iteration == 2


# --- load_checkpoint: device and hand-edited fields ---------------------------------------------


@pytest.fixture
def checkpoint_file(tmp_path: Path) -> Path:
    tokenizer = cf.CharTokenizer([chr(ord("A") + i) for i in range(65)])
    return cf.save_checkpoint(tmp_path / "m.pt", tiny_model(), tokenizer)


@pytest.mark.parametrize("device", ["meta", "cuda:99", "no-such-device", 3.5])
def test_load_checkpoint_device_errors_are_one_line(checkpoint_file: Path, device: object) -> None:
    # "cuda:99": a CPU build refuses any cuda device, a CUDA build this ordinal.
    with pytest.raises(cf.CheckpointError) as caught:
        cf.load_checkpoint(checkpoint_file, device=device)  # type: ignore[arg-type]
    message = str(caught.value)
    assert str(checkpoint_file) in message and repr(device) in message and "device='cpu'" in message
    assert "\n" not in message
    assert cf.load_checkpoint(checkpoint_file, device="cpu").model(torch.zeros(1, 1, dtype=torch.long))[0].shape == (1, 1, 65)


def edit_checkpoint(path: Path, **fields: object) -> Path:
    payload = torch.load(path, weights_only=True)
    payload.update(fields)
    torch.save(payload, path)
    return path


@pytest.mark.parametrize(
    "fields",
    [{"iteration": "12"}, {"iteration": 1.5}, {"iteration": [3]}, {"iteration": True}, {"iteration": -1},
     {"training_state": [1, 2]}, {"history": "none"}],
)
def test_hand_edited_fields_of_the_wrong_type_are_refused(checkpoint_file: Path, fields: dict[str, object]) -> None:
    edit_checkpoint(checkpoint_file, **fields)
    (key,) = fields
    with pytest.raises(cf.CheckpointError, match=key) as caught:
        cf.load_checkpoint(checkpoint_file)
    assert str(checkpoint_file) in str(caught.value) and "\n" not in str(caught.value)


def test_a_weight_that_is_not_a_tensor_is_refused(checkpoint_file: Path) -> None:
    payload = torch.load(checkpoint_file, weights_only=True)
    payload["model_state"]["head.weight"] = [0.0]
    torch.save(payload, checkpoint_file)
    with pytest.raises(cf.CheckpointError, match="head.weight is not a tensor"):
        cf.load_checkpoint(checkpoint_file)


# --- the CLI: one seed range, a closed pipe, a hand-edited checkpoint ---------------------------


def run_cli(*args: str, **kwargs: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "charformer", *args], capture_output=True, text=True,
                          env={**os.environ, "TQDM_DISABLE": "1"}, cwd=REPO, **kwargs)  # type: ignore[call-overload]


@pytest.mark.parametrize("seed", ["-1", "-5", "99999999999999999999999", "4294967296", "1.5"])
def test_train_and_sample_refuse_the_same_seeds(checkpoint_file: Path, seed: str) -> None:
    for args in (["train", "--max-iters", "1"], ["sample", str(checkpoint_file), "--chars", "1"]):
        with pytest.raises(SystemExit) as exited:
            cli_main([*args, "--seed", seed])  # argparse's usage error, before any work
        assert exited.value.code == 2


def test_seed_range_is_in_the_help_and_its_ends_work(checkpoint_file: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        cli_main(["sample", "--help"])
    assert "0 to 4294967295" in " ".join(capsys.readouterr().out.split())
    for seed in ("0", "4294967295"):
        assert cli_main(["sample", str(checkpoint_file), "--chars", "3", "--seed", seed]) == 0


def test_sample_into_a_closed_pipe_exits_quietly(checkpoint_file: Path) -> None:
    command = [sys.executable, "-m", "charformer", "sample", str(checkpoint_file), "--chars", "200"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader is gone before anything is written, as `| head -c 10` ends
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 1  # the exit status the Python docs give for EPIPE
    assert stderr == ""


def test_sample_from_a_hand_edited_checkpoint_is_one_line(checkpoint_file: Path) -> None:
    edit_checkpoint(checkpoint_file, iteration=[3])
    result = run_cli("sample", str(checkpoint_file), "--chars", "3")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "iteration" in result.stderr
