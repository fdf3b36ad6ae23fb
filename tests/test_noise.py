"""Noise, honestly: standard errors beside the numbers, gaps under two of them called noise."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from matplotlib.collections import LineCollection, PathCollection

import charformer as cf
from charformer.runs import RunScore, noise_verdicts

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


def test_verdicts_use_two_standard_errors_of_the_difference() -> None:
    best, close, far = RunScore(1.7503, 0.0094), RunScore(1.7600, 0.0094), RunScore(1.7800, 0.0094)
    verdicts = noise_verdicts([close, best, far])
    assert verdicts[1] == "best"
    two_se = 2 * math.hypot(0.0094, 0.0094)  # 0.0266
    assert verdicts[0] == f"+0.0097 vs best: within noise (2 s.e. = {two_se:.4f})"
    assert verdicts[2] == "+0.0297 vs best (2.2 s.e.)" and "noise" not in verdicts[2]
    assert noise_verdicts([best]) == [""]  # nothing to compare with
    assert noise_verdicts([best, RunScore(1.76, None)])[1] == "+0.0097 vs best (noise unknown)"
    assert noise_verdicts([RunScore(None, None), best, close])[0] == ""


def test_runs_table_shows_plus_minus_and_marks_noise(tmp_path: Path, tokenizer) -> None:
    paths = [
        saved_run(tmp_path, tokenizer, "a.pt", 1.7503, [0.02, 0.01, 0.0094], n_layer=2),
        saved_run(tmp_path, tokenizer, "b.pt", 1.7600, [0.02, 0.01, 0.0094], n_layer=3),
        saved_run(tmp_path, tokenizer, "c.pt", 1.9000, [0.02, 0.01, 0.0100], n_layer=4),
    ]
    a, b, c = cf.runs_table(paths).splitlines()
    assert "whole val 1.7503 ± 0.0094" in a and a.endswith("best")
    assert "whole val 1.7600 ± 0.0094" in b and "within noise" in b
    assert "whole val 1.9000 ± 0.0100" in c and "within noise" not in c
    (alone,) = cf.runs_table(paths[:1]).splitlines()
    assert "1.7503 ± 0.0094" in alone and "best" not in alone.split("whole val")[1]


def test_old_checkpoints_without_standard_errors_still_work(tmp_path: Path, tokenizer) -> None:
    old = saved_run(tmp_path, tokenizer, "old.pt", 1.80, None, n_layer=2)
    new = saved_run(tmp_path, tokenizer, "new.pt", 1.75, [0.02, 0.01, 0.0094], n_layer=3)
    old_line, new_line = cf.runs_table([old, new]).splitlines()
    assert "whole val 1.8000 ± ?" in old_line and "noise unknown" in old_line
    assert new_line.endswith("best")
    assert cf.compare_runs([old, new]) is not None


def test_compare_runs_annotates_the_best_and_the_runs_within_noise(tmp_path: Path, tokenizer) -> None:
    paths = [
        saved_run(tmp_path, tokenizer, "a.pt", 1.7503, [0.02, 0.01, 0.0094], n_layer=2),
        saved_run(tmp_path, tokenizer, "b.pt", 1.7600, [0.02, 0.01, 0.0094], n_layer=3),
        saved_run(tmp_path, tokenizer, "c.pt", 1.9000, [0.02, 0.01, 0.0100], n_layer=4),
    ]
    axes = cf.compare_runs(paths).axes[0]
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
    first, second = cf.runs_table([run, run]).splitlines()
    assert first.endswith("best") and "+0.0000 vs best: within noise" in second
