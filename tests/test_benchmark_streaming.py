"""The streaming benchmark runs end to end on its own (a few characters); its numbers are not checked."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from .conftest import REPO

pytest.importorskip("ipywidgets")


def test_streaming_benchmark_smoke_run(tmp_path) -> None:
    out = tmp_path / "streaming.json"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.streaming", "--quick", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ, "TQDM_DISABLE": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "time to the first character" in result.stdout
    results = json.loads(out.read_text())
    assert [row["variant"] for row in results["rows"]] == [
        "generate", "stream", "playground generate()", "playground button (event loop)"]
    assert results["chars"] == 50 and results["first_shown_s"] > 0
