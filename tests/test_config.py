"""Config resolution and job identity: defaults ← protocol ← overrides, errors before runs."""

from __future__ import annotations

import pytest

from regbench.errors import ConfigError
from regbench.models.variants import REGULARIZERS
from regbench.plan.config import resolve
from regbench.plan.jobs import Job


def test_protocol_defaults_and_overrides_are_resolved():
    config = resolve("adding", "zoneout", "lstm", 4, {"train.lr": 0.5, "task.params.T": 20})
    assert config["task"] == {
        "name": "adding",
        "version": 1,
        "params": {"T": 20, "n_train": 50_000, "n_val": 1000, "n_test": 1000},
    }
    assert config["train"]["lr"] == 0.5 and config["train"]["clip"] == 5.0
    assert config["model"]["hidden_size"] == 130 and config["model"]["forget_bias"] == 1.0
    assert config["regularizers"] == {"zoneout": {"z_c": 0.15, "z_h": 0.15}}
    assert config["seeds"] == {"data": 4, "init": 4, "order": 4, "mask": 4}
    assert config["versions"]["regularizers"] == {"zoneout": REGULARIZERS["zoneout"].version}


def test_named_seeds_can_be_pinned_separately():
    config = resolve("adding", "none", "lstm", 4, {"seeds.data": 0})
    assert config["seeds"] == {"data": 0, "init": 4, "order": 4, "mask": 4}


@pytest.mark.parametrize(
    ("args", "overrides", "fragment"),
    [
        (("seq_digit", "none", "lstm"), {}, "unknown task 'seq_digit'. Did you mean 'seq_digits'"),
        (("adding", "zonout", "lstm"), {}, "unknown variant 'zonout'. Did you mean 'zoneout'"),
        (("adding", "none", "lstmm"), {}, "unknown cell 'lstmm'"),
        (("adding", "none", "lstm"), {"train.lrr": 1}, "unknown config key 'train.lrr'. Did you"),
        (("adding", "none", "lstm"), {"train.lr": "fast"}, "train.lr: expected float, got str"),
        (("adding", "none", "lstm"), {"train.max_epochs": 2.5}, "expected int"),
        (("adding", "none", "lstm"), {"train.optimizer": "adamw"}, "Valid: adagrad, adam"),
        (("adding", "zoneout", "lstm"), {"regularizers.zoneout.z_h": 1.0}, "must be below 1"),
        (("adding", "none+zoneout", "lstm"), {}, "'none' cannot be combined"),
        (("adding", "zoneout+zoneout", "lstm"), {}, "repeats a regularizer"),
    ],
)
def test_bad_input_is_a_one_line_config_error(args, overrides, fragment):
    with pytest.raises(ConfigError, match=None) as err:
        resolve(*args, 0, overrides)
    message = str(err.value)
    assert fragment in message and "\n" not in message


def test_overrides_for_absent_regularizers_and_other_tasks_are_skipped():
    config = resolve(
        "adding", "none", "lstm", 0, {"regularizers.zoneout.z_h": 0.3, "task.params.split_seed": 2}
    )
    assert config["regularizers"] == {} and "split_seed" not in config["task"]["params"]


def test_job_id_is_a_content_hash_stable_under_int_float_spelling():
    a = Job(resolve("adding", "none", "lstm", 0, {"train.lr": 1}))
    b = Job(resolve("adding", "none", "lstm", 0, {"train.lr": 1.0}))
    c = Job(resolve("adding", "none", "lstm", 0, {"train.lr": 1.5}))
    assert a.id == b.id != c.id and len(a.id) == 12


def test_every_identity_field_changes_the_id():
    base = Job(resolve("adding", "zoneout", "lstm", 0)).id
    others = [
        resolve("adding", "zoneout", "lstm", 1),
        resolve("adding", "zoneout", "gru", 0),
        resolve("adding", "dropout", "lstm", 0),
        resolve("adding", "zoneout", "lstm", 0, {"regularizers.zoneout.z_c": 0.2}),
        resolve("adding", "zoneout", "lstm", 0, {"seeds.mask": 9}),
    ]
    ids = {Job(c).id for c in others}
    assert base not in ids and len(ids) == len(others)


def test_an_option_added_later_keeps_old_ids_at_its_neutral_value():
    from regbench.plan.jobs import config_hash

    config = resolve("ptb_word", "none", "lstm", 0)
    assert config["model"]["tie_weights"] is False
    before = {**config, "model": {k: v for k, v in config["model"].items() if k != "tie_weights"}}
    assert config_hash(config) == config_hash(before)
    tied = resolve("ptb_word", "none", "lstm", 0, {"model.tie_weights": True})
    assert config_hash(tied) != config_hash(config)


def test_tied_weights_need_tokens_and_equal_sizes():
    with pytest.raises(ConfigError, match="tie_weights needs a task with token inputs"):
        resolve("adding", "none", "lstm", 0, {"model.tie_weights": True})
    with pytest.raises(ConfigError, match="embedding_size == hidden_size"):
        resolve(
            "ptb_word", "none", "lstm", 0, {"model.tie_weights": True, "model.embedding_size": 100}
        )
