"""Noise, honestly: runs compared against the seed spread (the s.d. of the whole val over seeds),
the one thing that varies between runs of one setting; the training summary's standard errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.collections import LineCollection, PathCollection

import charformer as cf
from charformer.runs import noise_verdicts

from .conftest import tiny_model


def saved_run(folder: Path, tokenizer, name: str, final: float, stderr: list[float] | None,
              **model_overrides: object) -> Path:
    """A checkpoint of a tiny real model whose History says it ended at `final`."""
    history = cf.History(
        iters=[0, 10, 20], train_loss=[4.2, 3.1, 2.9], val_loss=[4.2, final + 0.01, final + 0.002],
        elapsed=[0.0, 1.0, 2.0], iteration=20, train_seconds=2.0,
        val_stderr=[] if stderr is None else stderr,
        final_val_loss=final, best_iter=20, best_val_loss=final + 0.002,
    )
    return cf.save_checkpoint(folder / name, tiny_model(**model_overrides), tokenizer,
                              train_config=cf.TrainConfig(max_iters=20), history=history)


def test_verdicts_measure_gaps_in_seed_standard_deviations() -> None:
    verdicts = noise_verdicts([1.7600, 1.7503, 1.8003], seed_sd=0.01)
    assert verdicts[1] == "best"
    assert verdicts[0] == "+0.0097 vs best = 1.0 seed s.d.: within noise"
    assert verdicts[2] == "+0.0500 vs best = 5.0 seed s.d.: beyond noise"
    # The gap of two one-seed runs has s.d. sqrt(2) * seed_sd: within noise up to 2.83 seed s.d.
    assert noise_verdicts([1.7503, 1.7503 + 0.0282], seed_sd=0.01)[1].endswith("within noise")
    assert noise_verdicts([1.7503, 1.7503 + 0.0284], seed_sd=0.01)[1].endswith("beyond noise")
    assert noise_verdicts([1.7600, 1.7503]) == ["+0.0097 vs best (noise unknown: give seed_sd)", "best"]
    assert noise_verdicts([1.7503], seed_sd=0.01) == [""]  # nothing to compare with
    assert noise_verdicts([None, 1.7503, 1.7600], seed_sd=0.01)[0] == ""


def test_runs_table_gives_the_exact_whole_val_and_judges_it_by_the_seed_spread(tmp_path: Path, tokenizer) -> None:
    paths = [
        saved_run(tmp_path, tokenizer, "a.pt", 1.7503, [0.02, 0.01, 0.0094], n_layer=2),
        saved_run(tmp_path, tokenizer, "b.pt", 1.7600, [0.02, 0.01, 0.0094], n_layer=3),
        saved_run(tmp_path, tokenizer, "c.pt", 1.9000, [0.02, 0.01, 0.0100], n_layer=4),
    ]
    a, b, c = cf.runs_table(paths, seed_sd=0.012).splitlines()
    assert a.endswith("whole val 1.7503  best")  # exact for given weights: no ± attached
    assert "whole val 1.7600  +0.0097 vs best = 0.8 seed s.d.: within noise" in b
    assert c.endswith("+0.1497 vs best = 12.5 seed s.d.: beyond noise")
    assert "noise unknown" in cf.runs_table(paths).splitlines()[1]
    (alone,) = cf.runs_table(paths[:1]).splitlines()
    assert alone.endswith("whole val 1.7503")


def test_old_checkpoints_without_standard_errors_still_work(tmp_path: Path, tokenizer) -> None:
    old = saved_run(tmp_path, tokenizer, "old.pt", 1.80, None, n_layer=2)
    new = saved_run(tmp_path, tokenizer, "new.pt", 1.75, [0.02, 0.01, 0.0094], n_layer=3)
    old_line, new_line = cf.runs_table([old, new], seed_sd=0.01).splitlines()
    assert "whole val 1.8000" in old_line and "within noise" not in old_line
    assert new_line.endswith("best")
    assert cf.compare_runs([old, new], seed_sd=0.01) is not None


def test_compare_runs_annotates_the_best_and_the_runs_within_noise(tmp_path: Path, tokenizer) -> None:
    paths = [
        saved_run(tmp_path, tokenizer, "a.pt", 1.7503, [0.02, 0.01, 0.0094], n_layer=2),
        saved_run(tmp_path, tokenizer, "b.pt", 1.7600, [0.02, 0.01, 0.0094], n_layer=3),
        saved_run(tmp_path, tokenizer, "c.pt", 1.9000, [0.02, 0.01, 0.0100], n_layer=4),
    ]
    axes = cf.compare_runs(paths, seed_sd=0.01).axes[0]
    notes = [text.get_text() for text in axes.texts]
    assert notes == ["best run", "within noise of the best"]
    points = [c for c in axes.collections if isinstance(c, PathCollection)]
    bars = [c for c in axes.collections if isinstance(c, LineCollection)]
    hollow = [len(p.get_facecolor()) == 0 or p.get_facecolor()[0][3] == 0 for p in points]
    assert hollow == [False, True, False]  # only the run within noise of the best
    assert len(bars) == 3  # one standard-error bar per best evaluation
    (segment,) = bars[0].get_segments()
    assert segment[:, 1].tolist() == pytest.approx([1.7523 - 0.0094, 1.7523 + 0.0094])


VAL_CHARS = 111_540


def _finished(val_loss: list[float], val_stderr: list[float]) -> cf.History:
    best = min(range(len(val_loss)), key=val_loss.__getitem__)
    iters = [100 * i for i in range(len(val_loss))]
    return cf.History(iters=iters, train_loss=list(val_loss), val_loss=val_loss, val_stderr=val_stderr,
                      elapsed=[1.0] * len(iters), iteration=iters[-1], train_seconds=9.0,
                      final_val_loss=val_loss[best], final_val_chars=VAL_CHARS, best_iter=iters[best],
                      best_val_loss=val_loss[best])


def test_the_summary_says_when_the_best_is_within_one_standard_error_of_the_last() -> None:
    from charformer.run import summary as _summary

    config = cf.TrainConfig()
    close = _summary(_finished([2.0, 1.7480, 1.7503], [0.01, 0.0094, 0.0094]), config, True, VAL_CHARS)
    assert ("best at step 100 (1.7480 ± 0.0094) is within one standard error of the last "
            "evaluation (1.7503)") in close
    far = _summary(_finished([2.0, 1.7480, 1.7700], [0.01, 0.0094, 0.0094]), config, True, VAL_CHARS)
    assert "standard error" not in far
    last_is_best = _summary(_finished([2.0, 1.7503], [0.01, 0.0094]), config, False, VAL_CHARS)
    assert "standard error" not in last_is_best
    old = _summary(_finished([2.0, 1.7480, 1.7503], []), config, True, VAL_CHARS)  # no s.e. recorded
    assert "standard error" not in old and "best val 1.7480 at step 100 (kept)" in old


def test_a_real_run_prints_the_verdict_its_numbers_call_for(splits, capsys) -> None:
    train_data, val_data = splits
    config = cf.TrainConfig(max_iters=60, batch_size=8, learning_rate=3e-3, eval_interval=10, eval_iters=8)
    history = cf.train(tiny_model(), train_data, val_data, config)
    printed = capsys.readouterr().out
    best_se = history.val_stderr[history.iters.index(history.best_iter)]
    within = history.best_iter != history.iteration and history.val_loss[-1] - history.best_val_loss < best_se
    assert ("within one standard error of the last evaluation" in printed) == within
    assert all(0 < se < 0.5 for se in history.val_stderr)


def test_the_same_run_twice_is_one_best_and_one_within_noise(tmp_path: Path, tokenizer) -> None:
    run = cf.load_checkpoint(saved_run(tmp_path, tokenizer, "a.pt", 1.7503, [0.02, 0.01, 0.0094]))
    first, second = cf.runs_table([run, run], seed_sd=0.01).splitlines()
    assert first.endswith("best") and "+0.0000 vs best = 0.0 seed s.d.: within noise" in second
