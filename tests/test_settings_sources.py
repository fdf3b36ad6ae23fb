"""Where each setting came from: the preset, you, or a rule that follows your values."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import charformer as cf


def test_sources_preset_you_and_derived() -> None:
    sources = cf.setting_sources("cpu", n_head=8, max_iters=1200, learning_rate=5e-5, dropout=None)
    assert set(sources) == set(cf.SETTING_NAMES)
    assert sources["n_head"] == sources["max_iters"] == sources["learning_rate"] == "you"
    assert sources["lr_decay_iters"] == "derived"  # follows max_iters
    assert sources["min_lr"] == "derived"  # follows the learning rate below the preset's floor
    assert sources["dropout"] == sources["batch_size"] == sources["n_layer"] == "preset"
    assert cf.setting_sources("cpu", max_iters=50)["warmup_iters"] == "derived"  # capped by the run
    assert cf.setting_sources("cpu", n_layer=4)["n_layer"] == "you"  # the preset's value, set by you
    assert set(cf.setting_sources("quick").values()) == {"preset"}
    assert cf.setting_sources("cpu", lr_decay_iters=0)["lr_decay_iters"] == "you"  # 0: constant rate


def test_an_explicit_value_a_rule_changes_is_derived() -> None:
    # lr_decay_iters never precedes the warmup: 10 becomes 100.
    resolved = cf.resolve_settings("cpu", lr_decay_iters=10)
    assert resolved["lr_decay_iters"] == 100
    assert cf.setting_sources("cpu", lr_decay_iters=10)["lr_decay_iters"] == "derived"


def test_settings_table_one_aligned_row_per_setting() -> None:
    table = cf.settings_table("cpu", n_head=8, max_iters=1200)
    lines = table.splitlines()
    assert lines[0].split() == ["setting", "value", "source"]
    assert len(lines) == 1 + len(cf.SETTING_NAMES)
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert rows["n_head"] == ["8", "you"]
    assert rows["lr_decay_iters"] == ["1200", "derived"]
    assert rows["learning_rate"] == ["0.001", "preset"]
    assert rows["positional"] == ["learned", "preset"]
    value_column = lines[0].index("value")
    assert all(line[value_column - 1] == " " and line[value_column] != " " for line in lines)


def test_changed_settings_lines() -> None:
    assert cf.changed_settings("cpu") == []
    assert cf.changed_settings("cpu", n_head=4) == []  # the preset's own value changes nothing
    assert cf.changed_settings("cpu", n_head=8, max_iters=1200) == [
        "max_iters 5000 -> 1200 (you)",
        "lr_decay_iters 5000 -> 1200 (derived)",
        "n_head 4 -> 8 (you)",
    ]
    assert "min_lr 0.0001 -> 5e-05 (derived)" in cf.changed_settings("cpu", learning_rate=5e-5)


def test_bad_preset_or_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown preset"):
        cf.settings_table("CPUs")
    with pytest.raises(ValueError, match="unknown settings: n_layers"):
        cf.changed_settings("cpu", n_layers=3)


@settings(deadline=None, max_examples=60)
@given(
    preset=st.sampled_from(sorted(cf.PRESETS)),
    explicit=st.fixed_dictionaries({}, optional={
        "learning_rate": st.floats(1e-5, 1e-1),
        "max_iters": st.integers(1, 10_000),
        "warmup_iters": st.integers(0, 300),
        "n_layer": st.integers(1, 12),
        "min_lr": st.floats(0.0, 1e-5),
    }),
)
def test_sources_agree_with_the_resolved_values(preset: str, explicit: dict) -> None:
    resolved = cf.resolve_settings(preset, **explicit)
    sources = cf.setting_sources(preset, **explicit)
    for name, source in sources.items():
        if source == "you":
            assert resolved[name] == explicit[name]
        elif source == "preset":
            assert name not in explicit and resolved[name] == cf.PRESETS[preset][name]
        else:
            assert source == "derived" and resolved[name] != explicit.get(name, cf.PRESETS[preset][name])
    changed = cf.changed_settings(preset, **explicit)
    assert len(changed) == sum(resolved[n] != cf.PRESETS[preset][n] for n in cf.SETTING_NAMES)
