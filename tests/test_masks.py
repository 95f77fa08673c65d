"""Bernoulli masks from k random bits per element (models/variants/masks.py)."""

from __future__ import annotations

import math

import pytest
import torch

from regbench.models.variants.masks import (
    WIDE_BITS,
    bernoulli_mask,
    effective_probability,
    keep_mask,
    octet_table,
    quantize,
)

LIKE = torch.empty(0)
PATHS = [0.5, 0.25, 0.8125, 3 / 256, 0.6, 0.1]  # 1, 2, 4, 8 bits (exact); 16 bits (rounded)


def test_dyadic_probabilities_take_the_fewest_bits_and_are_exact():
    assert quantize(0.5) == (1, 1)
    assert quantize(0.75) == (2, 3)
    assert quantize(0.8125) == (4, 13)
    assert quantize(3 / 256) == (8, 3)
    assert quantize(0.0) == (1, 0) and quantize(1.0) == (1, 2) and quantize(1) == (1, 2)
    for prob in (0.6, 0.9, 0.35, 0.1, 1 / 3):
        bits, level = quantize(prob)
        assert bits == WIDE_BITS and abs(level / 2**bits - prob) <= 2 ** -(WIDE_BITS + 1)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        quantize(1.5)


def test_octet_table_decodes_fields_from_the_low_bits_up():
    ones = octet_table(1, 1, torch.device("cpu"))  # keep where the bit is 0
    decoded = ones.view(-1)[0b10110001 : 0b10110001 + 1].view(torch.uint8)
    assert decoded.tolist() == [0, 1, 1, 1, 0, 0, 1, 0]
    pairs = octet_table(2, 2, torch.device("cpu"))  # keep fields 0 and 1 of 0..3
    assert pairs[0b11_10_01_00 : 0b11_10_01_00 + 1].view(torch.uint8).tolist() == [1, 1, 0, 0]


@pytest.mark.parametrize("prob", PATHS)
def test_mask_frequency_matches_the_probability_used(prob):
    torch.manual_seed(0)
    mask = bernoulli_mask((400, 2501), prob, LIKE, value=3.0)  # odd count: partial last word
    assert mask.shape == (400, 2501) and mask.dtype == LIKE.dtype
    assert set(mask.unique().tolist()) <= {0.0, 3.0}
    used = effective_probability(prob)
    sigma = math.sqrt(used * (1 - used) / mask.numel())
    assert abs((mask != 0).double().mean().item() - used) < 5 * sigma


@pytest.mark.parametrize("prob", PATHS)
def test_neighbouring_elements_are_uncorrelated(prob):
    """Elements decoded from one octet or one 64-bit draw share no bits."""
    torch.manual_seed(1)
    mask = bernoulli_mask((1_000_000,), prob, LIKE).double()
    centred = mask - mask.mean()
    for lag in (1, 2, 3, 4, 7, 8, 64):
        corr = (centred[:-lag] * centred[lag:]).mean() / centred.var()
        assert abs(corr.item()) < 5 / math.sqrt(mask.numel()), lag


def test_masks_are_fresh_per_call_and_reproducible_under_the_seed():
    torch.manual_seed(3)
    a, b = bernoulli_mask((64, 64), 0.5, LIKE), bernoulli_mask((64, 64), 0.6, LIKE)
    torch.manual_seed(3)
    assert torch.equal(a, bernoulli_mask((64, 64), 0.5, LIKE))
    assert torch.equal(b, bernoulli_mask((64, 64), 0.6, LIKE))
    assert not torch.equal(a, bernoulli_mask((64, 64), 0.5, LIKE))


def test_keep_mask_is_unbiased_for_the_rounded_probability():
    torch.manual_seed(4)
    for p in (0.5, 0.4, 0.65, 0.1):
        mask = keep_mask((1000, 1000), p, torch.empty(0, dtype=torch.float64))
        kept = mask[mask != 0]
        assert torch.all(kept == 1.0 / effective_probability(1.0 - p))
        sigma = math.sqrt(p / (1 - p) / mask.numel())  # std of the mean of a scaled Bernoulli
        assert abs(mask.mean().item() - 1.0) < 5 * sigma
    assert torch.count_nonzero(keep_mask((100, 100), 1 - 1e-7, LIKE)) == 0  # rounds to all-drop
    assert torch.all(keep_mask((10,), 0.0, LIKE) == 1.0)
