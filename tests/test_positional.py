"""positional="none": no position table at all; the model still trains, samples and saves."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import charformer as cf
from charformer.checkpoint import load_model_state, read_checkpoint

from .conftest import tiny_config, tiny_model


def test_no_positional_table_means_block_size_times_n_embd_fewer_parameters() -> None:
    learned = tiny_model(positional="learned")
    none = tiny_model(positional="none")
    config = none.config
    assert learned.num_parameters() - none.num_parameters() == config.block_size * config.n_embd
    assert not any("pos" in name for name, _ in none.named_parameters())
    assert not any("pos" in name for name, _ in none.named_buffers())
    assert "pos_emb.weight" in learned.state_dict()


def test_the_error_names_every_choice() -> None:
    with pytest.raises(ValueError, match="'learned', 'sinusoidal', 'none'"):
        cf.ModelConfig(positional="rope")


def test_trains_on_the_shipped_text_and_samples_past_block_size(splits, tokenizer) -> None:
    train_data, val_data = splits
    model = tiny_model(positional="none")
    config = cf.TrainConfig(max_iters=150, batch_size=16, learning_rate=3e-3, eval_interval=50,
                            eval_iters=4, keep_best=False)
    history = cf.train(model, train_data, val_data, config)
    assert history.val_loss[-1] < history.val_loss[0] - 0.8, history.val_loss
    prompt = torch.tensor([tokenizer.encode("ROMEO:")])
    sample = model.generate(prompt, 3 * model.config.block_size, generator=torch.Generator().manual_seed(0))
    assert sample.shape == (1, 6 + 3 * model.config.block_size)
    assert tokenizer.decode(sample[0].tolist()).startswith("ROMEO:")


def test_checkpoint_round_trip(tmp_path: Path, tokenizer, data: torch.Tensor) -> None:
    model = tiny_model(positional="none")
    path = cf.save_checkpoint(tmp_path / "none.pt", model, tokenizer)
    loaded = cf.load_checkpoint(path)
    assert loaded.model_config.positional == "none"
    x, _ = cf.get_batch(data, 2, 16, generator=torch.Generator().manual_seed(0))
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x)[0], loaded.model(x)[0])
    learned = cf.CharTransformer(tiny_config(positional="learned"))
    with pytest.raises(cf.CheckpointError, match="'none' positions"):
        load_model_state(path, learned, read_checkpoint(path))
