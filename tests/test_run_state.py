"""One run state: best weights kept, patience, exact resume with either weights, warnings, mismatches."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch

import charformer as cf

from .conftest import REPO, tiny_model

# A slice small enough to memorise: with a constant, high learning rate the val estimate bottoms
# out early and then climbs, so the best evaluation is well before the last.
OVERFIT = dict(batch_size=16, learning_rate=1e-2, eval_interval=20, eval_iters=4, weight_decay=0.0)
SLICE = 3000


@pytest.fixture(scope="module")
def small(splits) -> tuple[torch.Tensor, torch.Tensor]:
    train, val = splits
    return train[:SLICE], val[:4000]


def weights_equal(a: torch.nn.Module | dict, b: torch.nn.Module | dict) -> bool:
    a = a.state_dict() if isinstance(a, torch.nn.Module) else a
    b = b.state_dict() if isinstance(b, torch.nn.Module) else b
    return a.keys() == b.keys() and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


def measured(history: cf.History) -> dict:
    """Everything a History measured, without the wall-clock times."""
    values = history.to_dict()
    return {k: v for k, v in values.items() if k not in ("elapsed", "train_seconds")}


def test_keep_best_returns_the_weights_of_the_best_evaluation(small, capsys) -> None:
    train, val = small
    config = cf.TrainConfig(max_iters=300, **OVERFIT)
    model = tiny_model()
    history = cf.train(model, train, val, config)
    best = history.best_iter
    assert best is not None and 0 < best < 300, history.val_loss
    assert history.best_val_loss == min(history.val_loss)
    assert history.iters[history.val_loss.index(min(history.val_loss))] == best  # the first on a tie
    printed = capsys.readouterr().out
    assert f"best val {history.best_val_loss:.4f} at step {best} (kept); the last evaluation was {history.val_loss[-1]:.4f}" in printed
    # A run stopped at best_iter (constant rate, same seed) ends with exactly those weights.
    stopped = tiny_model()
    cf.train(stopped, train, val, cf.TrainConfig(max_iters=best, **OVERFIT))
    assert weights_equal(model, stopped)
    # final_val_loss is measured on the weights the model ends with.
    assert history.final_val_loss == pytest.approx(cf.whole_split_loss(stopped, val))

    last = tiny_model()
    last_history = cf.train(last, train, val, cf.TrainConfig(max_iters=300, keep_best=False, **OVERFIT))
    assert (last_history.best_iter, last_history.best_val_loss) == (best, history.best_val_loss)
    assert not weights_equal(last, stopped)
    assert "(not kept: keep_best=False)" in capsys.readouterr().out
    assert last_history.to_dict()["best_iter"] == best
    assert cf.History.from_dict(last_history.to_dict()).best_val_loss == history.best_val_loss


def test_patience_stops_early_and_again_at_once(small, capsys) -> None:
    train, val = small
    config = cf.TrainConfig(max_iters=1000, patience=3, **OVERFIT)
    model = tiny_model()
    history = cf.train(model, train, val, config)
    assert history.stopped_early and not history.interrupted
    assert history.iteration == history.best_iter + 3 * OVERFIT["eval_interval"] < 1000
    assert history.iters[-1] == history.iteration
    printed = capsys.readouterr().out
    assert "stopped early: no new best val in 3 evaluations (patience=3)" in printed
    evaluations = len(history.iters)
    again = cf.train(model, train, val, config, history=history)
    assert again.iteration == history.iteration and len(again.iters) == evaluations
    assert again.stopped_early
    # A larger patience continues the same run.
    more = cf.train(model, train, val, cf.TrainConfig(max_iters=1000, patience=5, **OVERFIT), history=history)
    assert more.iteration > history.best_iter + 3 * OVERFIT["eval_interval"]


@pytest.mark.parametrize("keep_best", [True, False])
def test_continuing_in_memory_is_exact_even_after_the_best_was_kept(small, keep_best: bool) -> None:
    train, val = small
    full = cf.TrainConfig(max_iters=240, keep_best=keep_best, **OVERFIT)
    straight_model = tiny_model(dropout=0.1)
    straight = cf.train(straight_model, train, val, full)

    model = tiny_model(dropout=0.1)
    half = cf.train(model, train, val, cf.TrainConfig(**{**full.to_dict(), "max_iters": 120}))
    if keep_best:
        assert half.best_iter < 120  # the model now holds an earlier step's weights
    history = cf.train(model, train, val, full, history=half)
    assert measured(history) == measured(straight)
    assert weights_equal(model, straight_model)


RESUME_SCRIPT = textwrap.dedent(
    """
    import sys, torch, charformer as cf
    text = open(sys.argv[1], encoding="utf-8").read()
    tok = cf.CharTokenizer.from_text(text)
    train, val = cf.train_val_split(torch.tensor(tok.encode(text)))
    train, val = train[:int(sys.argv[6])], val[:4000]
    config = cf.TrainConfig(**eval(sys.argv[2]))
    model = cf.load_checkpoint(sys.argv[3]).model
    history = cf.train(model, train, val, config, tokenizer=tok, resume_from=sys.argv[3],
                       checkpoint_path=sys.argv[4])
    torch.save({"state": model.state_dict(), "history": history.to_dict()}, sys.argv[5])
    """
)


@pytest.mark.parametrize("keep_best", [True, False])
def test_half_save_load_half_in_a_fresh_process_is_exact(small, tokenizer, tmp_path: Path, keep_best: bool) -> None:
    train, val = small
    full = dict(OVERFIT, max_iters=240, keep_best=keep_best)
    straight_model = tiny_model(dropout=0.1)
    straight = cf.train(straight_model, train, val, cf.TrainConfig(**full))

    model = tiny_model(dropout=0.1)
    half_path = tmp_path / "half.pt"
    half = cf.train(model, train, val, cf.TrainConfig(**{**full, "max_iters": 120}),
                    tokenizer=tokenizer, checkpoint_path=half_path)
    saved = torch.load(half_path, weights_only=True)
    # The file's model is the one the run ended with; the other weights ride along to resume.
    assert weights_equal(saved["model_state"], model)
    if keep_best:
        assert half.best_iter < 120 and saved["training_state"]["last_weights"] is not None
        assert saved["training_state"]["best_weights"] is None
    else:
        assert saved["training_state"]["last_weights"] is None
    script = tmp_path / "resume.py"
    script.write_text(RESUME_SCRIPT)
    result = tmp_path / "result.pt"
    subprocess.run(
        [sys.executable, str(script), str(REPO / "data" / "input.txt"), repr(full), str(half_path),
         str(tmp_path / "final.pt"), str(result), str(SLICE)],
        check=True, env={**os.environ, "TQDM_DISABLE": "1"}, capture_output=True, text=True,
    )
    resumed = torch.load(result, weights_only=True)
    assert {k: v for k, v in resumed["history"].items() if k not in ("elapsed", "train_seconds")} == measured(straight)
    assert weights_equal(resumed["state"], straight_model)
    assert weights_equal(cf.load_checkpoint(tmp_path / "final.pt").model, straight_model)


def test_training_a_trained_model_again_warns_and_still_runs(small) -> None:
    train, val = small
    config = cf.TrainConfig(max_iters=20, **OVERFIT)
    model = tiny_model()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a fresh model: no warning
        cf.train(model, train, val, config)
    with pytest.warns(UserWarning, match="already trained for 20 steps") as caught:
        history = cf.train(model, train, val, config)
    message = str(caught[0].message)
    assert "history=" in message and "new model" in message
    assert history.iteration == 20 and history.iters[0] == 0


def test_a_history_without_run_state_warns_that_the_optimizer_starts_fresh(small) -> None:
    train, val = small
    model = tiny_model()
    history = cf.train(model, train, val, cf.TrainConfig(max_iters=20, **OVERFIT))
    rebuilt = cf.History.from_dict(history.to_dict())
    assert rebuilt.run_state is None
    with pytest.warns(UserWarning, match="fresh optimizer"):
        continued = cf.train(model, train, val, cf.TrainConfig(max_iters=40, **OVERFIT), history=rebuilt)
    assert continued.iteration == 40 and continued.iters == [0, 20, 40]


def test_a_history_that_does_not_fit_is_refused_in_plain_words(small, tokenizer, tmp_path: Path) -> None:
    train, val = small
    config = cf.TrainConfig(max_iters=20, **OVERFIT)
    four = tiny_model(n_layer=4)
    history = cf.train(four, train, val, config, tokenizer=tokenizer, checkpoint_path=tmp_path / "r.pt")
    with pytest.raises(ValueError, match="history was recorded with a model of 4 layers; this model has 2 layers"):
        cf.train(tiny_model(n_layer=2), train, val, cf.TrainConfig(max_iters=40, **OVERFIT), history=history)
    with pytest.raises(ValueError, match="a vocabulary of 65 characters; this model has a vocabulary of 70"):
        cf.train(tiny_model(n_layer=4, vocab_size=70), train, val, cf.TrainConfig(max_iters=40, **OVERFIT), history=history)
    with pytest.raises(ValueError, match="history has 20 steps already; max_iters=10 is below"):
        cf.train(four, train, val, cf.TrainConfig(max_iters=10, **OVERFIT), history=history)
    with pytest.raises(cf.CheckpointError, match="4 layers; this model has 3 layers"):
        cf.train(tiny_model(n_layer=3), train, val, cf.TrainConfig(max_iters=40, **OVERFIT), resume_from=tmp_path / "r.pt")
    untouched = tiny_model(n_layer=4, seed=5)
    before = {k: v.clone() for k, v in untouched.state_dict().items()}
    with pytest.raises(cf.CheckpointError, match="max_iters=10 is below"):
        cf.train(untouched, train, val, cf.TrainConfig(max_iters=10, **OVERFIT), resume_from=tmp_path / "r.pt")
    assert weights_equal(untouched, before)  # a refused resume leaves the model as it was
    with pytest.raises(ValueError, match="outside this model's vocabulary of 40"):
        cf.train(tiny_model(vocab_size=40), train, val, config)
    other_vocabulary = cf.CharTokenizer(tokenizer.chars[:-1] + ["é"])
    with pytest.raises(ValueError, match="history was recorded with a different vocabulary .*only here: \\['é'\\]"):
        cf.train(four, train, val, cf.TrainConfig(max_iters=40, **OVERFIT), history=history, tokenizer=other_vocabulary)
    with pytest.raises(ValueError, match="not both"):
        cf.train(four, train, val, config, history=history, resume_from=tmp_path / "r.pt")
    assert history.iteration == 20  # nothing was changed by the refusals


def test_on_evaluation_sees_each_evaluation_and_its_error_leaves_a_consistent_run(small) -> None:
    train, val = small
    config = cf.TrainConfig(max_iters=100, **OVERFIT)
    straight_model = tiny_model(dropout=0.1)
    straight = cf.train(straight_model, train, val, config)

    seen: list[tuple[int, int]] = []

    def watch(history: cf.History) -> None:
        seen.append((history.iters[-1], len(history.val_loss)))
        if len(seen) == 3:
            raise RuntimeError("plot failed")

    model = tiny_model(dropout=0.1)
    with pytest.raises(RuntimeError, match="plot failed"):
        cf.train(model, train, val, config, on_evaluation=watch)
    assert seen == [(0, 1), (20, 2), (40, 3)]
    # The History given to the callback is the run's own: whole, and ready to continue exactly.
    calls: list[cf.History] = []

    def fail_on_third(history: cf.History) -> None:
        calls.append(history)
        if len(calls) == 3:
            raise ZeroDivisionError("in the callback")

    model = tiny_model(dropout=0.1)
    with pytest.raises(ZeroDivisionError):
        cf.train(model, train, val, config, on_evaluation=fail_on_third)
    watch_history = calls[-1]
    assert watch_history.iteration == 40 and watch_history.iters == [0, 20, 40]
    assert len({len(watch_history.train_loss), len(watch_history.val_loss), len(watch_history.val_stderr), len(watch_history.elapsed)}) == 1
    history = cf.train(model, train, val, config, history=watch_history)
    assert measured(history) == measured(straight)
    assert weights_equal(model, straight_model)
    with pytest.raises(ValueError, match="on_evaluation"):
        cf.train(model, train, val, config, on_evaluation=42)  # type: ignore[arg-type]


def test_evaluator_chunking_does_not_change_the_estimate(small) -> None:
    train, val = small
    model = tiny_model()
    small_chunks = cf.Evaluator(train, val, 16, eval_iters=8, batch_size=16, seed=3, chunk_windows=7)
    one_chunk = cf.Evaluator(train, val, 16, eval_iters=8, batch_size=16, seed=3, chunk_windows=1000)
    assert torch.equal(small_chunks.val_starts, one_chunk.val_starts)
    a, b = small_chunks(model), one_chunk(model)
    assert a.val_loss == pytest.approx(b.val_loss, abs=1e-5) and a.train_loss == pytest.approx(b.train_loss, abs=1e-5)
    assert len(one_chunk.val_starts) == 8 * 16 and len(one_chunk.train_starts) == 2 * 16
    from charformer.evaluate import eval_chunk_windows

    assert eval_chunk_windows("cpu") == 64 and eval_chunk_windows("cuda") == 512
