"""Vocabulary, split and batches on the shipped Tiny Shakespeare."""

from __future__ import annotations

import pytest
import torch

import charformer as cf


def test_shipped_text_and_vocabulary(text: str, tokenizer: cf.CharTokenizer) -> None:
    assert len(text) == 1_115_394
    assert tokenizer.vocab_size == 65
    assert tokenizer.chars == sorted(set(text))
    assert tokenizer.chars[:2] == ["\n", " "]


def test_round_trip_and_ids(tokenizer: cf.CharTokenizer) -> None:
    ids = tokenizer.encode("hii there")
    assert ids == [46, 47, 47, 1, 58, 46, 43, 56, 43]
    assert tokenizer.decode(ids) == "hii there"
    assert tokenizer.decode(torch.tensor(ids)) == "hii there"
    assert tokenizer.encode("") == []


def test_unknown_characters_are_listed_exactly(tokenizer: cf.CharTokenizer) -> None:
    with pytest.raises(ValueError) as caught:
        tokenizer.encode("héllo wörld é")
    message = str(caught.value)
    assert "'é'" in message and "'ö'" in message
    assert "2 character" in message
    assert "'h'" not in message


@pytest.mark.parametrize("bad", [-1, 65, 1000])
def test_decode_rejects_out_of_range_ids(tokenizer: cf.CharTokenizer, bad: int) -> None:
    with pytest.raises(ValueError, match=str(bad)):
        tokenizer.decode([1, bad])


def test_tokenizer_dict_round_trip(tokenizer: cf.CharTokenizer) -> None:
    again = cf.CharTokenizer.from_dict(tokenizer.to_dict())
    assert again == tokenizer
    assert again.encode("To be") == tokenizer.encode("To be")


@pytest.mark.parametrize("bad", ["", None])
def test_tokenizer_rejects_empty_or_wrong_text(bad: object) -> None:
    with pytest.raises(ValueError):
        cf.CharTokenizer.from_text(bad)  # type: ignore[arg-type]


def test_tokenizer_rejects_bad_dicts() -> None:
    with pytest.raises(ValueError):
        cf.CharTokenizer.from_dict({"chars": "aab"})
    with pytest.raises(ValueError):
        cf.CharTokenizer.from_dict({})


def test_split_by_position(data: torch.Tensor) -> None:
    train, val = cf.train_val_split(data)
    assert (len(train), len(val)) == (1_003_854, 111_540)
    assert torch.equal(torch.cat([train, val]), data)
    assert cf.train_val_split("abcdefghij", 0.8) == ("abcdefgh", "ij")


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5, True])
def test_split_rejects_bad_fractions(data: torch.Tensor, fraction: float) -> None:
    with pytest.raises(ValueError):
        cf.train_val_split(data, fraction)


def test_split_rejects_a_split_with_an_empty_side() -> None:
    with pytest.raises(ValueError):
        cf.train_val_split("ab", 0.1)


def test_get_batch_windows_and_shift(data: torch.Tensor) -> None:
    generator = torch.Generator().manual_seed(0)
    x, y = cf.get_batch(data, 8, 32, generator=generator)
    assert x.shape == y.shape == (8, 32)
    assert x.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])
    # On data whose values are their positions, each row must be a run of consecutive positions.
    positions = torch.arange(1000)
    x, y = cf.get_batch(positions, 64, 32, generator=generator)
    assert torch.equal(x - x[:, :1], torch.arange(32).expand(64, 32))
    assert torch.equal(y, x + 1)
    assert int(x.min()) >= 0 and int(y.max()) <= 999


def test_get_batch_is_reproducible_with_a_generator(data: torch.Tensor) -> None:
    a = cf.get_batch(data, 4, 8, generator=torch.Generator().manual_seed(5))
    b = cf.get_batch(data, 4, 8, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_get_batch_on_minimal_data_and_too_short_data() -> None:
    data = torch.arange(9)
    x, y = cf.get_batch(data, 3, 8)
    assert torch.equal(x, torch.arange(8).expand(3, 8))
    assert torch.equal(y, torch.arange(1, 9).expand(3, 8))
    with pytest.raises(ValueError, match="block_size"):
        cf.get_batch(torch.arange(8), 3, 8)


@pytest.mark.parametrize(("batch_size", "block_size"), [(0, 8), (4, 0), (-1, 8), (2.5, 8)])
def test_get_batch_rejects_bad_sizes(data: torch.Tensor, batch_size: object, block_size: object) -> None:
    with pytest.raises(ValueError):
        cf.get_batch(data, batch_size, block_size)  # type: ignore[arg-type]
