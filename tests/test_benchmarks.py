"""The benchmark runs end to end (a few steps of everything); its numbers are not checked here."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from .conftest import REPO


def test_benchmark_smoke_run(tmp_path) -> None:
    out = tmp_path / "results.json"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**os.environ, "TQDM_DISABLE": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "1. training step" in result.stdout and "4. sampling" in result.stdout
    results = json.loads(out.read_text())
    variants = {row["variant"].split(" (")[0] for row in results["training_step"]}
    assert {"baseline", "charformer explicit", "charformer fused", "notebook default"} <= variants
    for key in ("evaluation", "end_to_end", "sampling", "memory", "matmul_peak_gflops"):
        assert key in results
    # Like for like: each side's AdamW is named, the baseline also runs with fused AdamW, and
    # every ratio is against the baseline at the same thread count.
    rows = results["training_step"]
    assert {row["adamw"] for row in rows} == {"default (for-loop)", "fused"}
    for row in rows:
        same = next(r for r in rows if r["threads"] == row["threads"] and r["adamw"] == "default (for-loop)")
        assert row["vs_baseline_same_threads"] == row["tokens_per_s"] / same["tokens_per_s"]
    assert results["evaluation"]["threads"] == results["end_to_end"]["threads"] == 1
    for row in results["sampling"]:  # against the lecture's baseline as written and under inference_mode
        assert row["speedup"] > 0 and row["speedup_vs_inference_mode"] > 0
        assert row["baseline_inference_mode_chars_per_s"] > 0


def test_big_text_benchmark_smoke_run(tmp_path) -> None:
    """Both variants of benchmarks.big_text on a 50 kB synthetic text written in tmp_path."""
    out, text = tmp_path / "big.json", tmp_path / "big.txt"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.big_text", "--mb", "0.05", "--path", str(text), "--steps", "2",
         "--threads", "1", "--skip-encode", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**os.environ, "TQDM_DISABLE": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert text.stat().st_size == 50_000
    rows = {row["variant"]: row for row in json.loads(out.read_text())["memory"]}
    assert rows["narrow"]["dtype"] == "torch.uint8" and rows["list"]["dtype"] == "torch.int64"
    assert rows["narrow"]["characters"] == rows["list"]["characters"] == 50_000
