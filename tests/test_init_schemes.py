"""Init schemes draw the network's own weights; normalization parameters keep the values
their papers give (Cooijmans et al. 2017: γ = 0.1; Ba et al. 2016: gain 1, bias 0;
Laurent et al. 2016: γ = 1) under every scheme."""

from __future__ import annotations

import pytest
import torch

from helpers import net

SCHEMES = ("default", "uniform", "orthogonal", "uniform_ends")
NORMS = {
    "recurrent_bn": ({}, 0.1),
    "layer_norm": ({}, 1.0),
    "bn_input": ({}, 1.0),
}


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("key", sorted(NORMS))
def test_normalization_parameters_keep_their_paper_init(key, scheme):
    params, gain = NORMS[key]
    model = net(**{key: params})
    model.initialize(scheme, 0.5, None)
    reg = model.regularizers[0]
    for name, p in reg.named_parameters():
        expected = gain if name.endswith("weight") else 0.0
        assert torch.all(p == expected), f"{key}.{name} under {scheme}"


def test_uniform_draws_every_own_weight_and_the_same_values_with_a_norm_variant():
    plain, normed = net(), net(recurrent_bn={})
    for model in (plain, normed):
        torch.manual_seed(1)
        model.initialize("uniform", 0.05, None)
    own = dict(plain.named_parameters())
    for name, p in normed.named_parameters():
        if name.startswith("regularizers."):
            continue
        assert p.abs().max() <= 0.05, name
        torch.testing.assert_close(p, own[name], rtol=0, atol=0)
