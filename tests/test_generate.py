"""Sampling: the seed snippet, greedy, temperature and top-k, bad arguments, mode handling."""

from __future__ import annotations

import pytest
import torch

import charformer as cf

from .conftest import tiny_model


def test_seed_snippet_works_as_written(tokenizer: cf.CharTokenizer) -> None:
    m = tiny_model()
    device = "cpu"
    decode = tokenizer.decode
    context = torch.zeros((1, 1), dtype=torch.long, device=device)
    text = decode(m.generate(context, max_new_tokens=300)[0].tolist())
    assert len(text) == 301 and text[0] == "\n"


def test_grows_past_block_size_and_keeps_the_prompt() -> None:
    model = tiny_model()
    prompt = torch.randint(65, (2, 40))  # longer than block_size 16: cropped for each step
    out = model.generate(prompt, 25, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 65)
    assert torch.equal(out[:, :40], prompt)
    assert int(out.min()) >= 0 and int(out.max()) < 65
    assert not out.is_inference()  # usable in autograd code afterwards


def test_same_generator_same_text_and_greedy_is_deterministic() -> None:
    model = tiny_model()
    prompt = torch.zeros((1, 1), dtype=torch.long)
    a = model.generate(prompt, 50, generator=torch.Generator().manual_seed(7))
    b = model.generate(prompt, 50, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    g1 = model.generate(prompt, 50, temperature=0)
    g2 = model.generate(prompt, 50, temperature=0, generator=torch.Generator().manual_seed(1))
    assert torch.equal(g1, g2)


def test_greedy_matches_argmax_of_the_full_forward() -> None:
    model = tiny_model().eval()
    prompt = torch.randint(65, (1, 5))
    out = model.generate(prompt, 1, temperature=0)
    with torch.no_grad():
        expected = model(prompt)[0][0, -1].argmax()
    assert out[0, -1] == expected


def test_top_k_one_is_greedy_and_large_top_k_is_clamped() -> None:
    model = tiny_model()
    prompt = torch.zeros((1, 1), dtype=torch.long)
    greedy = model.generate(prompt, 30, temperature=0)
    top1 = model.generate(prompt, 30, top_k=1, generator=torch.Generator().manual_seed(3))
    assert torch.equal(greedy, top1)
    clamped = model.generate(prompt, 30, top_k=10_000, generator=torch.Generator().manual_seed(3))
    plain = model.generate(prompt, 30, generator=torch.Generator().manual_seed(3))
    assert torch.equal(clamped, plain)


def test_tiny_and_huge_temperatures_do_not_crash() -> None:
    model = tiny_model()
    prompt = torch.zeros((1, 1), dtype=torch.long)
    cold = model.generate(prompt, 20, temperature=1e-30, generator=torch.Generator().manual_seed(0))
    assert torch.equal(cold, model.generate(prompt, 20, temperature=0))
    hot = model.generate(prompt, 20, temperature=1e6, generator=torch.Generator().manual_seed(0))
    assert hot.shape == (1, 21)


def test_restores_training_mode_and_needs_no_grad() -> None:
    model = tiny_model(dropout=0.2)
    model.train()
    model.generate(torch.zeros((1, 1), dtype=torch.long), 5)
    assert model.training
    model.eval()
    model.generate(torch.zeros((1, 1), dtype=torch.long), 5)
    assert not model.training


def test_zero_new_tokens_returns_the_prompt() -> None:
    prompt = torch.tensor([[1, 2, 3]])
    assert torch.equal(tiny_model().generate(prompt, 0), prompt)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(max_new_tokens=-1),
        dict(max_new_tokens=5, temperature=-0.5),
        dict(max_new_tokens=5, temperature=float("nan")),
        dict(max_new_tokens=5, top_k=0),
        dict(max_new_tokens=2.5),
    ],
)
def test_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        tiny_model().generate(torch.zeros((1, 1), dtype=torch.long), **kwargs)


# Not 2-D, empty, ids outside the 65-character vocabulary, floating point (test_stream uses them too).
BAD_PROMPTS = [
    torch.zeros(3, dtype=torch.long),
    torch.zeros((1, 0), dtype=torch.long),
    torch.tensor([[65]]),
    torch.tensor([[-1]]),
    torch.zeros((1, 2)),
]


@pytest.mark.parametrize("prompt", BAD_PROMPTS)
def test_bad_prompts(prompt: torch.Tensor) -> None:
    with pytest.raises(ValueError):
        tiny_model().generate(prompt, 3)


def test_fixed_shape_path_gives_the_same_tokens() -> None:
    """The XLA path (one window shape for every step) matches the eager path token for token."""
    model = tiny_model().eval()
    for prompt_length in (1, 10, 16, 30):
        prompt = torch.randint(65, (2, prompt_length), generator=torch.Generator().manual_seed(prompt_length))
        with torch.inference_mode():
            growing = model.generate(prompt, 40, generator=torch.Generator().manual_seed(5))
            fixed = model._generate_fixed_shape(prompt, 40, 1.0, None, torch.Generator().manual_seed(5))
        assert torch.equal(growing, fixed), prompt_length
