"""The model on real data: shapes, the two attention paths, causality, init, learning."""

from __future__ import annotations

import math

import pytest
import torch

import charformer as cf

from .conftest import tiny_config, tiny_model


def test_forward_shapes_and_initial_loss(data: torch.Tensor) -> None:
    model = tiny_model()
    x, y = cf.get_batch(data, 8, 16, generator=torch.Generator().manual_seed(0))
    logits, loss = model(x, y)
    assert logits.shape == (8, 16, 65)
    assert loss is not None and loss.dim() == 0
    # Small init: the model starts close to a uniform guess, ln(65) = 4.17.
    assert abs(loss.item() - math.log(65)) < 0.1
    logits_only, no_loss = model(x)
    assert no_loss is None and torch.equal(logits_only, logits)


def test_rejects_bad_inputs() -> None:
    model = tiny_model()
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros((1, 17), dtype=torch.long))
    with pytest.raises(ValueError):
        model(torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError):
        model(torch.zeros((1, 4)))
    with pytest.raises(ValueError):
        cf.CharTransformer({"vocab_size": 65})  # type: ignore[arg-type]


@pytest.mark.parametrize("positional", ["learned", "sinusoidal", "none"])
def test_explicit_and_fused_attention_agree(data: torch.Tensor, positional: str) -> None:
    fused = tiny_model(positional=positional, attention="fused").eval()
    explicit = cf.CharTransformer(tiny_config(positional=positional, attention="explicit")).eval()
    assert fused.state_dict().keys() == explicit.state_dict().keys()
    explicit.load_state_dict(fused.state_dict())
    x, _ = cf.get_batch(data, 4, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(fused(x)[0], explicit(x)[0], atol=1e-5, rtol=1e-4)
        # Shorter sequences use the top-left corner of the mask in both paths.
        assert torch.allclose(fused(x[:, :5])[0], explicit(x[:, :5])[0], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("attention", ["fused", "explicit"])
def test_causality(data: torch.Tensor, attention: str) -> None:
    model = tiny_model(attention=attention).eval()
    x, _ = cf.get_batch(data, 2, 16, generator=torch.Generator().manual_seed(2))
    changed = x.clone()
    changed[:, 10:] = (changed[:, 10:] + 7) % 65
    with torch.no_grad():
        before, after = model(x)[0], model(changed)[0]
    assert torch.allclose(before[:, :10], after[:, :10], atol=1e-6)
    assert not torch.allclose(before[:, 10:], after[:, 10:], atol=1e-3)


def test_init_follows_gpt2() -> None:
    model = tiny_model(n_layer=4, n_embd=64)
    assert model.tok_emb.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert model.blocks[0].attn.qkv.weight.std().item() == pytest.approx(0.02, rel=0.05)
    residual = 0.02 / math.sqrt(2 * 4)
    assert model.blocks[0].mlp.proj.weight.std().item() == pytest.approx(residual, rel=0.05)
    assert model.blocks[3].attn.proj.weight.std().item() == pytest.approx(residual, rel=0.1)
    assert torch.count_nonzero(model.blocks[0].attn.qkv.bias) == 0


def test_parameter_count_of_the_lecture_model() -> None:
    model = cf.CharTransformer(cf.ModelConfig(vocab_size=65, block_size=32, n_embd=64, n_head=4, n_layer=4))
    assert model.num_parameters() == sum(p.numel() for p in model.parameters()) == 210_497


def test_attention_maps(data: torch.Tensor) -> None:
    for attention in ("fused", "explicit"):
        model = tiny_model(attention=attention, dropout=0.1)
        model.train()
        x, _ = cf.get_batch(data, 3, 12, generator=torch.Generator().manual_seed(3))
        maps = model.attention_maps(x)
        assert model.training  # the mode is restored
        assert maps.shape == (2, 3, 4, 12, 12)
        assert torch.allclose(maps.sum(-1), torch.ones(2, 3, 4, 12))
        assert torch.count_nonzero(torch.triu(maps, diagonal=1)) == 0  # no weight on the future


def test_sinusoidal_positions() -> None:
    table = cf.sinusoidal_positions(32, 64)
    assert table.shape == (32, 64)
    assert torch.allclose(table[0, 0::2], torch.zeros(32))
    assert torch.allclose(table[0, 1::2], torch.ones(32))
    assert table[5, 0].item() == pytest.approx(math.sin(5.0))
    odd = cf.sinusoidal_positions(4, 7)
    assert odd.shape == (4, 7)
    model = tiny_model(positional="sinusoidal")
    assert "pos_emb.weight" not in model.state_dict()


def test_overfits_one_batch(data: torch.Tensor) -> None:
    model = tiny_model()
    x, y = cf.get_batch(data, 4, 16, generator=torch.Generator().manual_seed(4))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(300):
        _, loss = model(x, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.2  # far below ln(65) = 4.17: the model can memorise
