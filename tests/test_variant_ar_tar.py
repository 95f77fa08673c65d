"""Merity et al. 2017 Sec. 4.6: AR on the dropped last-layer output, TAR on the raw one."""

from __future__ import annotations

import torch

from helpers import TOKENS, inputs, net, tokens


def test_penalty_is_alpha_ar_plus_beta_tar_as_in_awd_lstm():
    reg = net(ar_tar={"alpha": 2.0, "beta": 1.0}).regularizers[0].train()
    raw = torch.randn(9, 3, 4)
    dropped = raw * (torch.rand_like(raw) > 0.5)
    expected = 2.0 * dropped.pow(2).mean() + 1.0 * (raw[1:] - raw[:-1]).pow(2).mean()
    torch.testing.assert_close(reg.penalty(raw, dropped), expected)


def test_network_passes_the_last_layer_before_and_after_output_dropout():
    model = net(locked_dropout={"p_output": 0.5}, ar_tar={"alpha": 1.0, "beta": 0.0}).train()
    seen = {}
    reg = model.regularizers[1]
    original = reg.penalty

    def spy(raw, dropped, lengths):
        seen["raw"], seen["dropped"] = raw, dropped
        return original(raw, dropped, lengths)

    reg.penalty = spy
    model(inputs())
    assert seen["raw"].shape == (7, 5, 6)
    zeroed = seen["dropped"] == 0
    assert zeroed.any() and torch.equal(seen["dropped"][~zeroed], 2 * seen["raw"][~zeroed])


def test_no_penalty_at_eval_and_zero_weights_give_zero():
    model = net(ar_tar={}).eval()
    assert model(inputs()).penalty is None
    model = net(ar_tar={"alpha": 0.0, "beta": 0.0}).train()
    assert model(inputs()).penalty.item() == 0.0


def test_predictions_unchanged_by_the_penalty():
    x = inputs()
    assert torch.equal(net().train()(x).prediction, net(ar_tar={}).train()(x).prediction)


def _composed(raw, dropped, alpha=2.0, beta=1.0):
    return alpha * dropped.pow(2).mean() + beta * (raw[1:] - raw[:-1]).pow(2).mean()


def test_gradients_equal_the_composed_formula_with_and_without_output_dropout():
    reg = net(ar_tar={}).regularizers[0].train()
    raw = torch.randn(9, 3, 4, dtype=torch.float64, requires_grad=True)
    mask = (torch.rand(9, 3, 4, dtype=torch.float64) > 0.5) * 2.0
    for drop in (lambda h: h, lambda h: h * mask):  # the same tensor (no dropout) or a copy
        ours = torch.autograd.grad(reg.penalty(raw, drop(raw)), raw)[0]
        expected = torch.autograd.grad(_composed(raw, drop(raw)), raw)[0]
        torch.testing.assert_close(ours, expected, rtol=1e-12, atol=1e-14)


def test_gradcheck_on_both_inputs_and_one_step_sequences():
    reg = net(ar_tar={"alpha": 0.7, "beta": 1.3}).regularizers[0].train()
    raw = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    dropped = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(reg.penalty, (raw, dropped))
    assert torch.autograd.gradcheck(lambda h: reg.penalty(h, h), (raw,))
    one = torch.randn(1, 2, 3, dtype=torch.float64, requires_grad=True)  # AR only
    torch.testing.assert_close(reg.penalty(one, one), 0.7 * one.pow(2).mean())


def test_half_precision_sums_do_not_overflow():
    reg = net(ar_tar={}).regularizers[0].train()
    raw = torch.randn(200, 64, 64) * 0.8  # Σ h² ≈ 5e5, beyond float16's 65504
    expected = _composed(raw, raw)
    ours = reg.penalty(raw.half(), raw.half())
    assert torch.isfinite(ours) and abs(ours.item() - expected.item()) < 1e-2 * expected.item()


def test_padded_batches_penalise_valid_steps_only_and_classify_at_each_last_valid_step():
    lengths = torch.tensor([7, 4, 2, 7, 1])
    x = inputs()
    padded = x.clone()
    for b, n in enumerate(lengths.tolist()):
        padded[b, n:] = 100.0  # padding that would dominate any statistic it entered
    model = net(kind="classify_last", ar_tar={}).train()
    plain = net(kind="classify_last").train()
    out = model(padded, lengths)
    torch.testing.assert_close(out.prediction, plain(padded, lengths).prediction)
    torch.testing.assert_close(out.penalty, model(x, lengths).penalty)
    # one sequence alone: its own AR and TAR means
    one = model(x[1:2, :4]).penalty
    alone = net(kind="classify_last", ar_tar={}).train()(padded[1:2], lengths[1:2]).penalty
    torch.testing.assert_close(alone, one)


def _ptb_model(loss: str):
    from regbench.models import SequenceModel
    from regbench.plan.config import resolve
    from regbench.tasks import get_task

    overrides = {"model.hidden_size": 8, "model.num_layers": 1, "train.loss": loss}
    config = resolve("ptb_word", "ar_tar", "lstm", 0, overrides)
    torch.manual_seed(0)
    return SequenceModel(config, TOKENS, get_task("ptb_word").protocol).train()


def test_a_summed_loss_scales_the_penalty_with_the_cross_entropy():
    """With `sum_steps` the loss is T · (CE + AR + TAR): the penalty keeps its weight against
    the data term (before the fix, α = 2 acted like 2/T)."""
    x = tokens(batch=4, steps=20)
    y = x % TOKENS.num_outputs
    batch = {"x": x, "y": y}
    mean_model, sum_model = _ptb_model("mean"), _ptb_model("sum_steps")
    out = mean_model(batch)
    ce = torch.nn.functional.cross_entropy(out.prediction.flatten(0, 1), y.flatten())
    assert out.penalty is not None and out.penalty.item() > 0
    torch.testing.assert_close(mean_model.training_step(batch, 0), ce + out.penalty)
    torch.testing.assert_close(sum_model.training_step(batch, 0), 20 * (ce + out.penalty))
