"""Property tests (hypothesis) for the tokenizer, sampling, batching and configs."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import charformer as cf

from .conftest import tiny_model

VOCAB = "".join(sorted(set(open(__file__.replace("tests/test_properties.py", "data/input.txt"), encoding="utf-8").read())))
TOKENIZER = cf.CharTokenizer(VOCAB)
MODEL = tiny_model(block_size=8, n_embd=16, n_head=2, n_layer=1)


@settings(deadline=None, max_examples=200)
@given(st.text(alphabet=VOCAB))
def test_round_trip_over_the_vocabulary(text: str) -> None:
    assert TOKENIZER.decode(TOKENIZER.encode(text)) == text


@settings(deadline=None, max_examples=200)
@given(st.text(alphabet=VOCAB), st.text(min_size=1).filter(lambda s: any(c not in VOCAB for c in s)))
def test_unknown_characters_named_exactly(known: str, other: str) -> None:
    mixed = known + other
    unknown = sorted(set(mixed) - set(VOCAB))
    with pytest.raises(ValueError) as caught:
        TOKENIZER.encode(mixed)
    message = str(caught.value)
    for ch in unknown:
        assert repr(ch) in message
    assert f"{len(unknown)} character(s)" in message


@settings(deadline=None, max_examples=40)
@given(
    temperature=st.one_of(st.just(0.0), st.floats(min_value=1e-6, max_value=100.0)),
    top_k=st.one_of(st.none(), st.integers(min_value=1, max_value=130)),
    prompt_length=st.integers(min_value=1, max_value=24),
    new_tokens=st.integers(min_value=0, max_value=12),
    seed=st.integers(min_value=0, max_value=2**31),
)
def test_generate_properties(temperature: float, top_k: int | None, prompt_length: int, new_tokens: int, seed: int) -> None:
    prompt = torch.randint(65, (2, prompt_length), generator=torch.Generator().manual_seed(seed))
    out = MODEL.generate(prompt, new_tokens, temperature=temperature, top_k=top_k,
                         generator=torch.Generator().manual_seed(seed))
    assert out.shape == (2, prompt_length + new_tokens)
    assert torch.equal(out[:, :prompt_length], prompt)
    assert int(out.min()) >= 0 and int(out.max()) < 65
    if temperature == 0:
        assert torch.equal(out, MODEL.generate(prompt, new_tokens, temperature=0, top_k=top_k))


@settings(deadline=None, max_examples=100)
@given(
    length=st.integers(min_value=2, max_value=300),
    batch_size=st.integers(min_value=1, max_value=8),
    block_size=st.integers(min_value=1, max_value=64),
    seed=st.integers(min_value=0, max_value=2**31),
)
def test_batches_lie_inside_the_data(length: int, batch_size: int, block_size: int, seed: int) -> None:
    data = torch.arange(length)
    if length < block_size + 1:
        with pytest.raises(ValueError):
            cf.get_batch(data, batch_size, block_size)
        return
    x, y = cf.get_batch(data, batch_size, block_size, generator=torch.Generator().manual_seed(seed))
    assert x.shape == y.shape == (batch_size, block_size)
    assert int(x.min()) >= 0 and int(y.max()) < length
    assert torch.equal(y, x + 1)  # y is x shifted by one, windows are contiguous


model_fields = st.fixed_dictionaries({
    "vocab_size": st.integers(-2, 70),
    "block_size": st.integers(-2, 40),
    "n_embd": st.integers(-2, 40),
    "n_head": st.integers(-2, 8),
    "n_layer": st.integers(-2, 4),
    "dropout": st.one_of(st.floats(-1.0, 2.0), st.just(float("nan"))),
    "attention": st.sampled_from(["fused", "explicit", "flash", ""]),
    "positional": st.sampled_from(["learned", "sinusoidal", "none", "rope"]),
})


@settings(deadline=None, max_examples=300)
@given(model_fields)
def test_model_config_valid_iff_every_field_is(fields: dict) -> None:
    valid = (
        all(fields[k] >= 1 for k in ("vocab_size", "block_size", "n_embd", "n_head", "n_layer"))
        and fields["n_embd"] % fields["n_head"] == 0
        and 0.0 <= fields["dropout"] < 1.0
        and fields["attention"] in ("fused", "explicit")
        and fields["positional"] in ("learned", "sinusoidal", "none")
    )
    if valid:
        cf.ModelConfig(**fields)
    else:
        with pytest.raises(ValueError):
            cf.ModelConfig(**fields)


@settings(deadline=None, max_examples=300)
@given(st.fixed_dictionaries({
    "batch_size": st.integers(-1, 4),
    "max_iters": st.integers(-1, 4),
    "eval_interval": st.integers(-1, 4),
    "learning_rate": st.one_of(st.floats(-1.0, 1.0), st.just(float("nan"))),
    "beta2": st.floats(-0.5, 1.5),
    "warmup_iters": st.integers(-1, 10),
    "lr_decay_iters": st.one_of(st.none(), st.integers(-1, 10)),
    "min_lr": st.floats(0.0, 0.01),
}))
def test_train_config_valid_iff_every_field_is(fields: dict) -> None:
    lr = fields["learning_rate"]
    decay = fields["lr_decay_iters"]
    valid = (
        all(fields[k] >= 1 for k in ("batch_size", "max_iters", "eval_interval"))
        and lr == lr and lr > 0
        and 0.0 <= fields["beta2"] < 1.0
        and fields["warmup_iters"] >= 0
        and (decay is None or (decay >= 1 and decay >= fields["warmup_iters"]))
        and fields["min_lr"] <= lr
    )
    if valid:
        cf.TrainConfig(**fields)
    else:
        with pytest.raises(ValueError):
            cf.TrainConfig(**fields)


@settings(deadline=None, max_examples=100)
@given(
    preset=st.sampled_from(sorted(cf.PRESETS)),
    explicit=st.fixed_dictionaries({}, optional={
        "batch_size": st.integers(1, 512),
        "learning_rate": st.floats(1e-5, 1e-1),
        "max_iters": st.integers(1, 10_000),
        "n_layer": st.integers(1, 12),
        "dropout": st.floats(0.0, 0.9),
        "activation": st.sampled_from(["relu", "gelu"]),
        "num_threads": st.integers(1, 8),
        "patience": st.integers(1, 20),
    }),
)
def test_explicit_values_always_beat_any_preset(preset: str, explicit: dict) -> None:
    resolved = cf.resolve_settings(preset, **explicit)
    assert {k: resolved[k] for k in explicit} == explicit
    untouched = set(cf.SETTING_NAMES) - set(explicit) - {"warmup_iters", "lr_decay_iters", "min_lr"}
    assert all(resolved[k] == cf.PRESETS[preset][k] for k in untouched)
    model_config, train_config = cf.configs_from_settings(resolved, 65)  # always a valid pair
    assert train_config.max_iters == resolved["max_iters"] and model_config.n_layer == resolved["n_layer"]
    assert train_config.warmup_iters <= train_config.max_iters
    assert train_config.min_lr == min(cf.PRESETS[preset]["min_lr"], train_config.learning_rate)


@settings(deadline=None, max_examples=100)
@given(preset=st.sampled_from(sorted(cf.PRESETS)), max_iters=st.integers(2, 20_000))
def test_a_preset_run_of_any_length_warms_up_for_a_fraction_then_decays(preset: str, max_iters: int) -> None:
    _, config = cf.configs_from_settings(cf.resolve_settings(preset, max_iters=max_iters), 65)
    assert config.warmup_iters <= max_iters // 10
    if max_iters >= 10:
        assert 0 < config.warmup_iters and cf.learning_rate_at(0, config) < config.learning_rate
    assert cf.learning_rate_at(max_iters - 1, config) < config.learning_rate
