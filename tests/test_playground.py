"""cf.SamplingPlayground driven in code: its text against generate, its messages, saved runs, Stop."""

from __future__ import annotations

import asyncio
import html
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import charformer as cf
from charformer.playground import BUSY, NOTEBOOK_MODEL, REDRAWS_PER_SECOND

from .conftest import REPO, tiny_config, tiny_model

widgets = pytest.importorskip("ipywidgets")


def expected_text(model: cf.CharTransformer, tokenizer: cf.CharTokenizer, prompt: str, chars: int,
                  temperature: float, top_k: int, seed: int) -> str:
    """The issue's formula, written out."""
    prompt_ids = torch.tensor([tokenizer.encode(prompt)], dtype=torch.long)
    out = model.generate(prompt_ids, chars, temperature=temperature, top_k=None if top_k == 0 else top_k,
                         generator=torch.Generator().manual_seed(seed))
    return tokenizer.decode(out[0].tolist())


def set_controls(playground: cf.SamplingPlayground, *, prompt: str = "ROMEO:", chars: int = 60,
                 temperature: float = 1.0, top_k: int = 0, seed: int = 1) -> None:
    playground.prompt.value = prompt
    playground.chars.value = chars
    playground.temperature.value = temperature
    playground.top_k.value = top_k
    playground.seed.value = seed


@pytest.fixture(scope="module")
def trained(splits: tuple[torch.Tensor, torch.Tensor]) -> cf.CharTransformer:
    """A tiny model 30 steps into training on the shipped text: it has preferences to sample."""
    model = tiny_model(dropout=0.1)
    train_data, val_data = splits
    cf.train(model, train_data, val_data,
             cf.TrainConfig(max_iters=30, eval_interval=30, eval_iters=1, batch_size=8))
    return model


@pytest.fixture(scope="module")
def lowercase_run(tmp_path_factory: pytest.TempPathFactory, text: str) -> tuple[Path, cf.CharTokenizer]:
    """A saved run with its own, smaller vocabulary (lower-case text), written by a real train run."""
    lower = text[:30_000].lower()
    tokenizer = cf.CharTokenizer.from_text(lower)
    data = torch.tensor(tokenizer.encode(lower), dtype=torch.long)
    train_data, val_data = cf.train_val_split(data)
    torch.manual_seed(0)
    model = cf.CharTransformer(tiny_config(vocab_size=tokenizer.vocab_size))
    path = tmp_path_factory.mktemp("runs") / "lower-001.pt"
    cf.train(model, train_data, val_data, cf.TrainConfig(max_iters=10, eval_interval=10, eval_iters=1, batch_size=8),
             tokenizer=tokenizer, checkpoint_path=path)
    return path, tokenizer


def test_controls_are_public_widgets_with_the_issues_ranges(trained, tokenizer) -> None:
    playground = cf.SamplingPlayground(trained, tokenizer)
    assert isinstance(playground, widgets.Box)
    assert (playground.chars.min, playground.chars.max) == (1, 5000)
    assert (playground.temperature.min, playground.temperature.max) == (0, 2)
    assert (playground.top_k.min, playground.top_k.max) == (0, tokenizer.vocab_size)
    assert isinstance(playground.seed.value, int)
    assert isinstance(playground.prompt, widgets.Textarea)
    assert isinstance(playground.run, widgets.Dropdown)
    assert playground.run.label == "this notebook's model"
    assert isinstance(playground.generate_button, widgets.Button)
    assert isinstance(playground.stop_button, widgets.Button)
    assert playground.text == "" and playground.error == ""


@pytest.mark.parametrize(
    "controls",
    [
        dict(prompt="ROMEO:", chars=80, temperature=1.0, top_k=0, seed=1),
        dict(prompt="ROMEO:", chars=80, temperature=0.0, top_k=0, seed=1),  # greedy
        dict(prompt="ROMEO:", chars=80, temperature=0.0, top_k=7, seed=99),  # greedy ignores seed, top-k
        dict(prompt="First Citizen:\nBefore we proceed any further, hear me speak.", chars=50,
             temperature=0.7, top_k=10, seed=5),  # longer than block_size 16
        dict(prompt="a", chars=1, temperature=2.0, top_k=65, seed=0),
        dict(prompt="KING", chars=40, temperature=1.3, top_k=1, seed=-4),
    ],
)
def test_generate_equals_the_formula(trained, tokenizer, controls: dict) -> None:
    playground = cf.SamplingPlayground(trained, tokenizer)
    set_controls(playground, **controls)
    text = playground.generate()
    assert text == expected_text(trained, tokenizer, **controls)
    assert playground.text == text and playground.error == ""
    assert text.startswith(controls["prompt"]) and len(text) == len(controls["prompt"]) + controls["chars"]
    assert html.escape(text) in playground.text_view.value  # and shown, all of it


def test_same_controls_same_text_other_seed_other_text(trained, tokenizer) -> None:
    playground = cf.SamplingPlayground(trained, tokenizer)
    set_controls(playground, chars=200, seed=11)
    first = playground.generate()
    playground.seed.value = 12
    other = playground.generate()
    playground.seed.value = 11
    assert playground.generate() == first != other


def test_the_button_from_code_runs_to_the_end(trained, tokenizer) -> None:
    playground = cf.SamplingPlayground(trained, tokenizer)
    set_controls(playground, chars=30, temperature=0.9, top_k=5, seed=2)
    playground.generate_button.click()  # no event loop running: nothing to yield to
    assert playground.text == expected_text(trained, tokenizer, "ROMEO:", 30, 0.9, 5, 2)
    assert not playground.generating


def test_empty_prompt_starts_from_a_newline(trained, tokenizer) -> None:
    playground = cf.SamplingPlayground(trained, tokenizer)
    set_controls(playground, prompt="", chars=40, seed=3)
    text = playground.generate()
    assert text == expected_text(trained, tokenizer, "\n", 40, 1.0, 0, 3)
    assert text.startswith("\n") and len(text) == 41


def test_an_empty_prompt_without_a_newline_in_the_vocabulary_starts_as_the_cli_does(text) -> None:
    """The vocabulary's first character (the CLI's `default_prompt`), never a "\n" it lacks."""
    one_line = text[:20_000].replace("\n", " ")
    tokenizer = cf.CharTokenizer.from_text(one_line)
    assert "\n" not in tokenizer.chars and tokenizer.chars[0] == " "
    model = tiny_model(vocab_size=tokenizer.vocab_size)
    playground = cf.SamplingPlayground(model, tokenizer)
    set_controls(playground, prompt="", chars=30, seed=3)
    assert playground.generate() == expected_text(model, tokenizer, " ", 30, 1.0, 0, 3)
    assert playground.error == ""


def test_unknown_prompt_characters_are_named_and_nothing_is_generated(trained, tokenizer) -> None:
    playground = cf.SamplingPlayground(trained, tokenizer)
    set_controls(playground, chars=20)
    before = playground.generate()
    playground.prompt.value = "☃ snow é☃"
    assert playground.generate() == before
    assert playground.error == '"☃", "é" are not in this run\'s 65 characters'
    assert playground.text == before
    assert "not in this run" in playground.error_view.value  # shown in the widget
    assert playground.error_view.layout.display != "none"
    playground.prompt.value = "tab\there"
    playground.generate()
    assert playground.error == '"\\t" is not in this run\'s 65 characters'
    playground.prompt.value = "ROMEO:"
    assert playground.generate() == before
    assert playground.error == "" and playground.error_view.layout.display == "none"


def test_a_seed_torch_cannot_take_is_a_message(trained, tokenizer) -> None:
    playground = cf.SamplingPlayground(trained, tokenizer)
    playground.seed.value = 2**70
    assert playground.generate() == ""
    assert "seed must be between" in playground.error


def test_a_saved_run_with_its_own_vocabulary(trained, tokenizer, lowercase_run) -> None:
    path, run_tokenizer = lowercase_run
    playground = cf.SamplingPlayground(trained, tokenizer, runs=[path])
    assert playground.run.options == ((NOTEBOOK_MODEL, NOTEBOOK_MODEL), ("lower-001.pt", path))
    playground.run.value = path
    assert playground.top_k.max == run_tokenizer.vocab_size < tokenizer.vocab_size
    set_controls(playground, prompt="romeo:", chars=50, temperature=0.8, top_k=5, seed=4)
    saved = cf.load_checkpoint(path)
    text = playground.generate()
    assert text == expected_text(saved.model, saved.tokenizer, "romeo:", 50, 0.8, 5, 4)
    assert set(text) <= set(run_tokenizer.chars)
    playground.prompt.value = "ROMEO:"
    assert playground.generate() == text
    assert playground.error == (
        f'"R", "O", "M", "E" are not in this run\'s {run_tokenizer.vocab_size} characters')
    playground.run.value = NOTEBOOK_MODEL
    assert playground.top_k.max == tokenizer.vocab_size
    assert playground.generate() == expected_text(trained, tokenizer, "ROMEO:", 50, 0.8, 5, 4)


def test_a_run_is_chosen_by_its_path_as_str_or_path_or_by_its_label(trained, tokenizer, lowercase_run) -> None:
    path, _ = lowercase_run
    playground = cf.SamplingPlayground(trained, tokenizer, runs=[path])
    for choice in (str(path), "lower-001.pt", path):
        playground.run.value = NOTEBOOK_MODEL
        playground.run.value = choice
        assert playground.run.value == path and playground.run.index == 1
    playground.run.label = NOTEBOOK_MODEL
    playground.run.label = "lower-001.pt"
    assert playground.run.value == path
    with pytest.raises(Exception, match="Invalid selection"):
        playground.run.value = "other.pt"


def test_a_saved_run_is_loaded_once(trained, tokenizer, lowercase_run, tmp_path) -> None:
    """Once chosen, the run samples from memory: the file may even go away."""
    source, _ = lowercase_run
    copy = tmp_path / "copy.pt"
    copy.write_bytes(source.read_bytes())
    playground = cf.SamplingPlayground(trained, tokenizer, runs=[str(copy)])
    playground.run.value = str(copy)
    set_controls(playground, prompt="the ", chars=30, seed=8)
    first = playground.generate()
    copy.unlink()
    playground.run.value = NOTEBOOK_MODEL
    playground.run.value = str(copy)
    assert playground.error == ""
    assert playground.generate() == first


def test_a_run_that_cannot_be_loaded_is_a_message(trained, tokenizer, lowercase_run, tmp_path) -> None:
    missing = tmp_path / "missing.pt"
    garbage = tmp_path / "garbage.pt"  # a real checkpoint cut in half
    real = lowercase_run[0].read_bytes()
    garbage.write_bytes(real[: len(real) // 2])
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    playground = cf.SamplingPlayground(trained, tokenizer, runs=[missing, garbage, foreign])
    assert [label for label, _ in playground.run.options[1:]] == ["missing.pt", "garbage.pt", "foreign.pt"]
    set_controls(playground, chars=10)
    before = playground.generate()
    for path, reason in ((missing, "does not exist"), (garbage, "truncated or corrupted"),
                         (foreign, "not a charformer checkpoint")):
        playground.run.value = path
        assert playground.error.startswith(f"could not load run {path.name}: ")
        assert reason in playground.error and "\n" not in playground.error
        assert playground.generate() == before  # Generate says it again, and generates nothing
        assert playground.error.startswith(f"could not load run {path.name}: ")
    playground.run.value = NOTEBOOK_MODEL
    assert playground.error == ""


def test_runs_whose_folders_share_a_name_have_distinct_labels(trained, tokenizer, tmp_path) -> None:
    runs = [tmp_path / "x" / "a" / "run.pt", tmp_path / "y" / "a" / "run.pt", tmp_path / "y" / "b" / "run.pt",
            tmp_path / "other.pt", Path("a") / "run.pt"]
    playground = cf.SamplingPlayground(trained, tokenizer, runs=runs)
    labels = [label for label, _ in playground.run.options[1:]]
    assert labels == ["x/a/run.pt", "y/a/run.pt", "b/run.pt", "other.pt", "a/run.pt"]
    assert len(set(labels)) == len(runs)


def test_a_folder_of_runs_is_listed_again_on_each_generate(trained, tokenizer, lowercase_run, tmp_path) -> None:
    """Runs saved after the playground was made (section 14's, after Run All) appear on Generate."""
    folder = tmp_path / "runs"
    playground = cf.SamplingPlayground(trained, tokenizer, runs=folder)  # not made yet: no runs
    assert playground.run.options == ((NOTEBOOK_MODEL, NOTEBOOK_MODEL),)
    folder.mkdir()
    first = folder / "first-001.pt"
    first.write_bytes(lowercase_run[0].read_bytes())
    cf.new_run_path(folder, "reserved")  # an empty placeholder: not a run yet
    set_controls(playground, chars=10)
    playground.generate_button.click()
    assert playground.run.options == ((NOTEBOOK_MODEL, NOTEBOOK_MODEL), ("first-001.pt", first))
    playground.run.value = first
    playground.top_k.value = playground.top_k.max
    top_k = playground.top_k.value
    later = folder / "later-001.pt"
    later.write_bytes(lowercase_run[0].read_bytes())
    set_controls(playground, prompt="romeo", chars=10, top_k=top_k)
    text = playground.generate()
    assert [label for label, _ in playground.run.options] == [NOTEBOOK_MODEL, "first-001.pt", "later-001.pt"]
    assert playground.run.value == first and playground.top_k.value == top_k  # the choice stands
    saved = cf.load_checkpoint(first)
    assert text == expected_text(saved.model, saved.tokenizer, "romeo", 10, 1.0, top_k, 1)
    first.unlink()  # the chosen run's file goes: it stays chosen, sampled from memory
    assert playground.generate() == text and playground.run.value == first
    playground.run.value = NOTEBOOK_MODEL
    playground.generate()
    assert [label for label, _ in playground.run.options] == [NOTEBOOK_MODEL, "later-001.pt"]


def test_runs_labels_and_bad_arguments(trained, tokenizer, tmp_path) -> None:
    a, b = tmp_path / "a" / "run.pt", tmp_path / "b" / "run.pt"
    playground = cf.SamplingPlayground(trained, tokenizer, runs=[a, b, a])
    assert [label for label, _ in playground.run.options] == [NOTEBOOK_MODEL, "a/run.pt", "b/run.pt"]
    with pytest.raises(ValueError, match="list of checkpoint paths"):
        cf.SamplingPlayground(trained, tokenizer, runs=str(a))
    with pytest.raises(ValueError, match="checkpoint paths"):
        cf.SamplingPlayground(trained, tokenizer, runs=[3])
    with pytest.raises(ValueError, match="CharTransformer"):
        cf.SamplingPlayground("model", tokenizer)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="CharTokenizer"):
        cf.SamplingPlayground(trained, "abc")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="vocab_size"):
        cf.SamplingPlayground(trained, cf.CharTokenizer("abc"))


async def until_done(playground: cf.SamplingPlayground) -> None:
    while playground.generating:
        await asyncio.sleep(0)


def test_pressed_on_an_event_loop_it_streams_and_the_loop_stays_free(trained, tokenizer) -> None:
    """As in a kernel: the button starts a task; other coroutines run between characters."""
    playground = cf.SamplingPlayground(trained, tokenizer)
    set_controls(playground, chars=300, temperature=0.9, seed=6)
    shown: list[str] = []
    playground.text_view.observe(lambda change: shown.append(change["new"]), names="value")
    ticks = 0

    async def other_work() -> None:
        nonlocal ticks
        while playground.generating:
            ticks += 1
            await asyncio.sleep(0)

    async def main() -> float:
        start = time.monotonic()
        playground.generate_button.click()
        assert playground.generating and playground.text == ""  # started, nothing sampled yet
        await asyncio.gather(other_work(), until_done(playground))
        return time.monotonic() - start

    elapsed = asyncio.run(main())
    assert playground.text == expected_text(trained, tokenizer, "ROMEO:", 300, 0.9, 0, 6)
    assert playground.error == ""
    assert ticks >= 300  # the loop ran other work between characters
    assert 2 <= len(shown) <= 2 + elapsed * REDRAWS_PER_SECOND  # first character, throttled, last


def test_stop_ends_after_the_current_character_keeping_the_text(trained, tokenizer) -> None:
    playground = cf.SamplingPlayground(trained, tokenizer)
    set_controls(playground, chars=1500, temperature=1.0, seed=7)
    full = expected_text(trained, tokenizer, "ROMEO:", 1500, 1.0, 0, 7)

    async def main() -> None:
        playground.generate_button.click()
        assert not playground.stop_button.disabled or playground.generating
        while len(playground.text) < len("ROMEO:") + 1:
            await asyncio.sleep(0)
        for _ in range(20):
            await asyncio.sleep(0)
        playground.stop_button.click()
        await until_done(playground)

    asyncio.run(main())
    assert len("ROMEO:") < len(playground.text) < len(full)
    assert full.startswith(playground.text)  # what was written is kept, exactly as sampled
    assert playground.error == "" and playground.stop_button.disabled


def test_generate_pressed_while_generating_is_a_message(trained, tokenizer) -> None:
    playground = cf.SamplingPlayground(trained, tokenizer)
    set_controls(playground, chars=2000, seed=9)

    async def main() -> None:
        playground.generate_button.click()
        await asyncio.sleep(0)
        playground.generate_button.click()
        assert playground.error == BUSY
        during = playground.generate()  # from code too: a message, not a second generation
        assert playground.error == BUSY and during == playground.text
        playground.stop()
        await until_done(playground)

    asyncio.run(main())
    assert not playground.generating
    playground.chars.value = 10
    assert playground.generate() == expected_text(trained, tokenizer, "ROMEO:", 10, 1.0, 0, 9)
    assert playground.error == ""


@pytest.mark.parametrize("end", ["finish", "stop"])
def test_the_busy_line_goes_when_the_generation_ends(trained, tokenizer, end: str) -> None:
    playground = cf.SamplingPlayground(trained, tokenizer)
    set_controls(playground, chars=40, seed=9)

    async def main() -> None:
        playground.generate_button.click()
        await asyncio.sleep(0)
        playground.generate_button.click()  # a second Generate during the run
        assert playground.error == BUSY and playground.error_view.layout.display != "none"
        if end == "stop":
            playground.stop_button.click()
        await until_done(playground)

    asyncio.run(main())
    assert playground.error == "" and playground.error_view.layout.display == "none"
    if end == "finish":
        assert len(playground.text) == len("ROMEO:") + 40


def test_stop_right_after_generate_is_pressed_writes_nothing(trained, tokenizer) -> None:
    """Before the background task's first step: honoured, not reset by the task's start."""
    playground = cf.SamplingPlayground(trained, tokenizer)
    set_controls(playground, chars=1500, seed=7)

    async def main() -> None:
        playground.generate_button.click()
        assert not playground.stop_button.disabled  # Stop can be pressed at once
        playground.stop_button.click()
        await until_done(playground)

    asyncio.run(main())
    assert playground.text == "ROMEO:" and playground.error == ""
    assert playground.stop_button.disabled and not playground.generating
    assert playground.generate() == expected_text(trained, tokenizer, "ROMEO:", 1500, 1.0, 0, 7)  # not stuck


def test_the_text_box_has_a_bounded_height_and_the_sliders_a_full_row(trained, tokenizer) -> None:
    """A 5000-character sample scrolls inside its box, showing its end; each slider spans a row, so
    the temperature's 40 steps get some 10 px each (the browser test measures it)."""
    playground = cf.SamplingPlayground(trained, tokenizer)
    set_controls(playground, chars=200)
    playground.generate()
    style = playground.text_view.value.split('style="', 1)[1].split('"', 1)[0]
    assert "max-height: 24em" in style and "overflow-y: auto" in style and "column-reverse" in style
    for slider in (playground.chars, playground.temperature, playground.top_k):
        assert slider in playground.children  # a row of its own
        assert slider.layout.width == "100%" and slider.style.description_width == "13em"


def test_the_models_modes_are_the_callers_after_a_stopped_stream(trained, tokenizer) -> None:
    playground = cf.SamplingPlayground(trained, tokenizer)
    trained.train()
    try:
        async def main() -> None:
            playground.generate_button.click()
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            assert trained.training and torch.is_grad_enabled()  # between characters
            playground.stop()
            await until_done(playground)

        asyncio.run(main())
        assert trained.training and torch.is_grad_enabled()
    finally:
        trained.eval()


def test_without_ipywidgets_charformer_works_and_the_playground_says_what_to_install() -> None:
    code = (
        "import sys\n"
        "import torch, charformer as cf\n"
        "print('loaded by import charformer:', 'ipywidgets' in sys.modules)\n"
        "sys.modules['ipywidgets'] = None  # now `import ipywidgets` fails\n"
        "assert 'SamplingPlayground' in cf.__all__ and 'SamplingPlayground' in dir(cf)\n"
        "model = cf.CharTransformer(cf.ModelConfig(vocab_size=3, block_size=4, n_embd=8, n_head=2, n_layer=1))\n"
        "print(model.generate(torch.zeros((1, 1), dtype=torch.long), 3).shape)\n"
        "try:\n"
        "    cf.SamplingPlayground(model, cf.CharTokenizer('abc'))\n"
        "except ImportError as error:\n"
        "    print('ImportError:', error)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "loaded by import charformer: False" in result.stdout
    assert "torch.Size([1, 4])" in result.stdout
    assert "ImportError:" in result.stdout and "pip install ipywidgets" in result.stdout
