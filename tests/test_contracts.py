"""Contracts kept (issue 18): continued runs, final losses, run paths, early checks, token dtypes,
numpy scalars, and the smaller error messages, each tried as a careful user would."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import charformer as cf
from charformer.__main__ import main as cli_main

from .conftest import REPO, tiny_model

TINY = dict(batch_size=8, learning_rate=1e-3, eval_interval=5, eval_iters=2, min_lr=0.0)
SLICE = 20_000


@pytest.fixture(scope="module")
def small(splits) -> tuple[torch.Tensor, torch.Tensor]:
    train, val = splits
    return train[:SLICE], val[:4000]


def no_evaluation_expected(history: cf.History) -> None:
    raise AssertionError("an evaluation ran: the run was not refused before its first step")


def max_change(before: dict[str, torch.Tensor], model: torch.nn.Module) -> float:
    return max((model.state_dict()[k] - v).abs().max().item() for k, v in before.items())


def copy_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


# -- 1. a continued run uses the config it is given ------------------------------------------

NEW_SETTINGS = dict(learning_rate=1e-5, min_lr=0.0, weight_decay=0.5, beta1=0.8, beta2=0.95)


def assert_optimizer_follows(history: cf.History, config: cf.TrainConfig) -> None:
    decayed, plain = history.run_state.optimizer["param_groups"]
    assert decayed["lr"] == plain["lr"] == cf.learning_rate_at(history.iteration - 1, config)
    assert (decayed["weight_decay"], plain["weight_decay"]) == (config.weight_decay, 0.0)
    assert tuple(decayed["betas"]) == tuple(plain["betas"]) == (config.beta1, config.beta2)


def test_continuing_in_memory_uses_the_new_learning_rate(small) -> None:
    train, val = small
    model = tiny_model()
    history = cf.train(model, train, val, cf.TrainConfig(max_iters=10, **TINY))
    before = copy_state(model)
    new = cf.TrainConfig(max_iters=20, **{**TINY, **NEW_SETTINGS})
    cf.train(model, train, val, new, history=history)
    assert_optimizer_follows(history, new)
    # Ten AdamW steps at 1e-5 move no weight by much more than 1e-4; at 1e-3 they move by ~1e-2.
    assert max_change(before, model) < 1e-3


def test_resuming_from_a_checkpoint_uses_the_new_config(small, tokenizer, tmp_path: Path) -> None:
    train, val = small
    path = tmp_path / "run.pt"
    model = tiny_model()
    cf.train(model, train, val, cf.TrainConfig(max_iters=10, **TINY), tokenizer=tokenizer, checkpoint_path=path)
    before = copy_state(model)
    new = cf.TrainConfig(max_iters=20, **{**TINY, **NEW_SETTINGS})
    resumed = tiny_model(seed=5)
    history = cf.train(resumed, train, val, new, resume_from=path)
    assert_optimizer_follows(history, new)
    assert max_change(before, resumed) < 1e-3


def test_a_decayed_run_continued_at_a_constant_rate_runs_at_that_rate(small) -> None:
    train, val = small
    model = tiny_model()
    decaying = cf.TrainConfig(max_iters=10, warmup_iters=2, lr_decay_iters=10, **{**TINY, "min_lr": 1e-5})
    history = cf.train(model, train, val, decaying)
    assert history.run_state.optimizer["param_groups"][0]["lr"] == cf.learning_rate_at(9, decaying) < 1e-4
    constant = cf.TrainConfig(max_iters=12, **{**TINY, "learning_rate": 2e-3})
    cf.train(model, train, val, constant, history=history)
    assert history.run_state.optimizer["param_groups"][0]["lr"] == 2e-3


# -- 2. final_val_loss is never an earlier run's ----------------------------------------------

def test_an_interrupted_continuation_has_no_final_loss(small, tokenizer, tmp_path: Path) -> None:
    train, val = small
    model = tiny_model()
    path = tmp_path / "run.pt"
    history = cf.train(model, train, val, cf.TrainConfig(max_iters=10, **TINY), tokenizer=tokenizer,
                       checkpoint_path=path)
    assert history.final_val_loss == pytest.approx(cf.whole_split_loss(model, val))

    def press_stop(h: cf.History) -> None:
        if h.iters[-1] == 15:
            os.kill(os.getpid(), signal.SIGINT)  # the notebook's stop button

    cf.train(model, train, val, cf.TrainConfig(max_iters=40, **TINY), history=history,
             checkpoint_path=path, tokenizer=tokenizer, on_evaluation=press_stop)
    assert history.interrupted and history.iters[-1] == 15 and history.iteration < 20
    assert history.final_val_loss is None
    assert cf.load_checkpoint(path).history.final_val_loss is None
    assert cf.runs_table([path]).endswith("whole val -")
    # Finishing the run measures it again, on the weights the model then holds.
    cf.train(model, train, val, cf.TrainConfig(max_iters=20, **TINY), history=history)
    assert history.final_val_loss == pytest.approx(cf.whole_split_loss(model, val))


# -- 3. a run path is handed out once ---------------------------------------------------------

def test_new_run_path_reserves_each_name(small, tokenizer, tmp_path: Path) -> None:
    folder = tmp_path / "runs"
    first, second = cf.new_run_path(folder, "sweep"), cf.new_run_path(folder, "sweep")
    assert (first.name, second.name) == ("sweep-001.pt", "sweep-002.pt")
    settings = cf.resolve_settings("quick", n_layer=1, n_embd=32, block_size=16, num_threads=1)
    train, val = small
    runs = [cf.new_run(settings, tokenizer.vocab_size, train, device=torch.device("cpu"), folder=folder,
                       label="sweep")[2] for _ in range(2)]
    assert [p.name for p in runs] == ["sweep-003.pt", "sweep-004.pt"]
    # A reserved path is an empty placeholder: the table says so and the checkpoint replaces it.
    assert cf.runs_table([first]) == "sweep-001.pt  no checkpoint yet (reserved by new_run_path)"
    with pytest.raises(cf.CheckpointError, match="empty"):
        cf.load_checkpoint(first)
    cf.train(tiny_model(), train, val, cf.TrainConfig(max_iters=5, **TINY), tokenizer=tokenizer,
             checkpoint_path=first)
    assert cf.load_checkpoint(first).iteration == 5
    lines = cf.runs_table([first, second]).splitlines()
    assert lines[0].startswith("sweep-001.pt") and "5 steps" in lines[0]
    assert lines[1].split() == ["sweep-002.pt", "no", "checkpoint", "yet", "(reserved", "by", "new_run_path)"]
    assert len(cf.compare_runs([first, second]).axes[0].get_lines()) == 1


def test_two_processes_never_get_the_same_run_path(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import sys
        import charformer as cf
        print("\\n".join(cf.new_run_path({str(tmp_path)!r}, "sweep").name for _ in range(40)))
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    processes = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
                 for _ in range(2)]
    names = [name for p in processes for name in p.communicate(timeout=120)[0].split()]
    assert all(p.returncode == 0 for p in processes)
    assert len(names) == 80 and len(set(names)) == 80


# -- 4. checked before the first step; the History stays reachable ----------------------------

def test_an_unwritable_checkpoint_path_is_refused_before_the_first_step(small, tokenizer, tmp_path: Path) -> None:
    train, val = small
    (tmp_path / "taken").write_text("a file where the folder should be")
    model = tiny_model()
    before = copy_state(model)
    for bad in (tmp_path / "taken" / "run.pt", tmp_path):
        with pytest.raises(cf.CheckpointError, match=str(bad)):
            cf.train(model, train, val, cf.TrainConfig(max_iters=10**6, **TINY), tokenizer=tokenizer,
                     checkpoint_path=bad, on_evaluation=no_evaluation_expected)
    assert max_change(before, model) == 0.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]  # the probe file is gone


def test_a_tokenizer_that_does_not_fit_the_model_is_refused_at_once(small, tmp_path: Path) -> None:
    train, val = small
    with pytest.raises(ValueError, match="tokenizer has 3 characters but the model's vocab_size is 65"):
        cf.train(tiny_model(), train, val, cf.TrainConfig(max_iters=10**6, **TINY),
                 tokenizer=cf.CharTokenizer("abc"), checkpoint_path=tmp_path / "r.pt",
                 on_evaluation=no_evaluation_expected)


def test_a_failure_at_the_end_keeps_the_history(small, tokenizer, tmp_path: Path) -> None:
    train, val = small
    folder = tmp_path / "runs"

    def take_the_folder_away(history: cf.History) -> None:
        if history.iters[-1] == 10:  # the last evaluation: the final checkpoint will fail
            for child in folder.iterdir():
                child.unlink()
            folder.rmdir()
            folder.write_text("now a file")

    with pytest.raises(cf.CheckpointError) as caught:
        cf.train(tiny_model(), train, val, cf.TrainConfig(max_iters=10, **TINY), tokenizer=tokenizer,
                 checkpoint_path=folder / "run.pt", on_evaluation=take_the_folder_away)
    history = caught.value.history
    assert isinstance(history, cf.History) and history.iteration == 10 and history.iters == [0, 5, 10]

    def fail(history: cf.History) -> None:
        raise RuntimeError("my callback broke")

    with pytest.raises(RuntimeError, match="my callback broke") as caught:
        cf.train(tiny_model(), train, val, cf.TrainConfig(max_iters=10, **TINY), on_evaluation=fail)
    assert caught.value.history.iters == [0]


# -- 5. a preset run of any length warms up, then decays --------------------------------------

def test_a_short_preset_run_warms_up_then_decays() -> None:
    settings = cf.resolve_settings("cpu", max_iters=50)
    _, config = cf.configs_from_settings(settings, 65)
    assert (config.warmup_iters, config.lr_decay_iters) == (5, 50)
    rates = [cf.learning_rate_at(i, config) for i in range(50)]
    assert rates[0] < rates[4] < rates[5] == config.learning_rate
    assert rates[-1] < 0.01 * config.learning_rate + config.min_lr
    assert cf.resolve_settings("cpu")["warmup_iters"] == 100  # the full run keeps its warmup


# -- 6. token tensors of any integer dtype; fractional ids refused ----------------------------

INTEGER_DTYPES = [torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64]


@pytest.mark.parametrize("dtype", INTEGER_DTYPES)
def test_every_integer_dtype_works_everywhere(small, dtype: torch.dtype) -> None:
    train, val = small
    model = tiny_model()
    block = model.config.block_size
    assert cf.whole_split_loss(model, val.to(dtype)) == cf.whole_split_loss(model, val)
    estimate = cf.Evaluator(train.to(dtype), val.to(dtype), block, 2, 8, seed=0)(model)
    assert estimate == cf.Evaluator(train, val, block, 2, 8, seed=0)(model)
    x, y = cf.get_batch(train.to(dtype), 4, block, generator=torch.Generator().manual_seed(0))
    x_long, y_long = cf.get_batch(train, 4, block, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, x_long) and torch.equal(y, y_long) and x.dtype == torch.long
    assert torch.equal(model(x.to(dtype), y.to(dtype))[1], model(x_long, y_long)[1])
    prompt = x_long[:1, :3]
    assert torch.equal(model.generate(prompt.to(dtype), 5, generator=torch.Generator().manual_seed(1)),
                       model.generate(prompt, 5, generator=torch.Generator().manual_seed(1)))


def test_train_takes_any_integer_dtype_and_numpy_arrays(small) -> None:
    train, val = small
    config = cf.TrainConfig(max_iters=5, **TINY)
    reference, other, arrays = tiny_model(), tiny_model(), tiny_model()
    expected = cf.train(reference, train, val, config).val_loss
    assert cf.train(other, train.to(torch.int16), val.to(torch.uint8), config).val_loss == expected
    assert cf.train(arrays, train.numpy().astype(np.int32), val.numpy().astype(np.int32), config).val_loss == expected


def test_fractional_token_ids_are_refused(small) -> None:
    train, val = small
    model = tiny_model()
    fractional = train.numpy() + 0.9
    with pytest.raises(ValueError, match="fractional values such as"):
        cf.train(model, fractional, val, cf.TrainConfig(max_iters=5, **TINY))
    with pytest.raises(ValueError, match="fractional"):
        cf.whole_split_loss(model, val.double() + 0.5)
    x = torch.zeros((1, 4), dtype=torch.long)
    # Whole-valued floats are refused as well: ids are integers (convert with .long()).
    for call in (
        lambda: cf.train(model, train.float(), val, cf.TrainConfig(max_iters=5, **TINY)),
        lambda: cf.whole_split_loss(model, val.float()),
        lambda: cf.Evaluator(train.float(), val, 16, 2, 8, seed=0),
        lambda: cf.get_batch(train.float(), 4, 16),
        lambda: model(x.float()),
        lambda: model(x, x.float()),
        lambda: model.generate(x.float(), 3),
    ):
        with pytest.raises(ValueError, match="integer token ids"):
            call()
    with pytest.raises(ValueError, match="integer token ids"):
        model(x, torch.ones((1, 4), dtype=torch.bool))


# -- 7. numpy scalars wherever Python numbers go; bools refused --------------------------------

def test_numpy_scalars_are_numbers_everywhere(small, tokenizer, tmp_path: Path) -> None:
    train, _ = small
    model = tiny_model()
    prompt = torch.zeros((1, 1), dtype=torch.long)
    with_numpy = model.generate(prompt, np.int64(20), temperature=np.float32(0.8), top_k=np.int64(5),
                                generator=torch.Generator().manual_seed(3))
    plain = model.generate(prompt, 20, temperature=float(np.float32(0.8)), top_k=5,
                           generator=torch.Generator().manual_seed(3))
    assert torch.equal(with_numpy, plain)
    a = cf.get_batch(train, np.int64(4), np.int32(16), generator=torch.Generator().manual_seed(0))
    b = cf.get_batch(train, 4, 16, generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(p, q) for p, q in zip(a, b))

    config = cf.TrainConfig(max_iters=np.int64(7), learning_rate=np.float32(2e-3), min_lr=np.float64(0.0))
    assert type(config.max_iters) is int and type(config.learning_rate) is float
    model_config = cf.ModelConfig(vocab_size=np.int64(65), n_embd=np.int32(32), block_size=16,
                                  dropout=np.float32(0.0))
    assert type(model_config.n_embd) is int and model_config == tiny_config_like(model_config)
    path = cf.save_checkpoint(tmp_path / "np.pt", cf.CharTransformer(model_config), tokenizer, train_config=config)
    assert cf.load_checkpoint(path).train_config == config  # plain values: loads without pickle
    history = cf.train(tiny_model(), train, small[1], cf.TrainConfig(max_iters=np.int64(4), **{**TINY, "eval_interval": 2}),
                       tokenizer=tokenizer, checkpoint_path=tmp_path / "every.pt", checkpoint_every=np.int64(1))
    assert history.iters == [0, 2, 4] and cf.load_checkpoint(tmp_path / "every.pt").iteration == 4


def tiny_config_like(config: cf.ModelConfig) -> cf.ModelConfig:
    return cf.ModelConfig(**{k: (v.item() if hasattr(v, "item") else v) for k, v in config.to_dict().items()})


def test_bools_are_still_not_numbers(small) -> None:
    train, _ = small
    model = tiny_model()
    prompt = torch.zeros((1, 1), dtype=torch.long)
    for call in (
        lambda: model.generate(prompt, 3, top_k=True),
        lambda: model.generate(prompt, 3, temperature=True),
        lambda: model.generate(prompt, 3, top_k=np.bool_(True)),
        lambda: cf.get_batch(train, True, 16),
        lambda: cf.get_batch(train, np.bool_(True), 16),
        lambda: cf.TrainConfig(max_iters=True),
        lambda: cf.TrainConfig(learning_rate=np.bool_(True)),
        lambda: cf.ModelConfig(n_layer=np.bool_(True)),
    ):
        with pytest.raises(ValueError):
            call()


# -- smaller: checkpoints, the command line, non-finite losses --------------------------------

def test_random_bytes_are_not_a_torch_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "noise.pt"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(cf.CheckpointError) as caught:
        cf.load_checkpoint(path)
    message = str(caught.value)
    assert "not a torch checkpoint file" in message and "pickle" not in message and str(path) in message


def test_sample_on_a_folder_says_it_is_a_folder(tmp_path: Path, capsys) -> None:
    assert cli_main(["sample", str(tmp_path)]) == 1
    error = capsys.readouterr().err
    assert "is a folder" in error and "does not exist" not in error


def test_sample_top_k_zero_means_off(small, tokenizer, tmp_path: Path, capsys) -> None:
    train, val = small
    path = tmp_path / "run.pt"
    cf.train(tiny_model(), train, val, cf.TrainConfig(max_iters=5, **TINY), tokenizer=tokenizer, checkpoint_path=path)
    capsys.readouterr()
    outputs = []
    for extra in ([], ["--top-k", "0"]):
        assert cli_main(["sample", str(path), "--chars", "40", "--seed", "2", *extra]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] and len(outputs[0]) == 1 + 40 + 1
    assert cli_main(["sample", str(path), "--top-k", "-1"]) == 1
    assert "--top-k must be >= 0" in capsys.readouterr().err


def test_train_command_refuses_bad_numbers_before_building_anything(capsys) -> None:
    assert cli_main(["train", "--max-iters", "-5"]) == 1
    captured = capsys.readouterr()
    assert "max_iters must be >= 1, got -5" in captured.err
    assert captured.out == ""  # nothing loaded, no model built


def test_a_non_finite_run_writes_the_best_weights_it_restored(splits, tokenizer, tmp_path: Path) -> None:
    train, val = splits
    path = tmp_path / "blowup.pt"
    config = cf.TrainConfig(max_iters=200, batch_size=16, learning_rate=1e6, min_lr=0.0, eval_interval=1,
                            eval_iters=4)
    model = tiny_model()
    with pytest.raises(cf.NonFiniteLossError) as caught:
        cf.train(model, train, val, config, tokenizer=tokenizer, checkpoint_path=path)
    history = caught.value.history
    assert isinstance(history, cf.History) and history.best_iter is not None
    assert f"written to {path}" in str(caught.value)
    checkpoint = cf.load_checkpoint(path)
    saved = checkpoint.model.state_dict()
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())
    assert checkpoint.history.best_iter == history.best_iter and checkpoint.history.final_val_loss is None
    assert all(math.isfinite(v) for v in checkpoint.history.val_loss)
