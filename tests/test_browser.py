"""The playground seen working in a real browser: JupyterLab in headless Chromium.

Skipped unless Debian's `chromium` (/usr/bin/chromium) and the `playwright` Python package (the
driver only; no browser download) are installed:
    apt-get install -y chromium && pip install playwright
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import REPO

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package")
pytest.importorskip("jupyterlab")
pytest.importorskip("ipywidgets")

SETUP_CELL = f"""\
import sys
sys.path.insert(0, {str(REPO)!r})
import torch
import charformer as cf

text = open({str(REPO / "data" / "input.txt")!r}, encoding="utf-8").read()
tokenizer = cf.CharTokenizer.from_text(text)
torch.manual_seed(0)
torch.set_num_threads(1)
model = cf.CharTransformer(cf.ModelConfig(vocab_size=tokenizer.vocab_size, block_size=64, n_embd=64,
                                          n_head=4, n_layer=4, dropout=0.0))
playground = cf.SamplingPlayground(model, tokenizer, runs="runs")  # a folder with no runs yet
playground.prompt.value = "ROMEO:"
playground
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_notebook(path: Path) -> None:
    notebook = {
        "cells": [
            {"cell_type": "code", "execution_count": None, "id": "setup", "metadata": {},
             "outputs": [], "source": SETUP_CELL},
            {"cell_type": "code", "execution_count": None, "id": "meanwhile", "metadata": {},
             "outputs": [], "source": "print('the kernel answered', 6 * 7)"},
            {"cell_type": "code", "execution_count": None, "id": "later", "metadata": {}, "outputs": [],
             "source": "import os\nos.makedirs('runs', exist_ok=True)\n"
                       "print('saved', cf.save_checkpoint('runs/later.pt', model, tokenizer))"},
        ],
        "metadata": {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python",
                                    "name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(notebook), encoding="utf-8")


@pytest.fixture
def jupyterlab(tmp_path: Path) -> Iterator[str]:
    """A headless JupyterLab on a free localhost port, serving a folder with play.ipynb."""
    root = tmp_path / "root"
    root.mkdir()
    write_notebook(root / "play.ipynb")
    port, token = free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
        "OMP_NUM_THREADS": "1",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         "--ServerApp.port_retries=0", "--allow-root", "--LabApp.news_url=None",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        env=env, cwd=root, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "server.log", "wb"),
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("JupyterLab did not start:\n" + (tmp_path / "server.log").read_text()[-3000:])
                time.sleep(0.5)
        yield f"{base}/lab/tree/play.ipynb?token={token}"
    finally:
        stop_process_group(server)


def stop_process_group(process: subprocess.Popen) -> None:
    """The server and the kernel it started (their own session, led by the server)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=30)
            return
        except subprocess.TimeoutExpired:
            continue


def shown_text(page: "sync_api.Page") -> str:
    return page.locator(".charformer-playground-text pre").inner_text()


def error_line(page: "sync_api.Page") -> str:
    return page.locator(".charformer-playground-error").inner_text().strip()


def run_cell(page: "sync_api.Page", index: int) -> None:
    """Select cell `index` and press the toolbar's Run button, again if the cell did not start
    (a press while the kernel is still connecting can be lost)."""
    prompt = page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".jp-InputArea-prompt")
    for _ in range(6):
        prompt.click()
        page.locator("[data-command='notebook:run-cell-and-select-next']").first.click()
        try:
            sync_api.expect(prompt).not_to_have_text("[ ]:", timeout=20_000)  # "[*]:", then "[1]:"
            return
        except AssertionError:
            continue
    raise AssertionError(f"cell {index} never started running")


def test_move_a_slider_generate_see_the_text_grow_and_stop(jupyterlab: str, tmp_path: Path) -> None:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                             args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(90_000)
        try:
            drive_the_playground(page, jupyterlab, tmp_path)
        except BaseException:
            page.screenshot(path=str(tmp_path / "failure.png"))  # kept under pytest's tmp_path
            print("cell outputs at the failure:",
                  page.locator(".jp-Notebook .jp-OutputArea").all_inner_texts())
            raise
        finally:
            browser.close()


def drive_the_playground(page: "sync_api.Page", url: str, tmp_path: Path) -> None:
    page.goto(url)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=180_000)
    run_cell(page, 0)
    generate = page.get_by_role("button", name="Generate")
    generate.wait_for(timeout=180_000)  # the widget rendered in the cell's output

    # Each slider has a row: the temperature's 40 steps get at least 4 px of track each (was 45 px in all).
    track = page.locator(".widget-hslider", has_text="temperature").locator(".slider-container").bounding_box()
    assert track is not None and track["width"] >= 4 * 40, track

    # Move a control: the characters slider from 500 to its end (5000) with the keyboard.
    slider = page.locator(".widget-hslider", has_text="characters")
    slider.locator(".noUi-handle").focus()
    page.keyboard.press("End")
    assert slider.locator(".widget-readout").inner_text().strip() == "5000"

    generate.click()
    lengths = [len(shown_text(page))]
    deadline = time.monotonic() + 120
    while lengths[-1] < 700 and time.monotonic() < deadline:  # past the slider's old 500
        page.wait_for_timeout(100)
        lengths.append(len(shown_text(page)))
    page.screenshot(path=str(tmp_path / "while-writing.png"))
    assert len(set(lengths)) >= 4, lengths  # the view grew step by step while written
    assert lengths == sorted(lengths)
    generate.click()  # a second Generate during the run: refused, and said so in red
    sync_api.expect(page.locator(".charformer-playground-error")).to_contain_text("a generation is running")

    # The kernel stays responsive: another cell runs while the text is being written.
    run_cell(page, 1)
    page.get_by_text("the kernel answered 42").wait_for(timeout=30_000)
    after_cell = len(shown_text(page))
    page.wait_for_timeout(500)
    assert len(shown_text(page)) > after_cell  # and the writing went on

    stop = page.get_by_role("button", name="Stop")
    stop.click()
    sync_api.expect(stop).to_be_disabled(timeout=30_000)  # the generation ended
    stopped = shown_text(page)
    page.wait_for_timeout(1500)
    assert shown_text(page) == stopped  # nothing more is written after Stop
    assert stopped.startswith("ROMEO:") and 700 <= len(stopped) < len("ROMEO:") + 5000
    assert error_line(page) == ""  # the red line went with the run it spoke of

    # A run saved after the cell ran is offered once Generate is pressed; a whole 5000-character
    # sample stays in a box of bounded height that shows its end.
    run_cell(page, 2)
    page.get_by_text("saved runs/later.pt").wait_for(timeout=60_000)
    generate.click()
    sync_api.expect(stop).to_be_enabled(timeout=30_000)  # the kernel took the click
    sync_api.expect(stop).to_be_disabled(timeout=180_000)  # and wrote all 5000 characters
    assert len(shown_text(page)) == len("ROMEO:") + 5000 and error_line(page) == ""
    assert "later.pt" in page.locator(".widget-dropdown select option").all_inner_texts()
    box = page.locator(".charformer-playground-text pre").evaluate(
        "pre => { const box = pre.parentElement.getBoundingClientRect(); return {height: box.height,"
        " bottom: box.bottom, end: pre.getBoundingClientRect().bottom, scrolls: pre.parentElement.scrollHeight}; }")
    page.screenshot(path=str(tmp_path / "after-5000.png"))
    assert 100 < box["height"] <= 400 < box["scrolls"], box  # 24 em high; the text scrolls inside
    assert abs(box["end"] - box["bottom"]) <= 2, box  # its end in view
