"""The textbook models `make perf` times beside the fused-kernel variants
(bench/perf/textbook.py): built like the plain baseline, at the registry's default rates, each
regularizer acting at the sites and with the granularity of regbench's own; and `none` on
the custom cell, the custom-cell rows' reference."""

from __future__ import annotations

import pytest
import torch

from regbench.models.layer import RecurrentLayer
from regbench.models.variants import RECIPES, REGULARIZERS
from regbench.models.variants.ar_tar import ActivationRegularization
from regbench.perf.measure import Size, _baseline, _inputs, measure
from regbench.perf.textbook import has_textbook, textbook_step

FUSED = ["dropout", "embed_dropout", "locked_dropout", "weight_drop", "ar_tar", "awd"]
TOKENS = Size("tiny tokens", 4, 8, 6, 0, 17, "classify_each")
FEATURES = Size("tiny features", 4, 8, 6, 2, 0, "classify_last")
CPU = torch.device("cpu")
CASES = [(v, TOKENS) for v in FUSED]
CASES += [
    (v, FEATURES)
    for v in FUSED
    if not any(REGULARIZERS[k].needs_tokens for k in RECIPES.get(v, (v,)))
]


def test_only_regularized_fused_kernel_variants_have_a_textbook_model():
    assert [v for v in ["none", *FUSED, "zoneout", "recurrent_bn"] if has_textbook(v)] == FUSED
    with pytest.raises(ValueError, match="no textbook model of 'zoneout'"):
        textbook_step(TOKENS, "zoneout", CPU)


def _gradients(model: torch.nn.Module, step, x: torch.Tensor) -> list[torch.Tensor]:
    step(x)
    return [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize(("variant", "size"), CASES)
def test_the_textbook_regularizer_acts_and_at_rate_zero_is_the_baseline(variant, size, monkeypatch):
    x = _inputs(size, CPU)
    base = _gradients(*_baseline(size, CPU), x)
    torch.manual_seed(1)
    regularized = _gradients(*textbook_step(size, variant, CPU), x)
    assert len(regularized) == len(base)
    assert all(torch.isfinite(g).all() for g in regularized)
    assert any(not torch.equal(g, b) for g, b in zip(regularized, base, strict=True))
    _set_rates(monkeypatch, lambda key, name, value: 0.0)
    plain = _gradients(*textbook_step(size, variant, CPU), x)
    assert all(torch.equal(g, b) for g, b in zip(plain, base, strict=True))


def _set_rates(monkeypatch, rate) -> None:
    """Replace every regularizer's float defaults by rate(key, name, value)."""
    for key, cls in REGULARIZERS.items():
        new = {k: rate(key, k, v) if isinstance(v, float) else v for k, v in cls.defaults.items()}
        monkeypatch.setattr(cls, "defaults", new)


def _run_seen(variant: str, size: Size) -> tuple[dict[str, torch.Tensor], torch.Tensor, list]:
    """The LSTM's input and output and the head's input in one textbook step, its loss, and
    its modules followed by the step's input batch."""
    torch.manual_seed(2)
    model, step = textbook_step(size, variant, CPU)
    _, rnn, head = model
    seen: dict[str, torch.Tensor] = {}

    def keeper(site: str):
        def keep(module: torch.nn.Module, args: tuple) -> None:
            seen[site] = args[0].detach().clone()

        return keep

    rnn.register_forward_pre_hook(keeper("rnn"))
    rnn.register_forward_hook(lambda m, a, out: keeper("out")(m, out))
    head.register_forward_pre_hook(keeper("head"))
    x = _inputs(size, CPU)
    return seen, step(x), [*model, x]


def test_zaremba_dropout_drops_elements_afresh_at_both_sites():
    seen, _, _ = _run_seen("dropout", TOKENS)
    for site in ("rnn", "head"):
        zeros = seen[site] == 0
        assert 0.2 < zeros.float().mean() < 0.8
        assert not all(torch.equal(zeros[0], z) for z in zeros[1:])  # not shared over time


def test_locked_dropout_shares_one_mask_over_time_at_both_sites():
    seen, _, _ = _run_seen("locked_dropout", TOKENS)
    for site in ("rnn", "head"):
        zeros = seen[site] == 0
        assert zeros.any() and all(torch.equal(zeros[0], z) for z in zeros[1:])


def test_embedding_dropout_drops_a_word_type_at_every_occurrence(monkeypatch):
    _set_rates(monkeypatch, lambda key, name, value: 0.5 if key == "embed_dropout" else value)
    seen, _, (*_, x) = _run_seen("embed_dropout", TOKENS)
    tokens = x.transpose(0, 1)
    dropped = (seen["rnn"] == 0).all(-1)
    assert dropped.any() and not dropped.all()
    for word in tokens.unique():
        assert dropped[tokens == word].unique().numel() == 1


def test_weight_drop_drops_entries_of_the_recurrent_matrix_only():
    seen, _, (_, rnn, _, _) = _run_seen("weight_drop", TOKENS)
    zero_share = (rnn.weight_hh_l0.grad == 0).float().mean()
    assert 0.3 < zero_share < 0.7  # p = 0.5: the dropped entries get no gradient
    assert (rnn.weight_ih_l0.grad == 0).float().mean() < 0.05
    assert not (seen["rnn"] == 0).any()


PENALIZED = [("ar_tar", TOKENS), ("ar_tar", FEATURES), ("awd", TOKENS)]


@pytest.mark.parametrize(("variant", "size"), PENALIZED)
def test_ar_tar_adds_regbench_s_penalty_on_the_outputs_before_and_after_dropout(variant, size):
    seen, loss, (*_, head, _) = _run_seen(variant, size)
    every_step = size.kind == "classify_each"
    dropped = seen["head"] if every_step else seen["out"]  # features: no output dropout
    with torch.no_grad():
        logits = head(dropped if every_step else dropped[-1])
        penalty = ActivationRegularization().train().penalty(seen["out"], dropped)
    torch.testing.assert_close(loss, logits.square().mean() + penalty)


def test_none_on_the_custom_cell_takes_the_custom_path(monkeypatch):
    calls = []
    custom = RecurrentLayer._custom
    monkeypatch.setattr(
        RecurrentLayer, "_custom", lambda self, *a, **k: calls.append(1) or custom(self, *a, **k)
    )
    row = measure(TOKENS, "none", "eager", 0.01, CPU)
    assert (row.path, row.mode, row.textbook_ratio) == ("custom cell", "eager", 0.0)
    assert len(calls) >= row.iterations and row.ratio > 0
