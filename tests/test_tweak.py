"""Presets, runs kept and compared, the live plot, the measured thread count, and the sample command."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from matplotlib.figure import Figure

import charformer as cf
from charformer.cores import available_cores, free_cores

from .conftest import tiny_model

train_module = importlib.import_module("charformer.train")  # cf.train is the function
TINY = dict(batch_size=8, learning_rate=3e-3, eval_interval=10, eval_iters=2)


def test_explicit_values_beat_the_preset() -> None:
    gpu = cf.resolve_settings("gpu")
    assert (gpu["n_layer"], gpu["block_size"], gpu["dropout"], gpu["max_iters"]) == (6, 256, 0.2, 2000)
    mine = cf.resolve_settings("gpu", max_iters=50, n_layer=2, dropout=None)
    assert (mine["max_iters"], mine["n_layer"], mine["dropout"]) == (50, 2, 0.2)
    # A short run warms up for a tenth of its length and decays over the rest, unless told otherwise.
    assert (mine["warmup_iters"], mine["lr_decay_iters"]) == (5, 50)
    assert cf.resolve_settings("cpu", max_iters=300, lr_decay_iters=200)["lr_decay_iters"] == 200
    assert cf.resolve_settings("cpu", lr_decay_iters=0)["lr_decay_iters"] is None
    assert cf.resolve_settings("quick", num_threads=1)["num_threads"] == 1
    model_config, train_config = cf.configs_from_settings(cf.resolve_settings("cpu"), 65)
    assert (train_config.batch_size, train_config.learning_rate, train_config.max_iters,
            train_config.eval_interval) == (16, 1e-3, 5000, 100)
    assert model_config == cf.ModelConfig(vocab_size=65)


@pytest.mark.parametrize("preset, hint", [("GPU", "did you mean 'gpu'"), ("fast", ""), (None, ""), (" Quick", "did you mean 'quick'")])
def test_unknown_presets_name_the_choices(preset, hint: str) -> None:
    with pytest.raises(ValueError) as caught:
        cf.resolve_settings(preset)
    message = str(caught.value)
    assert "'cpu', 'quick', 'gpu'" in message and hint in message


def test_unknown_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="n_layers"):
        cf.resolve_settings("cpu", n_layers=3)


def test_new_run_path_never_reuses_a_name(tmp_path: Path) -> None:
    first = cf.new_run_path(tmp_path / "runs", "cpu")
    assert first == tmp_path / "runs" / "cpu-001.pt"
    assert first.is_file() and first.stat().st_size == 0  # reserved: the run's checkpoint replaces it
    (tmp_path / "runs" / "quick-007.pt").write_bytes(b"x")
    assert cf.new_run_path(tmp_path / "runs", "cpu").name == "cpu-008.pt"
    assert cf.new_run_path(tmp_path / "runs", "my run/2").name == "my-run-2-009.pt"


@pytest.fixture(scope="module")
def two_runs(splits, tokenizer, tmp_path_factory) -> list[Path]:
    train, val = splits
    folder = tmp_path_factory.mktemp("runs")
    paths = []
    for block_size in (8, 12):
        path = cf.new_run_path(folder, "tiny")
        cf.train(tiny_model(block_size=block_size), train, val, cf.TrainConfig(max_iters=30, **TINY),
                 tokenizer=tokenizer, checkpoint_path=path)
        paths.append(path)
    return paths


def test_runs_table_lists_what_differs(two_runs: list[Path]) -> None:
    table = cf.runs_table(two_runs).splitlines()
    assert len(table) == 2  # one line per run
    for line, path, block in zip(table, two_runs, (8, 12)):
        history = cf.load_checkpoint(path).history
        assert line.split()[:2] == [path.name, f"block_size={block}"]
        assert "30 steps" in line and f"{history.train_seconds:.1f} s" in line
        assert f"best val {history.best_val_loss:.4f} at step {history.best_iter}" in line
        assert f"whole val {history.final_val_loss:.4f}" in line and "±" not in line
    # Checkpoints work as well as paths; a single run has no setting that differs.
    (alone,) = cf.runs_table([cf.load_checkpoint(two_runs[0])]).splitlines()
    assert alone.split()[:3] == [two_runs[0].name, "30", "steps"]


def test_compare_runs_draws_one_val_curve_per_run(two_runs: list[Path]) -> None:
    figure = cf.compare_runs(two_runs)
    assert isinstance(figure, Figure)
    axes = figure.axes[0]
    curves = axes.get_lines()
    assert len(curves) == 2
    for curve, path in zip(curves, two_runs):
        history = cf.load_checkpoint(path).history
        assert list(curve.get_xdata()) == history.iters and list(curve.get_ydata()) == history.val_loss
    labels = [text.get_text() for text in axes.get_legend().get_texts()]
    assert labels == [f"{two_runs[0].stem} (block_size=8)", f"{two_runs[1].stem} (block_size=12)"]


def test_compare_runs_labels_stand_apart_inside_the_axes(tmp_path: Path, tokenizer) -> None:
    """"best run" and "within noise of the best" for three runs ending side by side: each label
    readable (none over another or the legend) and inside the axes, not under the x axis."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text

    from .test_noise import saved_run

    paths = [saved_run(tmp_path, tokenizer, f"{name}.pt", final, [0.02, 0.01, 0.0094], n_layer=layers)
             for name, final, layers in (("a", 1.7503, 2), ("b", 1.7600, 3), ("c", 1.7550, 4))]
    figure = cf.compare_runs(paths, seed_sd=0.01)  # gaps of 0.97 and 0.47 seed s.d.: within noise
    FigureCanvasAgg(figure).draw()
    axes = figure.axes[0]
    assert [text.get_text() for text in axes.texts] == ["best run", *["within noise of the best"] * 2]
    boxes = [Text.get_window_extent(note) for note in axes.texts]  # the words, not the line to the marker
    inside = axes.get_window_extent()
    legend = axes.get_legend().get_window_extent()
    for index, box in enumerate(boxes):
        assert inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0 and box.y1 <= inside.y1
        assert not box.overlaps(legend)
        assert not any(box.overlaps(other) for other in boxes[index + 1:])


def test_compare_runs_and_runs_table_refuse_bad_input(two_runs: list[Path], tmp_path: Path, tokenizer) -> None:
    for bad in ([], str(two_runs[0]), [42]):
        with pytest.raises(ValueError):
            cf.runs_table(bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            cf.compare_runs(bad)  # type: ignore[arg-type]
    with pytest.raises(cf.CheckpointError, match="does not exist"):
        cf.runs_table([tmp_path / "missing.pt"])
    weights_only = cf.save_checkpoint(tmp_path / "w.pt", tiny_model(), tokenizer)
    with pytest.raises(ValueError, match="no History"):
        cf.compare_runs([weights_only])


def test_live_plot_draws_each_evaluation_and_the_final_state(splits, tmp_path: Path) -> None:
    train, val = splits
    path = tmp_path / "live.png"
    with cf.LivePlot(path=path, min_seconds=0.0) as live:
        history = cf.train(tiny_model(), train, val, cf.TrainConfig(max_iters=30, **TINY), on_evaluation=live)
    assert live.draws == len(history.iters) + 1  # each evaluation, then the final state on exit
    assert path.read_bytes().startswith(b"\x89PNG")
    throttled = cf.LivePlot(min_seconds=3600.0)
    cf.train(tiny_model(), train, val, cf.TrainConfig(max_iters=30, **TINY), on_evaluation=throttled)
    assert throttled.draws == 1 and throttled.history is not None and throttled.history.iters[-1] == 30


def test_plot_losses_marks_the_best_evaluation(splits) -> None:
    train, val = splits
    history = cf.train(tiny_model(), train, val, cf.TrainConfig(max_iters=20, **TINY))
    labels = [t.get_text() for t in cf.plot_losses(history).axes[0].get_legend().get_texts()]
    assert f"best val {history.best_val_loss:.4f} at step {history.best_iter}" in labels


def test_thread_count_is_measured_unless_given(splits, capsys, monkeypatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS")  # the tests' 1 thread (conftest) would leave nothing to measure
    if free_cores() < available_cores():  # tests/test_threads.py: then nothing is measured
        pytest.skip("other processes are running on this machine's cores now")
    train, _ = splits
    model_config = tiny_model().config
    config = cf.TrainConfig(batch_size=8)
    rng = torch.get_rng_state()
    chosen = cf.choose_num_threads(model_config, config, train, torch.device("cpu"))
    assert torch.equal(torch.get_rng_state(), rng)  # training's random stream is untouched
    printed = capsys.readouterr().out
    timings = {int(t): float(ms) for t, ms in re.findall(r"(\d+) thread\(s\) ([\d.]+) ms", printed)}
    assert 1 in timings and all(ms > 0 for ms in timings.values()) and "training with" in printed
    # 1 thread when it measured faster; else automatic (all cores, 1 while others take cores).
    assert chosen.num_threads == (1 if min(timings, key=timings.__getitem__) == 1 else None)
    assert set(cf.measure_threads(model_config, config, train)) == set(timings)
    explicit = cf.TrainConfig(batch_size=8, num_threads=1)
    assert cf.choose_num_threads(model_config, explicit, train, torch.device("cpu")) is explicit
    assert "(set explicitly)" in capsys.readouterr().out


def test_automatic_compile_choice() -> None:
    assert cf.device.choose_compile(None, "cuda", "Linux", (9, 0))
    assert not cf.device.choose_compile(None, "cpu", "Linux", None)
    assert not cf.device.choose_compile(None, "cuda", "Linux", (6, 1))
    assert not cf.device.choose_compile(None, "cuda", "Windows", (9, 0))
    assert cf.device.choose_compile(True, "cpu", "Linux", None)
    assert not cf.device.choose_compile(True, "mps", "Darwin", None)
    assert not cf.device.choose_compile(False, "cuda", "Linux", (9, 0))


def test_a_failing_compile_falls_back_to_eager(splits, capsys, monkeypatch) -> None:
    """A compiler backend that fails for real inside torch.compile: the run goes on, eagerly, and
    gives exactly the eager run's numbers."""
    train, val = splits

    def broken_backend(graph_module, example_inputs):  # a torch.compile backend
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(importlib.import_module("charformer.step"), "COMPILE_BACKEND", broken_backend)
    config = cf.TrainConfig(max_iters=20, **TINY)
    eager = cf.train(tiny_model(dropout=0.1), train, val, config)
    fallen_back = cf.train(tiny_model(dropout=0.1), train, val, cf.TrainConfig(max_iters=20, compile=True, **TINY))
    printed = capsys.readouterr().out
    assert printed.count("torch.compile failed") == 1 and "training continues in eager mode" in printed
    assert fallen_back.val_loss == eager.val_loss and fallen_back.train_loss == eager.train_loss


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "charformer", *args], capture_output=True, text=True,
                          env={**os.environ, "TQDM_DISABLE": "1"})


def test_sample_command_prints_only_the_text(two_runs: list[Path], tmp_path: Path) -> None:
    args = ["sample", str(two_runs[0]), "--prompt", "ROMEO:", "--chars", "120", "--temperature", "0.8",
            "--top-k", "20", "--seed", "1"]
    first, second = run_cli(*args), run_cli(*args)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    assert first.stdout.startswith("ROMEO:") and len(first.stdout) == len("ROMEO:") + 120 + 1
    checkpoint = cf.load_checkpoint(two_runs[0])
    prompt = torch.tensor([checkpoint.tokenizer.encode("ROMEO:")])
    expected = checkpoint.model.generate(prompt, 120, temperature=0.8, top_k=20,
                                         generator=torch.Generator().manual_seed(1))
    assert first.stdout == checkpoint.tokenizer.decode(expected[0].tolist()) + "\n"
    other_seed = run_cli(*args[:-1], "2")
    assert other_seed.stdout != first.stdout

    foreign = tmp_path / "notes.pt"
    foreign.write_text("not a checkpoint")
    for bad_args, expected_error in [
        (["sample", str(tmp_path / "missing.pt")], "does not exist"),
        (["sample", str(foreign)], "checkpoint"),
        (["sample", str(two_runs[0]), "--prompt", "naïve"], "not in the vocabulary: 'ï'"),
    ]:
        result = run_cli(*bad_args)
        assert result.returncode != 0 and result.stdout == ""
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert expected_error in result.stderr


def test_train_command_still_does_a_short_run(tmp_path: Path) -> None:
    result = run_cli("train", "--max-iters", "20", "--eval-interval", "10", "--eval-iters", "1",
                     "--sample-chars", "30", "--save", str(tmp_path / "short.pt"))
    assert result.returncode == 0, result.stderr
    assert "finished 20 steps" in result.stdout
    assert cf.load_checkpoint(tmp_path / "short.pt").iteration == 20
