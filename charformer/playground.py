"""A sampling playground: prompt, length, temperature, top-k, seed and run, in ipywidgets 7.7 or 8."""

from __future__ import annotations

import asyncio
import html
import json
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Union

import torch

from .checkpoint import check_tokenizer_fits, load_checkpoint, unwrap_model
from .data import CharTokenizer, default_prompt
from .errors import CharformerError
from .model import CharTransformer

try:
    import ipywidgets as widgets
except ImportError:  # the rest of charformer works without it; the playground says what to install
    widgets = None

NOTEBOOK_MODEL = "this notebook's model"
MAX_CHARS = 5000
REDRAWS_PER_SECOND = 25  # sampling sets the pace; the view only needs to look continuous
BUSY = "a generation is running: wait for it to finish or press Stop"
SEED_RANGE = (-(2**63), 2**64 - 1)  # what torch.Generator.manual_seed accepts
TEXT_BOX = "max-height: 24em; overflow-y: auto; display: flex; flex-direction: column-reverse;"
ROW = {"width": "100%", "max_width": "56em"}  # a slider's track: ~460 px, ~11 px a temperature step
Runs = Union[str, "os.PathLike[str]", Iterable[Union[str, "os.PathLike[str]"]], None]

_Box: Any = widgets.VBox if widgets is not None else object


def unknown_characters_message(text: str, tokenizer: CharTokenizer) -> str:
    """'"☃", "é" are not in this run's 65 characters', in the order they appear; "" if none."""
    unknown = [ch for ch in dict.fromkeys(text) if ch not in tokenizer.chars]
    if not unknown:
        return ""
    names = ", ".join(json.dumps(ch, ensure_ascii=False) for ch in unknown)
    verb = "is" if len(unknown) == 1 else "are"
    return f"{names} {verb} not in this run's {tokenizer.vocab_size} characters"


def _saved_runs(folder: Path) -> list[str | os.PathLike[str]]:
    """The folder's checkpoints by name, less the empty placeholders new_run_path reserves."""
    return [path for path in sorted(folder.glob("*.pt")) if path.is_file() and path.stat().st_size > 0]


def _checked_runs(runs: Runs) -> tuple[Path | None, list[str | os.PathLike[str]]]:
    """The folder to list again on each Generate (None for a fixed list), and the runs now."""
    if isinstance(runs, (str, os.PathLike)):
        if Path(runs).suffix == ".pt" or Path(runs).is_file():
            raise ValueError(f"runs must be a list of checkpoint paths or a folder of them, "
                             f"not one checkpoint: runs=[{str(runs)!r}]")
        return Path(runs), _saved_runs(Path(runs))
    paths: list[str | os.PathLike[str]] = []
    for path in () if runs is None else runs:
        if not isinstance(path, (str, os.PathLike)):
            raise ValueError(f"runs must hold checkpoint paths, got {type(path).__name__}")
        if all(Path(path) != Path(seen) for seen in paths):
            paths.append(path)
    return None, paths


def _run_labels(paths: list[str | os.PathLike[str]]) -> list[str]:
    """Each run's file name, with as many of its folders as tell it from the other runs."""
    parts = [Path(path).parts for path in paths]
    longest = max(map(len, parts), default=0)  # the paths differ, so at the latest their whole parts do
    tails = (next(own[-n:] for n in range(1, longest + 1) if [other[-n:] for other in parts].count(own[-n:]) == 1)
             for own in parts)
    return [str(Path(*tail)) for tail in tails]


def _one_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


class SamplingPlayground(_Box):
    """Sample from the notebook's model, or a saved run, and watch the text appear; Stop works mid-way.
    A folder as `runs` is listed again on each Generate (ipywidgets says nothing when a dropdown
    opens: jupyter-widgets/ipywidgets#3177); `generate()` gives what `model.generate` gives."""

    def __init__(self, model: CharTransformer, tokenizer: CharTokenizer, *, runs: Runs = None) -> None:
        if widgets is None:
            raise ImportError("cf.SamplingPlayground needs ipywidgets, which is not installed: pip install ipywidgets")
        self.model = unwrap_model(model)
        check_tokenizer_fits(tokenizer, self.model)
        self._runs_folder, run_paths = _checked_runs(runs)
        self.tokenizer = tokenizer
        self._loaded: dict[str, tuple[CharTransformer, CharTokenizer]] = {}
        self._text = ""
        self._error = ""
        self._running = False
        self._stop_requested = False  # set by stop(), read before each character, cleared at the end
        self._listing = False
        self._task: asyncio.Task[None] | None = None

        wide, label = {"description_width": "initial"}, {"description_width": "13em"}
        self.prompt = widgets.Textarea(value="", description="prompt", layout=widgets.Layout(width="100%"),
                                       placeholder="empty: a newline (or the vocabulary's first character)")
        self.chars = widgets.IntSlider(value=500, min=1, max=MAX_CHARS, description="characters",
                                       style=label, layout=widgets.Layout(**ROW))
        self.temperature = widgets.FloatSlider(value=1.0, min=0.0, max=2.0, step=0.05, style=label,
                                               description="temperature (0: greedy)", layout=widgets.Layout(**ROW))
        self.top_k = widgets.IntSlider(value=0, min=0, max=tokenizer.vocab_size, description="top-k (0: off)",
                                       style=label, layout=widgets.Layout(**ROW))
        self.seed = widgets.IntText(value=1337, description="seed", style=wide,
                                    layout=widgets.Layout(width="180px"))
        self.run = widgets.Dropdown(options=[(NOTEBOOK_MODEL, NOTEBOOK_MODEL)], description="run", style=wide)
        self.generate_button = widgets.Button(description="Generate", button_style="primary", icon="play")
        self.stop_button = widgets.Button(description="Stop", icon="stop", disabled=True)
        self.error_view = widgets.HTML(layout=widgets.Layout(display="none"))
        self.error_view.add_class("charformer-playground-error")
        self.text_view = widgets.HTML()
        self.text_view.add_class("charformer-playground-text")
        super().__init__(children=[
            self.prompt, self.chars, self.temperature, self.top_k,
            widgets.HBox([self.seed, self.run]),
            widgets.HBox([self.generate_button, self.stop_button]),
            self.error_view,
            self.text_view,
        ])
        self._list_runs(run_paths)
        self.generate_button.on_click(self._on_generate_clicked)
        self.stop_button.on_click(lambda _button: self.stop())
        self.run.observe(self._on_run_chosen, names="value")

    @property
    def text(self) -> str:
        """The prompt and the characters written so far (the last generation's, once it ended)."""
        return self._text

    @property
    def error(self) -> str:
        """Why the last Generate did nothing (or stopped); "" after a good generation."""
        return self._error

    @property
    def generating(self) -> bool:
        return self._running or (self._task is not None and not self._task.done())

    def generate(self) -> str:
        """Sample to the end and return prompt + new text; bad input says why in `error`."""
        request = self._request()
        if request is not None:
            for _ in self._written(*request):
                pass
        return self._text

    def stop(self) -> None:
        """End a running generation after the current character (or before the first), keeping the text."""
        if self.generating:
            self._stop_requested = True

    def _on_generate_clicked(self, _button: Any = None) -> None:
        """In a kernel: a task on its event loop, yielding between characters. Else: to the end."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.generate()
            return
        request = self._request()
        if request is not None:
            self._running = True  # a second click, or Stop, before the task's first step counts too
            self.stop_button.disabled = False
            self._task = loop.create_task(self._write_on_the_event_loop(*request))

    async def _write_on_the_event_loop(self, prompt: str, chars: list[str], tokens: Iterator[int]) -> None:
        for _ in self._written(prompt, chars, tokens):
            await asyncio.sleep(0)  # the kernel handles Stop, other widgets and cells here

    def _written(self, prompt: str, chars: list[str], tokens: Iterator[int]) -> Iterator[None]:
        """Write the prompt, then each token's character, into the view; yield after each character."""
        self._running = True
        self._show_error("")
        self.stop_button.disabled = False
        written = [prompt]
        last_redraw = -float("inf")
        try:
            while not self._stop_requested:  # before each character, so no token is sampled after Stop
                token = next(tokens, None)
                if token is None:
                    break
                written.append(chars[token])
                now = time.monotonic()
                if now - last_redraw >= 1.0 / REDRAWS_PER_SECOND:
                    self._show_text("".join(written))
                    last_redraw = now
                yield
        except Exception as error:  # e.g. out of memory mid-way: keep what was written, say why
            self._show_error(f"sampling stopped: {type(error).__name__}: {_one_line(error)}")
        finally:
            tokens.close()
            self._show_text("".join(written))
            if self._error == BUSY:  # said to a Generate pressed meanwhile; no longer true
                self._show_error("")
            self._running = False
            self._stop_requested = False
            self.stop_button.disabled = True

    def _request(self) -> tuple[str, list[str], Iterator[int]] | None:
        """The prompt, vocabulary and token stream the controls ask for; None, saying why in `error`."""
        if self.generating:
            self._show_error(BUSY)
            return None
        if self._runs_folder is not None:
            self._list_runs(_saved_runs(self._runs_folder))
        run = self._chosen_run()
        if run is None:
            return None
        model, tokenizer = run
        prompt = self.prompt.value or default_prompt(tokenizer)
        message = unknown_characters_message(prompt, tokenizer)
        seed = int(self.seed.value)
        if not message and not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
            message = f"the seed must be between {SEED_RANGE[0]} and {SEED_RANGE[1]}, got {seed}"
        if message:
            self._show_error(message)
            return None
        idx = torch.tensor([tokenizer.encode(prompt)], dtype=torch.long, device=next(model.parameters()).device)
        tokens = model.stream(idx, int(self.chars.value), temperature=float(self.temperature.value),
                              top_k=int(self.top_k.value) or None, generator=torch.Generator().manual_seed(seed))
        return prompt, tokenizer.chars, tokens

    def _chosen_run(self) -> tuple[CharTransformer, CharTokenizer] | None:
        """The chosen run's model and vocabulary; a saved run is loaded once, onto the model's device."""
        path = self.run.value
        if path == NOTEBOOK_MODEL:
            return self.model, self.tokenizer
        key = str(path)
        if key not in self._loaded:
            try:
                checkpoint = load_checkpoint(path, device=next(self.model.parameters()).device)
            except (CharformerError, OSError, RuntimeError, ValueError) as error:
                self._show_error(f"could not load run {self.run.label}: {_one_line(error)}")
                return None
            self._loaded[key] = (checkpoint.model, checkpoint.tokenizer)
        return self._loaded[key]

    def _list_runs(self, paths: list[str | os.PathLike[str]]) -> None:
        """Offer these runs; the chosen one stays listed and chosen, even if its file went."""
        chosen = self.run.value
        if chosen != NOTEBOOK_MODEL and all(Path(path) != Path(chosen) for path in paths):
            paths = [*paths, chosen]  # sampled from memory, or Generate says why it cannot load
        if [Path(path) for path in paths] == [Path(path) for _label, path in self.run.options[1:]]:
            return
        labels = _run_labels(paths)
        label_of = {str(path): label for path, label in zip(paths, labels)}
        self._listing = True  # new options pass the value through the first option: not a choice
        try:  # the dropdown's equality: a run is chosen by its path (as str or Path) or by its label
            self.run.equals = lambda option, proposed: isinstance(proposed, (str, os.PathLike)) and (
                str(proposed) in (str(option), label_of.get(str(option))))
            self.run.options = [(NOTEBOOK_MODEL, NOTEBOOK_MODEL), *zip(labels, paths)]
            self.run.value = chosen
        finally:
            self._listing = False

    def _on_run_chosen(self, _change: Any) -> None:
        """Load the run now, so a bad file is reported at once and top-k fits its vocabulary."""
        if self._listing:
            return
        run = self._chosen_run()
        if run is not None:
            self.top_k.max = run[1].vocab_size
            self._show_error("")

    def _show_text(self, text: str) -> None:
        self._text = text
        self.text_view.value = (  # a box of bounded height, showing its end (column-reverse) as it grows
            f'<div style="{TEXT_BOX}"><pre style="flex: none; white-space: pre-wrap; margin: 0; font-family: '
            f'var(--jp-code-font-family, monospace);">{html.escape(text)}</pre></div>'
        )

    def _show_error(self, message: str) -> None:
        self._error = message
        self.error_view.value = f'<span style="color: #c62828;">{html.escape(message)}</span>'
        self.error_view.layout.display = "" if message else "none"
