"""Composition: variants combine where they change different parts; the awd recipe."""

from __future__ import annotations

import pytest
import torch

from helpers import TOKENS, net, tokens
from regbench.errors import ConfigError
from regbench.models.variants import RECIPES, REGULARIZERS, parse_variant
from regbench.plan.config import resolve


def test_awd_recipe_is_weight_drop_locked_embedding_dropout_and_ar_tar():
    assert parse_variant("awd", "lstm") == (
        "weight_drop",
        "locked_dropout",
        "embed_dropout",
        "ar_tar",
    )


def test_awd_defaults_are_the_papers_ptb_rates():
    assert REGULARIZERS["weight_drop"].defaults["p_weight"] == 0.5
    assert dict(REGULARIZERS["locked_dropout"].defaults) == {
        "p_input": 0.4,
        "p_hidden": 0.3,
        "p_output": 0.4,
    }
    assert REGULARIZERS["embed_dropout"].defaults["p_embed"] == 0.1
    assert REGULARIZERS["ar_tar"].defaults["alpha"] == 2.0


def test_awd_network_trains_on_tokens():
    keys = RECIPES["awd"]
    model = net(spec=TOKENS, **{k: {} for k in keys}).train()
    out = model(tokens())
    (out.prediction.sum() + out.penalty).backward()
    assert not any(r.custom_cell for r in model.regularizers)  # all on the fused kernel


@pytest.mark.parametrize(
    ("variant", "fragment"),
    [
        ("dropout+variational", "both change the network's sites"),
        ("layer_norm+recurrent_bn", "both change the network's input_norm"),
        ("awd+weight_drop", "repeats a regularizer"),
        ("awd", "needs a task with token inputs"),
    ],
)
def test_incompatible_compositions_are_refused(variant, fragment):
    with pytest.raises(ConfigError, match=fragment):
        resolve("adding", variant, "lstm", 0)


def test_compatible_compositions_resolve():
    for variant in (
        "zoneout+recurrent_bn",
        "dropout+zoneout",
        "dropout+recurrent_dropout",
        "locked_dropout+weight_drop+ar_tar",
        "variational+recurrent_dropout",
    ):
        config = resolve("adding", variant, "lstm", 0)
        assert list(config["regularizers"]) == variant.split("+")


def test_undefined_cell_error_lists_the_valid_variants():
    with pytest.raises(ConfigError) as err:
        resolve("adding", "recurrent_bn", "rnn", 0)
    assert "Valid for rnn:" in str(err.value) and "zoneout" in str(err.value)


def test_dropout_family_parameter_counts_are_equal():
    counts = {
        key: sum(p.numel() for p in net(**{key: {}}).parameters())
        for key in (
            "dropout",
            "variational",
            "locked_dropout",
            "weight_drop",
            "zoneout",
            "recurrent_dropout",
            "ar_tar",
        )
    }
    assert len(set(counts.values())) == 1
    assert counts["dropout"] == sum(p.numel() for p in net().parameters())


def test_zoneout_with_recurrent_bn_trains():
    model = net(zoneout={"z_c": 0.2, "z_h": 0.1}, recurrent_bn={}).train()
    x = torch.randn(4, 6, 4)
    model(x).prediction.sum().backward()
    model.eval()
    assert torch.isfinite(model(x).prediction).all()


@pytest.mark.parametrize(
    ("cell", "regularizers", "fragment"),
    [
        ("rnn", {"recurrent_dropout": {}}, "not defined for cell 'rnn'"),
        ("gru", {"recurrent_bn": {}}, "not defined for cell 'gru'"),
        ("lstm", {"embed_dropout": {}}, "needs a task with token inputs"),
        ("lstm", {"dropout": {}, "locked_dropout": {}}, "cannot be composed"),
    ],
)
def test_the_network_itself_refuses_what_configs_refuse(cell, regularizers, fragment):
    """Built from Python, not through a config: the same checks, the same errors."""
    with pytest.raises(ConfigError, match=fragment):
        net(cell, **regularizers)
