"""Checkpoints: round trip, atomic writes under real faults, and clear errors for bad files."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import charformer as cf
from charformer.checkpoint import temp_path_for

from .conftest import REPO, tiny_model


def saved(tmp_path: Path, tokenizer: cf.CharTokenizer, name: str = "model.pt", **overrides: object) -> tuple[Path, cf.CharTransformer]:
    model = tiny_model(**overrides)
    path = cf.save_checkpoint(tmp_path / name, model, tokenizer)
    return path, model


def test_round_trip_gives_identical_logits(tmp_path: Path, tokenizer: cf.CharTokenizer, data: torch.Tensor) -> None:
    model = tiny_model(positional="sinusoidal", dropout=0.1)
    history = cf.History(iters=[0, 10], train_loss=[4.2, 3.0], val_loss=[4.2, 3.1], elapsed=[0.1, 0.5], iteration=10)
    config = cf.TrainConfig(max_iters=10)
    path = cf.save_checkpoint(tmp_path / "sub" / "m.pt", model, tokenizer, train_config=config, history=history)
    checkpoint = cf.load_checkpoint(path)
    assert checkpoint.model_config == model.config
    assert checkpoint.tokenizer == tokenizer
    assert checkpoint.train_config == config
    assert checkpoint.history == history
    assert checkpoint.iteration == 10
    assert not checkpoint.model.training
    x, _ = cf.get_batch(data, 2, 16, generator=torch.Generator().manual_seed(0))
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x)[0], checkpoint.model(x)[0])
    prompt = torch.zeros((1, 1), dtype=torch.long)
    assert torch.equal(
        model.generate(prompt, 40, generator=torch.Generator().manual_seed(1)),
        checkpoint.model.generate(prompt, 40, generator=torch.Generator().manual_seed(1)),
    )


def test_compiled_model_saves_plain_weights(tmp_path: Path, tokenizer: cf.CharTokenizer) -> None:
    model = tiny_model()
    compiled = torch.compile(model)  # wrapping only; nothing is compiled until it runs
    path = cf.save_checkpoint(tmp_path / "c.pt", compiled, tokenizer)
    state = torch.load(path, weights_only=True)["model_state"]
    assert not any(key.startswith("_orig_mod") for key in state)
    assert cf.load_checkpoint(path).model_config == model.config


def test_the_file_is_plain_tensors(tmp_path: Path, tokenizer: cf.CharTokenizer) -> None:
    path, _ = saved(tmp_path, tokenizer)
    payload = torch.load(path, weights_only=True)  # would raise if it needed pickle
    assert payload["format"] == "charformer-checkpoint"


def test_save_rejects_a_mismatched_tokenizer(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        cf.save_checkpoint(tmp_path / "m.pt", tiny_model(), cf.CharTokenizer("abc"))
    assert not list(tmp_path.iterdir())


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(cf.CheckpointError, match="does not exist") as caught:
        cf.load_checkpoint(tmp_path / "nope.pt")
    assert str(tmp_path / "nope.pt") in str(caught.value)


@pytest.mark.parametrize("keep", [0, 10, 1000, 0.5, 0.99])
def test_truncated_files(tmp_path: Path, tokenizer: cf.CharTokenizer, keep: float) -> None:
    path, _ = saved(tmp_path, tokenizer)
    raw = path.read_bytes()
    cut = int(len(raw) * keep) if isinstance(keep, float) else keep
    path.write_bytes(raw[:cut])
    with pytest.raises(cf.CheckpointError) as caught:
        cf.load_checkpoint(path)
    assert str(path) in str(caught.value)


def test_corrupted_bytes(tmp_path: Path, tokenizer: cf.CharTokenizer) -> None:
    path, _ = saved(tmp_path, tokenizer)
    raw = bytearray(path.read_bytes())
    for i in range(0, len(raw), 97):
        raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(cf.CheckpointError, match=str(path).replace("\\", "\\\\")):
        cf.load_checkpoint(path)


def test_foreign_files(tmp_path: Path) -> None:
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(3)}, plain)
    for path in (text, plain):
        with pytest.raises(cf.CheckpointError) as caught:
            cf.load_checkpoint(path)
        assert str(path) in str(caught.value)


class _CreatesAFile:
    """Unpickling this would create a file: the payload of a malicious checkpoint."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (str(self.target), "w"))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": "charformer-checkpoint", "version": 1, "x": _CreatesAFile(marker)}, path)
    with pytest.raises(cf.CheckpointError, match="refused") as caught:
        cf.load_checkpoint(path)
    assert str(path) in str(caught.value)
    assert not marker.exists()


def test_shape_mismatch_names_the_difference(tmp_path: Path, tokenizer: cf.CharTokenizer) -> None:
    path, _ = saved(tmp_path, tokenizer)
    payload = torch.load(path, weights_only=True)
    payload["model_state"]["head.weight"] = torch.zeros(65, 16)
    torch.save(payload, path)
    with pytest.raises(cf.CheckpointError) as caught:
        cf.load_checkpoint(path)
    assert "head.weight" in str(caught.value) and "(65, 16)" in str(caught.value)
    payload["model_config"]["vocab_size"] = 60
    torch.save(payload, path)
    with pytest.raises(cf.CheckpointError, match="vocab"):
        cf.load_checkpoint(path)


WRITER = textwrap.dedent(
    """
    import resource, signal, sys, torch, charformer as cf
    path, limit, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if limit:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    tok = cf.CharTokenizer.from_text(open(sys.argv[4], encoding="utf-8").read())
    model = cf.CharTransformer(cf.ModelConfig(vocab_size=65, n_embd=size, n_head=4, n_layer=4))
    print("writing", flush=True)
    try:
        cf.save_checkpoint(path, model, tok)
    except cf.CheckpointError as exc:
        print("failed:", exc, flush=True)
        sys.exit(3)
    """
)


def _run_writer(tmp_path: Path, path: Path, limit: int, size: int) -> subprocess.Popen:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    return subprocess.Popen(
        [sys.executable, str(script), str(path), str(limit), str(size), str(REPO / "data" / "input.txt")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_save_that_fails_half_way_keeps_the_previous_checkpoint(tmp_path: Path, tokenizer: cf.CharTokenizer) -> None:
    path, model = saved(tmp_path, tokenizer, name="run.pt")
    before = path.read_bytes()
    writer = _run_writer(tmp_path, path, limit=200_000, size=256)  # ~13 MB checkpoint, 200 kB allowed
    out, err = writer.communicate(timeout=120)
    assert writer.returncode == 3, (out, err)
    assert "failed" in out
    assert path.read_bytes() == before
    assert cf.load_checkpoint(path).model_config == model.config
    assert not temp_path_for(path).exists()


def test_save_killed_mid_write_keeps_the_previous_checkpoint(tmp_path: Path, tokenizer: cf.CharTokenizer) -> None:
    path, model = saved(tmp_path, tokenizer, name="run.pt")
    before = path.read_bytes()
    temp = temp_path_for(path)
    writer = _run_writer(tmp_path, path, limit=0, size=1024)  # ~200 MB checkpoint
    deadline = time.monotonic() + 120
    while not (temp.exists() and temp.stat().st_size > 0) and writer.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.001)
    writer.send_signal(signal.SIGKILL)
    writer.communicate(timeout=60)
    if path.read_bytes() != before:
        pytest.skip("the writer finished before the kill landed; nothing to check this time")
    assert temp.exists(), "the kill should have left the partial temporary file behind"
    assert cf.load_checkpoint(path).model_config == model.config  # the stale temp is not read
    cf.save_checkpoint(path, model, tokenizer)  # the next save replaces the stale temp
    assert not temp.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix != ".py") == ["run.pt"]
