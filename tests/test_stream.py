"""CharTransformer.stream: generate's tokens one at a time, with the caller's modes between them."""

from __future__ import annotations

import gc

import pytest
import torch

import charformer as cf

from .conftest import tiny_model
from .test_generate import BAD_PROMPTS


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("temperature", [0, 1e-30, 0.5, 1.0, 1.7, 1e6])
@pytest.mark.parametrize("top_k", [None, 1, 5, 10_000])
@pytest.mark.parametrize("prompt_length", [1, 16, 40])  # block_size is 16: 40 is cropped each step
def test_stream_gives_generates_tokens(temperature: float, top_k: int | None, prompt_length: int) -> None:
    model = tiny_model()
    prompt = torch.randint(65, (1, prompt_length), generator=seeded(prompt_length))
    expected = model.generate(prompt, 30, temperature=temperature, top_k=top_k, generator=seeded(9))
    streamed = list(model.stream(prompt, 30, temperature=temperature, top_k=top_k, generator=seeded(9)))
    assert streamed == expected[0, prompt_length:].tolist()
    assert all(type(token) is int for token in streamed)


def test_stream_on_a_trained_model_matches_generate_on_real_text(tokenizer: cf.CharTokenizer,
                                                                 splits: tuple[torch.Tensor, torch.Tensor]) -> None:
    """A model with real preferences (a few training steps), a real prompt, dropout in the config."""
    train_data, val_data = splits
    model = tiny_model(dropout=0.1)
    cf.train(model, train_data, val_data, cf.TrainConfig(max_iters=20, eval_interval=20, eval_iters=1,
                                                         batch_size=8))
    prompt = torch.tensor([tokenizer.encode("ROMEO:\nWhat light through yonder window")])
    expected = model.generate(prompt, 60, temperature=0.8, top_k=20, generator=seeded(3))
    streamed = model.stream(prompt, 60, temperature=0.8, top_k=20, generator=seeded(3))
    assert tokenizer.decode(streamed) == tokenizer.decode(expected[0, prompt.size(1):].tolist())


def test_zero_tokens_is_an_empty_stream() -> None:
    assert list(tiny_model().stream(torch.zeros((1, 1), dtype=torch.long), 0)) == []


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("grad", ["enabled", "no_grad", "inference"])
def test_callers_modes_hold_between_tokens(training: bool, grad: str) -> None:
    model = tiny_model(dropout=0.2)
    model.train(training)
    context = {"enabled": torch.enable_grad, "no_grad": torch.no_grad, "inference": torch.inference_mode}[grad]
    with context():
        seen = []
        for _ in model.stream(torch.zeros((1, 1), dtype=torch.long), 5, generator=seeded(0)):
            seen.append((model.training, torch.is_grad_enabled(), torch.is_inference_mode_enabled()))
        assert seen == [(training, grad == "enabled", grad == "inference")] * 5
    assert model.training is training


def test_the_caller_may_change_modes_between_tokens() -> None:
    """A mode set between two tokens is the mode after the next token; sampling is unaffected."""
    model = tiny_model(dropout=0.5)
    expected = model.generate(torch.zeros((1, 1), dtype=torch.long), 6, generator=seeded(2))[0, 1:].tolist()
    tokens = model.stream(torch.zeros((1, 1), dtype=torch.long), 6, generator=seeded(2))
    got = []
    for i, token in enumerate(tokens):
        got.append(token)
        model.train(i % 2 == 0)  # dropout on for the next step would change the tokens if it leaked
        assert model.training is (i % 2 == 0)
    assert got == expected


def test_dropped_early_leaves_the_callers_modes() -> None:
    model = tiny_model(dropout=0.2)
    model.train()
    tokens = model.stream(torch.zeros((1, 1), dtype=torch.long), 100)
    first = next(tokens)
    assert 0 <= first < 65
    assert model.training and torch.is_grad_enabled() and not torch.is_inference_mode_enabled()
    tokens.close()
    assert model.training and torch.is_grad_enabled() and not torch.is_inference_mode_enabled()
    more = model.stream(torch.zeros((1, 1), dtype=torch.long), 100)
    next(more)
    del more
    gc.collect()
    assert model.training and torch.is_grad_enabled() and not torch.is_inference_mode_enabled()
    # The model still trains: a backward pass after the dropped stream works.
    _, loss = model(torch.zeros((1, 4), dtype=torch.long), torch.zeros((1, 4), dtype=torch.long))
    loss.backward()
    assert model.head.weight.grad is not None


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(max_new_tokens=-1),
        dict(max_new_tokens=2.5),
        dict(max_new_tokens=True),
        dict(max_new_tokens=5, temperature=-0.5),
        dict(max_new_tokens=5, temperature=float("nan")),
        dict(max_new_tokens=5, top_k=0),
        dict(max_new_tokens=5, top_k=2.0),
    ],
)
def test_bad_arguments_raise_at_the_call(kwargs: dict) -> None:
    """The same checks as generate, raised when stream is called (not at the first token)."""
    model = tiny_model()
    with pytest.raises(ValueError):
        model.generate(torch.zeros((1, 1), dtype=torch.long), **kwargs)
    with pytest.raises(ValueError):
        model.stream(torch.zeros((1, 1), dtype=torch.long), **kwargs)


@pytest.mark.parametrize("prompt", BAD_PROMPTS)
def test_bad_prompts_raise_at_the_call(prompt: torch.Tensor) -> None:
    with pytest.raises(ValueError):
        tiny_model().stream(prompt, 3)


def test_a_batch_of_more_than_one_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"shape \(1, T\), got \(2, 3\)"):
        tiny_model().stream(torch.zeros((2, 3), dtype=torch.long), 3)


def test_temperature_and_top_k_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        tiny_model().stream(torch.zeros((1, 1), dtype=torch.long), 3, 0.5)  # type: ignore[misc]


def test_numpy_numbers_and_any_integer_dtype_as_generate_takes_them() -> None:
    np = pytest.importorskip("numpy")
    model = tiny_model()
    prompt = torch.tensor([[5, 9, 2]], dtype=torch.int16)
    expected = model.generate(prompt, np.int64(12), temperature=np.float32(0.7), top_k=np.int32(4),
                              generator=seeded(1))
    streamed = model.stream(prompt, np.int64(12), temperature=np.float32(0.7), top_k=np.int32(4),
                            generator=seeded(1))
    assert list(streamed) == expected[0, 3:].tolist()


def test_mixed_modes_come_back_module_by_module() -> None:
    """A model partly in train mode (one block's dropout on) gets exactly that back between tokens."""
    model = tiny_model(dropout=0.3)
    model.train()
    model.blocks[0].eval()
    before = [module.training for module in model.modules()]
    expected = model.generate(torch.zeros((1, 1), dtype=torch.long), 8, generator=seeded(4))[0, 1:].tolist()
    model.train()
    model.blocks[0].eval()
    tokens = []
    for token in model.stream(torch.zeros((1, 1), dtype=torch.long), 8, generator=seeded(4)):
        tokens.append(token)
        assert [module.training for module in model.modules()] == before
    assert tokens == expected  # sampled in eval mode throughout, as generate does


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (scripts/gpu-check.sh)")
def test_stream_matches_generate_on_cuda_with_a_cpu_generator() -> None:
    """The playground's formula on a GPU model: a CPU torch.Generator, the same tokens both ways."""
    model = tiny_model().to("cuda")
    prompt = torch.randint(65, (1, 20), generator=seeded(0)).to("cuda")
    for temperature, top_k in ((1.0, None), (0.8, 10), (0, None)):
        expected = model.generate(prompt, 40, temperature=temperature, top_k=top_k, generator=seeded(2))
        streamed = model.stream(prompt, 40, temperature=temperature, top_k=top_k, generator=seeded(2))
        assert list(streamed) == expected[0, 20:].tolist()
