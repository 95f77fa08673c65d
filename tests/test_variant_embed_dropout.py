"""Embedding dropout (Gal & Ghahramani 2016 Sec. 4.2; Merity et al. 2017 Sec. 4.3)."""

from __future__ import annotations

import pytest
import torch

from helpers import TOKENS, net, tokens
from regbench.errors import ConfigError
from regbench.plan.config import resolve


def embedded(model, x):
    return model._embed(x)  # (T, B, E)


def test_whole_word_types_are_dropped_in_every_position():
    model = net(spec=TOKENS, embed_dropout={"p_embed": 0.5}).train()
    x = torch.tensor([[3, 4, 3, 5, 3, 4]] * 4)
    vectors = embedded(model, x)
    dropped = vectors.abs().sum(-1) == 0  # (T, B)
    for word in (3, 4, 5):
        positions = dropped[x.T.eq(word)]
        assert positions.all() or not positions.any()  # a word is dropped everywhere or nowhere


def test_awd_mask_is_one_per_batch_gal_mask_one_per_sequence():
    x = torch.tensor([[7] * 5] * 64)  # every sequence is the same word
    awd = net(spec=TOKENS, embed_dropout={"p_embed": 0.5}).train()
    gal = net(spec=TOKENS, embed_dropout={"p_embed": 0.5, "per_sequence": True}).train()
    torch.manual_seed(4)
    awd_drop = embedded(awd, x).abs().sum(-1) == 0
    assert awd_drop.all() or not awd_drop.any()
    gal_drop = embedded(gal, x).abs().sum(-1) == 0
    per_sequence = gal_drop.all(0)
    assert torch.equal(gal_drop, per_sequence.expand_as(gal_drop))
    assert 0 < per_sequence.sum() < 64


def test_kept_rows_are_scaled_and_eval_is_plain():
    model = net(spec=TOKENS, embed_dropout={"p_embed": 0.5}).train()
    x = tokens()
    weight = model.embedding.weight
    vectors = embedded(model, x)
    kept = vectors.abs().sum(-1) != 0
    torch.testing.assert_close(vectors[kept], 2 * weight[x.T][kept])
    model.eval()
    assert torch.equal(embedded(model, x), weight[x.T])


def test_rate_zero_reproduces_none_exactly():
    x = tokens()
    plain = net(spec=TOKENS).train()
    zero = net(spec=TOKENS, embed_dropout={"p_embed": 0.0}).train()
    assert torch.equal(plain(x).prediction, zero(x).prediction)


def test_needs_a_token_task():
    with pytest.raises(ConfigError, match="needs a task with token inputs"):
        resolve("adding", "embed_dropout", "lstm", 0)
