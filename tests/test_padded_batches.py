"""Variable-length batches: batch statistics (recurrent BN, BN-input) are taken over the
sequences still running at each step, so what the padding holds changes no valid output and
no running average (Laurent et al. 2016 normalize over the valid frames of a padded batch)."""

from __future__ import annotations

import pytest
import torch

from helpers import inputs, net

LENGTHS = torch.tensor([7, 4, 2, 7, 1])
VALID = torch.arange(7).unsqueeze(0) < LENGTHS.unsqueeze(1)  # (B, T)
BATCH_NORMED = [
    ("recurrent_bn", {}),
    ("bn_input", {"statistics": "frame"}),
    ("bn_input", {"statistics": "sequence"}),
]


def padded(fill: float):
    x = inputs().clone()
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
    full = torch.full((5,), 7)
    with_lengths, buffers = train_step(key, params, inputs(), full)
    without, plain_buffers = train_step(key, params, inputs(), None)
    torch.testing.assert_close(with_lengths, without)
    for name, value in buffers.items():
        torch.testing.assert_close(value, plain_buffers[name], msg=name)


def test_step_statistics_are_those_of_the_running_sequences():
    """Step 5 of a batch where only sequences 0 and 3 run: its input-side batch mean is the
    mean over those two rows (running mean after one update from 0: momentum × mean)."""
    model = net(layers=1, bn_input={}).train()
    x = padded(100.0)
    model(x, LENGTHS)
    projected = x.transpose(0, 1) @ model.layers[0].rnn.weight_ih_l0.T  # (T, B, 4H), no bias
    expected = projected[5, [0, 3]].mean(0)
    running = model.regularizers[0].norms[0].running_mean[5]
    torch.testing.assert_close(running, 0.1 * expected)


def test_compiled_steps_take_the_same_masked_statistics():
    eager, eager_buffers = train_step("recurrent_bn", {}, padded(100.0), LENGTHS)
    compiled, buffers = train_step("recurrent_bn", {}, padded(100.0), LENGTHS, "compile")
    torch.testing.assert_close(compiled[VALID], eager[VALID], atol=1e-5, rtol=1e-4)
    for name, value in buffers.items():
        torch.testing.assert_close(value, eager_buffers[name], atol=1e-5, rtol=1e-4, msg=name)
