"""Variable-length batches: batch statistics (recurrent BN, BN-input) are taken over the
sequences still running at each step, so what the padding holds changes no valid output and
no running average (Laurent et al. 2016 normalize over the valid frames of a padded batch);
at steps where fewer than eight run, over the whole batch. AR/TAR count valid steps only."""

from __future__ import annotations

import pytest
import torch

from helpers import SPEC, inputs, net, run_layer

LENGTHS = torch.tensor([7, 4, 2, 7, 1, 7, 7, 7, 7, 7, 7, 7])  # 8 run to the end
VALID = torch.arange(7).unsqueeze(0) < LENGTHS.unsqueeze(1)  # (B, T)
LONG = (LENGTHS == 7).nonzero().squeeze(1)
BATCH_NORMED = [
    ("recurrent_bn", {}),
    ("bn_input", {"statistics": "frame"}),
    ("bn_input", {"statistics": "sequence"}),
]


def padded(fill: float):
    x = inputs(batch=len(LENGTHS)).clone()
    x[~VALID] = fill
    return x


def train_step(key: str, params: dict, x, lengths, mode: str = "eager"):
    """Predictions of a two-layer network after one training forward, and its buffers."""
    model = net(layers=2, **{key: params}).train()
    model.set_step_mode(mode)
    prediction = model(x, lengths).prediction
    buffers = {name: b.clone() for name, b in model.named_buffers() if "running" in name}
    return prediction, buffers


@pytest.mark.parametrize(("key", "params"), BATCH_NORMED)
def test_padding_changes_no_valid_output_and_no_running_statistic(key, params):
    small, small_buffers = train_step(key, params, padded(0.0), LENGTHS)
    large, large_buffers = train_step(key, params, padded(100.0), LENGTHS)
    torch.testing.assert_close(small[VALID], large[VALID])
    assert small_buffers.keys() == large_buffers.keys() and small_buffers
    for name, value in small_buffers.items():
        torch.testing.assert_close(value, large_buffers[name], msg=name)


@pytest.mark.parametrize(("key", "params"), BATCH_NORMED)
def test_full_lengths_give_the_unpadded_batch(key, params):
    full = torch.full((len(LENGTHS),), 7)
    x = inputs(batch=len(LENGTHS))
    with_lengths, buffers = train_step(key, params, x, full)
    without, plain_buffers = train_step(key, params, x, None)
    torch.testing.assert_close(with_lengths, without)
    for name, value in buffers.items():
        torch.testing.assert_close(value, plain_buffers[name], msg=name)


def test_step_statistics_are_those_of_the_running_sequences():
    """Step 5 of a batch where only the 8 long sequences run: its input-side batch mean is
    the mean over those rows (running mean after one update from 0: momentum × mean)."""
    model = net(layers=1, bn_input={}).train()
    x = padded(100.0)
    model(x, LENGTHS)
    projected = x.transpose(0, 1) @ model.layers[0].rnn.weight_ih_l0.T  # (T, B, 4H), no bias
    expected = projected[5, LONG].mean(0)
    running = model.regularizers[0].norms[0].running_mean[5]
    torch.testing.assert_close(running, 0.1 * expected)


@pytest.mark.slow
def test_compiled_steps_take_the_same_masked_statistics():
    eager, eager_buffers = train_step("recurrent_bn", {}, padded(100.0), LENGTHS)
    compiled, buffers = train_step("recurrent_bn", {}, padded(100.0), LENGTHS, "compile")
    torch.testing.assert_close(compiled[VALID], eager[VALID], atol=1e-5, rtol=1e-4)
    for name, value in buffers.items():
        torch.testing.assert_close(value, eager_buffers[name], atol=1e-5, rtol=1e-4, msg=name)


def test_steps_where_few_sequences_run_take_the_whole_batch():
    """Lengths [7, 7, 7, 2]: from step 2 on three sequences run, too few for statistics of
    their own (see the next test); the step takes the whole batch's, and every step of a
    sequence still counts."""
    lengths = torch.tensor([7, 7, 7, 2])
    x = inputs(batch=4).requires_grad_()
    model = net(layers=1, kind="classify_last", recurrent_bn={}).train()
    model(x, lengths).prediction[0].sum().backward()
    assert x.grad[0, 3:].abs().sum() > 0
    running = model.regularizers[0].norms[0]["x"].running_var
    projected = x.detach().transpose(0, 1) @ model.layers[0].rnn.weight_ih_l0.T
    whole = projected[5].var(0, unbiased=True)  # all four rows, unbiased as running averages
    torch.testing.assert_close(running[5], 0.9 + 0.1 * whole)


@pytest.mark.parametrize("running", [3, 4])
def test_a_few_long_sequences_do_not_make_the_recurrence_chaotic(running):
    """Recurrent BN over 32 sequences of which `running` last 40 steps: a change of 1e-5 in
    one of them at step 0 leaves a change of the same order at the last steps. With the
    statistics of those few rows alone (the SST-2 divergence), it grew 33× (4 rows) and
    2,600× (3 rows) by then."""
    steps, batch = 40, 32
    lengths = torch.tensor([steps] * running + [3] * (batch - running))
    x = torch.randn(batch, steps, SPEC.features, generator=torch.Generator().manual_seed(0))
    nudged = x.clone()
    nudged[0, 0] += 1e-5
    x, nudged = x.transpose(0, 1), nudged.transpose(0, 1)  # time-major
    model = net(layers=1, hidden=16, recurrent_bn={"gamma": 0.4}).train()
    before, after = (run_layer(model, z, lengths=lengths) for z in (x, nudged))
    change = (after - before).abs()[:, :running].amax((1, 2))
    assert change[-10:].max() < 2 * change[0]


def test_half_precision_counts_do_not_overflow():
    """70,000 valid entries: a float16 count would be inf."""
    from regbench.models.cells import batch_moments, valid_steps
    from regbench.models.variants.ar_tar import ActivationRegularization

    x = torch.randn(35, 2000, 8, generator=torch.Generator().manual_seed(3))
    lengths = torch.full((2000,), 30)
    valid = valid_steps(lengths, 35, x.device)
    mean, var = batch_moments(x.half(), valid, dims=(0, 1))
    expected = batch_moments(x, valid, dims=(0, 1))
    torch.testing.assert_close((mean.float(), var.float()), expected, atol=2e-3, rtol=2e-3)
    penalty = ActivationRegularization().train().penalty
    half = penalty(x.half(), x.half(), lengths)
    torch.testing.assert_close(half.float(), penalty(x, x, lengths), atol=1e-3, rtol=1e-3)
