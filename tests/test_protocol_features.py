"""Protocol features of the published comparisons: each one's defining behaviour, and that
none of them changes a config (or a job id) that does not ask for it."""

from __future__ import annotations

import copy
import io

import numpy as np
import pytest
import torch

import fixtures
from helpers import inputs, net, reference_lstm, run_layer
from regbench.errors import ConfigError
from regbench.models import optim
from regbench.models.module import SequenceModel, build_network
from regbench.models.optim import (
    WeightAverage,
    build_optimizer,
    build_schedule,
    non_monotone,
    scaled_lr,
)
from regbench.models.plan import StepPlan
from regbench.plan.config import flatten, resolve, schema
from regbench.plan.jobs import ADDED_KEYS, config_hash
from regbench.run.rundir import RunDir
from regbench.run.train import Runtime, train
from regbench.tasks import get_task, ptb
from regbench.tasks.base import InputSpec
from regbench.tasks.language import BpttWindows, VariableWindows

TRAIN = {"lr": 1.0, "weight_decay": 0.0, "momentum": 0.0}


# -- the non-monotone trigger (Merity et al. 2017) and the lr ÷ 4 on it (Wen et al. 2018) --


def test_the_trigger_compares_with_the_best_check_more_than_n_checks_back():
    history = [5.0, 4.0, 3.0, 3.5, 3.6]
    # n = 2: the checks more than 2 back are 5, 4, 3; only a value worse than 3 fires
    assert non_monotone(history, 3.01, 2)
    assert not non_monotone(history, 3.0, 2) and not non_monotone(history, 2.9, 2)
    # n = 3: the checks more than 3 back are 5, 4; the recent 3.0 does not count
    assert not non_monotone(history, 3.9, 3) and non_monotone(history, 4.1, 3)
    assert not non_monotone([1.0, 1.0], 9.0, 2)  # fewer than n + 1 checks: never


def test_nonmono_schedule_divides_the_lr_at_each_firing_and_keeps_its_history():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=30.0)
    cfg = {"schedule": "nonmono", "plateau_factor": 0.25, "nonmono": 2}
    sched = build_schedule(opt, cfg)["scheduler"]
    lrs = []
    for value in [5.0, 4.0, 3.0, 3.5, 3.6, 2.9, 3.0, 3.1, 3.2]:
        sched.step(torch.tensor(value))
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs == [30.0] * 7 + [7.5, 1.875]
    buffer = io.BytesIO()
    torch.save(sched.state_dict(), buffer)
    buffer.seek(0)
    again = build_schedule(torch.optim.SGD([param], lr=1.0), cfg)["scheduler"]
    again.load_state_dict(torch.load(buffer, weights_only=True))
    assert again.history == sched.history and len(again.history) == 9


def test_nt_asgd_averages_the_iterates_after_the_trigger_only():
    layer = torch.nn.Linear(2, 1)
    average = WeightAverage(layer, n=1)
    for value in (3.0, 2.0):
        assert not average.check(value)
    with torch.no_grad():
        layer.weight.fill_(7.0)
    average.update(layer)  # not yet averaging: ignored
    assert average.weights() is None
    assert average.check(4.0) and not average.check(9.0)  # 4 > min(3): fires, once
    iterates = []
    for w in (1.0, 2.0, 6.0):
        with torch.no_grad():
            layer.weight.fill_(w)
        average.update(layer)
        iterates.append(w)
    assert torch.allclose(average.weights()["weight"], torch.full((1, 2), np.mean(iterates)))


NT_ASGD = {"train.optimizer": "nt_asgd", "train.lr": 1.0}


def test_nt_asgd_evaluates_the_model_with_the_averaged_weights():
    config = resolve("adding", "none", "lstm", 0, {"model.hidden_size": 8, **NT_ASGD})
    model = SequenceModel(config, InputSpec(num_outputs=1, features=2), get_task("adding").protocol)
    batch = {"x": torch.randn(3, 5, 2), "y": torch.randn(3)}
    raw = model.eval()(batch, "val").prediction
    shifted = copy.deepcopy(model.net)
    with torch.no_grad():
        for p in shifted.parameters():
            p.add_(0.1)
    model.averager.active.fill_(True)
    model.averager.update(shifted)  # the first averaged iterate: the shifted weights
    expected = shifted.eval()(batch["x"]).prediction
    torch.testing.assert_close(model(batch, "val").prediction, expected)
    assert not torch.allclose(expected, raw)
    torch.testing.assert_close(model.train()(batch, "train").prediction, raw)  # trains raw
    assert {"averager.mean_0", "averager.steps", "averager.active"} <= set(model.state_dict())


@pytest.mark.slow
def test_nt_asgd_runs_switches_and_checkpoints(tmp_path, tiny, monkeypatch):
    monkeypatch.setattr(optim, "non_monotone", lambda history, value, n: True)
    config = resolve("adding", "none", "lstm", 0, {**tiny["adding"], **NT_ASGD})
    train(config, tmp_path / "r", Runtime())
    run = RunDir(tmp_path / "r")
    last = torch.load(run.checkpoints / "last.ckpt", weights_only=False)
    history = [row["val/loss"] for row in run.epochs()]  # one check per epoch
    assert last["nonmono_history"] == pytest.approx(history) and len(history) == 2
    state = last["state_dict"]
    assert bool(state["averager.active"]) and int(state["averager.steps"]) > 0


# -- AMSGrad, RMSprop's decay and momentum -----------------------------------------------------


def _stepped(cfg: dict) -> tuple[torch.optim.Optimizer, dict]:
    param = torch.nn.Parameter(torch.ones(3))
    opt = build_optimizer([param], {**TRAIN, **cfg})
    param.grad = torch.full((3,), 2.0)
    opt.step()
    return opt, opt.state[param]


def test_amsgrad_keeps_the_largest_second_moment():
    opt, state = _stepped({"optimizer": "adam", "amsgrad": True})
    assert opt.param_groups[0]["amsgrad"] and "max_exp_avg_sq" in state
    assert "max_exp_avg_sq" not in _stepped({"optimizer": "adam"})[1]


def test_rmsprop_decay_and_momentum():
    _, decayed = _stepped({"optimizer": "rmsprop", "rmsprop_alpha": 0.5})
    assert torch.allclose(decayed["square_avg"], torch.full((3,), 0.5 * 4.0))  # (1 − α) g²
    _, default = _stepped({"optimizer": "rmsprop"})
    assert torch.allclose(default["square_avg"], torch.full((3,), 0.01 * 4.0))
    _, moving = _stepped({"optimizer": "rmsprop", "momentum": 0.9})
    assert "momentum_buffer" in moving


# -- variable-length BPTT with the lr rescaled per window (Merity et al. 2017, Sec. 4.1) -------


def test_variable_windows_cover_the_stream_with_the_papers_lengths():
    sampler = VariableWindows(200_000, 70, seed=3)
    windows = list(sampler)
    starts, lengths = np.array(windows).T
    assert starts[0] == 0 and (starts[1:] == starts[:-1] + lengths[:-1]).all()
    assert starts[-1] + lengths[-1] == 200_000 - 1
    assert lengths[:-1].min() >= 5
    short = (lengths[:-1] < 52).mean()  # N(35, 5) windows, drawn with probability 0.05
    assert 0.03 < short < 0.07 and abs(lengths[lengths >= 52].mean() - 69.5) < 0.5
    assert windows == list(sampler)  # the epoch's windows depend on (seed, epoch) only
    sampler.set_epoch(1)
    assert windows != list(sampler)


def test_a_variable_window_carries_its_lr_scale():
    windows = BpttWindows(torch.arange(101), rows=1, bptt=10)
    item = windows[(20, 7)]
    assert item["x"].tolist() == [list(range(20, 27))] and item["y"][0, 0] == 21
    assert item["lr_scale"] == 0.7 and "lr_scale" not in windows[0]


def test_the_step_runs_at_the_scaled_lr_and_restores_it():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=2.0)
    param.grad = torch.ones(1)
    with scaled_lr(opt, 0.5):
        assert opt.param_groups[0]["lr"] == 1.0
        opt.step()
    assert opt.param_groups[0]["lr"] == 2.0 and param.item() == -1.0
    model = SequenceModel(
        resolve("adding", "none", "lstm", 0, {"model.hidden_size": 4}),
        InputSpec(num_outputs=1, features=2),
        get_task("adding").protocol,
    )
    model.on_train_batch_start({"x": torch.zeros(1, 3, 2), "lr_scale": 0.25}, 0)
    assert model.lr_scale == 0.25


@pytest.mark.slow
def test_variable_bptt_trains_with_a_validation_every_epoch(tmp_path, monkeypatch):
    monkeypatch.setattr(ptb, "WORD_MD5", fixtures.write_ptb(tmp_path))
    monkeypatch.setattr(ptb.PtbWord, "expected_tokens", lambda self: None)
    overrides = {
        **fixtures.TINY_VARIABLE_PTB,
        "train.schedule": "nonmono",
    }
    config = resolve("ptb_word", "none", "lstm", 0, overrides)
    result = train(config, tmp_path / "r", Runtime(data_dir=str(tmp_path)))
    epochs = RunDir(tmp_path / "r").epochs()
    assert [e["epoch"] for e in epochs] == [0, 1] and all("val/perplexity" in e for e in epochs)
    assert np.isfinite(result["test"]["perplexity"])


# -- Cooijmans et al. 2017: identity W_hh among orthogonal weights, a learned (noisy) h_0 ------


def _mnist_net(overrides: dict) -> torch.nn.Module:
    config = resolve("smnist", "none", "lstm", 0, {"model.hidden_size": 6, **overrides})
    return build_network(config, InputSpec(num_outputs=10, features=1), "classify_last")


def test_identity_init_puts_the_identity_in_the_candidate_block_only():
    rnn = _mnist_net({"model.init": "orthogonal_identity"}).layers[0].rnn
    i, f, g, o = rnn.weight_hh_l0.detach().chunk(4, 0)
    assert torch.equal(g, torch.eye(6))
    for block in (i, f, o):
        torch.testing.assert_close(block @ block.T, torch.eye(6), atol=1e-5, rtol=0)
    for block in rnn.weight_ih_l0.detach().chunk(4, 0):  # (6, 1) columns of unit norm
        torch.testing.assert_close(block.norm(), torch.tensor(1.0))
    assert rnn.bias_hh_l0.abs().sum() == 0 and rnn.bias_ih_l0[6:12].eq(1.0).all()  # forget 1


def test_a_learned_initial_state_starts_at_zero_and_is_trained():
    plain = _mnist_net({})
    learned = _mnist_net({"model.initial_state": "learned", "model.init": "uniform"})
    assert [p.abs().sum().item() for p in learned.initial] == [0.0, 0.0]
    x = inputs(steps=4)[..., :1]
    learned(x).prediction.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in learned.initial)
    before = learned(x).prediction
    with torch.no_grad():
        learned.initial[0].fill_(0.5)
    assert not torch.allclose(learned(x).prediction, before)
    n_plain = sum(p.numel() for p in plain.parameters())
    assert sum(p.numel() for p in learned.parameters()) == n_plain + 2 * 6


def test_noise_on_h0_is_drawn_in_training_and_absent_at_evaluation():
    torch.manual_seed(0)
    noisy = _mnist_net({"model.h0_noise": 0.5})
    torch.manual_seed(0)
    quiet = _mnist_net({})
    x = inputs(steps=3)[..., :1]
    assert not torch.equal(noisy.train()(x).prediction, noisy.train()(x).prediction)
    torch.testing.assert_close(noisy.eval()(x).prediction, quiet.eval()(x).prediction)


# -- zoneout with one mask shared by c and h (Krueger et al. 2017, permuted MNIST) ------------


def test_shared_zoneout_zones_c_and_h_out_together():
    model = net(layers=1, zoneout={"z_c": 0.3, "z_h": 0.3, "masks": "shared"}).train()
    x = inputs().transpose(0, 1)
    plan = StepPlan(cell="lstm", steps=7, batch=5, hidden=6, like=x)
    torch.manual_seed(7)
    model.regularizers[0].plan_steps(plan, 0)
    assert plan.zone_h is plan.zone_c and abs(torch.stack(plan.zone_h).mean() - 0.3) < 0.15
    torch.manual_seed(7)
    out = run_layer(model, x)
    expected = reference_lstm(x, model.layers[0].rnn, zone_h=plan.zone_h, zone_c=plan.zone_h)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-5)


def test_shared_zoneout_needs_one_rate():
    with pytest.raises(ConfigError, match=r"regularizers\.zoneout\.masks: one mask shared"):
        overrides = {"regularizers.zoneout.masks": "shared", "regularizers.zoneout.z_c": 0.5}
        resolve("pmnist", "zoneout", "lstm", 0, overrides)


# -- configs: added options are neutral by default, scoped overrides, misplaced options -------


def test_added_options_are_left_out_at_their_neutral_values():
    plain = resolve("ptb_word", "zoneout", "lstm", 0)
    spelled = {
        "model.initial_state": "zeros",
        "model.h0_noise": 0.0,
        "task.params.variable_bptt": False,
        "regularizers.zoneout.masks": "separate",
    }
    assert resolve("ptb_word", "zoneout", "lstm", 0, spelled) == plain
    added = {k: f for k, f in schema("ptb_word", ("zoneout",)).items() if f.added}
    assert set(added) == set(spelled) | {"train.amsgrad", "train.rmsprop_alpha", "train.nonmono"}
    for key, field in added.items():  # left out, and neutral in the job identity too
        assert key not in flatten(plain) and ADDED_KEYS[tuple(key.split("."))] == field.default
    changed = resolve("ptb_word", "zoneout", "lstm", 0, {"model.h0_noise": 0.1})
    assert config_hash(changed) != config_hash(plain)


def test_a_variant_scoped_override_applies_to_that_variant_only():
    overrides = {
        "regularizers.embed_dropout.p_embed": 0.1,
        "variant[variational+embed_dropout].regularizers.embed_dropout.p_embed": 0.2,
    }
    gal = resolve("ptb_word", "variational+embed_dropout", "lstm", 0, overrides)
    other = resolve("ptb_word", "dropout+embed_dropout", "lstm", 0, overrides)
    assert gal["regularizers"]["embed_dropout"]["p_embed"] == 0.2
    assert other["regularizers"]["embed_dropout"]["p_embed"] == 0.1
    with pytest.raises(ConfigError, match="unknown variant 'zonout'"):
        resolve("ptb_word", "none", "lstm", 0, {"variant[zonout].train.lr": 1.0})


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"train.amsgrad": True}, "train.amsgrad: applies to optimizer 'adam' only"),
        ({"train.rmsprop_alpha": 0.5}, "train.rmsprop_alpha: applies to optimizer 'rmsprop'"),
        ({"train.nonmono": 3}, "train.nonmono: applies to schedule 'nonmono' or optimizer"),
        ({"task.params.variable_bptt": True}, "set train.loss: mean"),
    ],
)
def test_an_option_where_it_does_not_apply_is_a_config_error(overrides, fragment):
    with pytest.raises(ConfigError, match=None) as err:
        resolve("ptb_word", "none", "lstm", 0, overrides)  # sgd, decay, summed loss
    assert fragment in str(err.value) and "\n" not in str(err.value)
