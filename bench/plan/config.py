"""A run's resolved config: library defaults ← task protocol ← overrides, checked key by key.

The resolved config is everything a run's result depends on, and nothing else; its hash is
the job's identity (jobs.py). That includes how it executes (`execution`: CPU threads, device,
step mode, devices per run), since each changes the numbers. Overrides are flat dotted keys
(`train.lr`, `task.params.T`, `regularizers.zoneout.z_c`, `seeds.data`,
`execution.threads`); an unknown key or a wrong type is a ConfigError naming the key, before
anything runs. A key prefixed `variant[<variant>].` applies to that variant's jobs only (and
beats the same key unprefixed): `variant[variational+embed_dropout].regularizers.embed_dropout.
p_embed: 0.2` sets one row's rate where a grid's rows share a regularizer at other rates.

Options added after results existed (`Field.added`) are left out of a resolved config while
they hold their default, the neutral value that computes what was computed before the option
existed: every earlier job keeps its config, its id (jobs.ADDED_KEYS) and its record.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from regbench.errors import ConfigError, unknown
from regbench.models.optim import NONMONO, OPTIMIZERS, RMSPROP_ALPHA, SCHEDULES
from regbench.models.variants import CELLS, REGULARIZERS, parse_variant, variant_names
from regbench.tasks import get_task, task_names

MODEL_VERSION = 1
# Bumped when the harness changes what a run computes (data order, selection): version 2
# draws each epoch's order from (order seed, epoch), so resumed runs equal uninterrupted ones.
HARNESS_VERSION = 2
SEED_NAMES = ("data", "init", "order", "mask")


@dataclass(frozen=True)
class Field:
    """One config value: its default, type and allowed range."""

    default: Any
    kind: type
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    below: float | None = None
    nullable: bool = False
    added: bool = False  # added later: left out of a resolved config at its default

    def check(self, key: str, value: Any) -> Any:
        """The value converted to this field's type; a ConfigError naming `key` otherwise."""
        if value is None and self.nullable:
            return None
        value = _coerce(key, value, self.kind)
        if self.choices and value not in self.choices:
            raise unknown(f"value for {key}", value, self.choices)
        if self.minimum is not None and value < self.minimum:
            raise ConfigError(f"{key}: must be at least {self.minimum}, got {value}.")
        if self.below is not None and value >= self.below:
            raise ConfigError(f"{key}: must be below {self.below}, got {value}.")
        return value


def _coerce(key: str, value: Any, kind: type) -> Any:
    """`value` as a `kind`: ints are accepted as floats; a float must be finite (YAML's .nan
    and .inf are floats, but no setting means them, and JSON, which hashes the job, has none)."""
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        got = type(value).__name__
        raise ConfigError(f"{key}: expected {kind.__name__}, got {got} {value!r}.")
    if kind is float and not math.isfinite(value):
        raise ConfigError(f"{key}: must be a finite number, got {value}.")
    return value


MODEL: dict[str, Field] = {
    "cell": Field("lstm", str, CELLS),
    "hidden_size": Field(128, int, minimum=1),
    "num_layers": Field(1, int, minimum=1),
    "embedding_size": Field(0, int, minimum=0),  # 0: the hidden size (token tasks only)
    "embedding": Field("learned", str, ("learned", "one_hot")),  # token tasks only
    # default: PyTorch's; uniform: everything U(±init_scale) (Zaremba); orthogonal: gate blocks
    # (Cooijmans); uniform_ends: embedding and head U(±init_scale), head bias 0 (pytorch/examples);
    # orthogonal_identity: as orthogonal, W_hh's candidate block the identity (Cooijmans, MNIST)
    "init": Field(
        "default", str, ("default", "uniform", "orthogonal", "uniform_ends", "orthogonal_identity")
    ),
    "init_scale": Field(0.1, float, minimum=0.0),
    "forget_bias": Field(None, float, nullable=True),  # LSTM only; None keeps the init
    "tie_weights": Field(False, bool),  # head weight = embedding (Press & Wolf; Inan et al.)
    # h_0 (and c_0): zeros, or learned parameters starting at zero (Cooijmans et al. 2017,
    # Sec. 2); h0_noise: std of Gaussian noise added to h_0 in training (their Sec. 5.1)
    "initial_state": Field("zeros", str, ("zeros", "learned"), added=True),
    "h0_noise": Field(0.0, float, minimum=0.0, added=True),
}
TRAIN: dict[str, Field] = {
    "optimizer": Field("adam", str, OPTIMIZERS),
    "lr": Field(1e-3, float, minimum=0.0),
    "weight_decay": Field(0.0, float, minimum=0.0),
    "momentum": Field(0.0, float, minimum=0.0),
    "batch_size": Field(32, int, minimum=1),
    "eval_batch_size": Field(256, int, minimum=1),
    "max_epochs": Field(10, int, minimum=1),
    # at most this many batches per epoch (training) and per evaluation; 0: all (smoke runs,
    # golden-number tests)
    "limit_batches": Field(0, int, minimum=0),
    "limit_eval_batches": Field(0, int, minimum=0),
    "clip": Field(0.0, float, minimum=0.0),  # gradient-norm clipping; 0 is off
    # per-step tasks: 'mean' over positions, or 'sum_steps' (summed over the window and
    # averaged over the batch, as Zaremba et al. 2014 train with lr 1)
    "loss": Field("mean", str, ("mean", "sum_steps")),
    "schedule": Field("none", str, SCHEDULES),
    "decay_start": Field(1, int, minimum=0),
    "decay_factor": Field(0.5, float, minimum=0.0),
    "plateau_factor": Field(0.25, float, minimum=0.0),  # the lr factor of plateau and nonmono
    "plateau_patience": Field(0, int, minimum=0),
    "amsgrad": Field(False, bool, added=True),  # Adam only (Reddi et al. 2018)
    "rmsprop_alpha": Field(RMSPROP_ALPHA, float, minimum=0.0, below=1.0, added=True),  # decay
    # n of the non-monotone criterion (schedule 'nonmono', optimizer 'nt_asgd')
    "nonmono": Field(NONMONO, int, minimum=1, added=True),
}

STEP_MODES = ("auto", "eager", "compile", "graph")  # custom cells (models/speed/)
EXECUTION: dict[str, Field] = {
    "threads": Field(1, int, minimum=1),  # torch's intra-op CPU threads
    "device": Field("cpu", str, ("cpu", "cuda")),
    # auto: graph on CUDA, compile for long CPU runs (runtime.choose_step_mode)
    "step_mode": Field("auto", str, STEP_MODES),
    "devices": Field(1, int, minimum=1),  # more than 1: one run over several devices (DDP)
    # flush subnormal floats to zero on the CPU (torch.set_flush_denormal): Adagrad with
    # weight decay drives unused embedding rows into subnormals, each op on which is many
    # times slower (SST-2 epochs grew 2.2x over 6 epochs); the numbers can differ in the
    # last bits, so the setting is part of the job
    "flush_denormal": Field(False, bool),
}


def _fields_from_defaults(
    defaults: Mapping[str, Any], choices: Mapping[str, tuple[str, ...]] | None = None
) -> dict[str, Field]:
    """Fields typed by their defaults, with the given choices for string values."""
    return {
        name: Field(value, type(value), (choices or {}).get(name, ()))
        for name, value in defaults.items()
    }


def _regularizer_fields(key: str) -> dict[str, Field]:
    """A regularizer's parameters: rates (p_*, z_*) lie in [0, 1), other numbers are ≥ 0;
    those named in its `added_params` were added later (Field.added)."""
    cls = REGULARIZERS[key]
    added = getattr(cls, "added_params", ())
    fields = {}
    for name, value in cls.defaults.items():
        number = isinstance(value, float)
        fields[name] = Field(
            value,
            type(value),
            cls.choices.get(name, ()),
            minimum=0.0 if number else None,
            below=1.0 if number and name[:2] in ("p_", "z_") else None,
            added=name in added,
        )
    return fields


def schema(task: str, keys: tuple[str, ...]) -> dict[str, Field]:
    """Every settable dotted key of a run of `task` with regularizers `keys`."""
    task_cls = get_task(task)
    protocol = task_cls.protocol
    fields = {f"model.{k}": f for k, f in MODEL.items()}
    fields |= {f"train.{k}": f for k, f in TRAIN.items()}
    fields |= {f"task.params.{k}": f for k, f in _fields_from_defaults(protocol.params).items()}
    added = _fields_from_defaults(task_cls.added_params)
    fields |= {f"task.params.{k}": replace(f, added=True) for k, f in added.items()}
    fields |= {f"seeds.{k}": Field(0, int, minimum=0) for k in SEED_NAMES}
    fields |= {f"execution.{k}": f for k, f in EXECUTION.items()}
    for key in keys:
        reg = _regularizer_fields(key)
        fields |= {f"regularizers.{key}.{k}": f for k, f in reg.items()}
    return fields


def all_override_keys() -> set[str]:
    """Keys that are valid for some task and regularizer (grid-wide overrides)."""
    keys: set[str] = set()
    for task in task_names():
        keys |= set(schema(task, tuple(REGULARIZERS)))
    return keys


def resolve(
    task: str,
    variant: str,
    cell: str,
    seed: int,
    overrides: Mapping[str, Any] | None = None,
    where: str = "",
) -> dict[str, Any]:
    """The full config of one run. Overrides for keys this run lacks (another task's
    parameters, an absent regularizer's rates) are skipped; unknown keys are errors."""
    task_cls = get_task(task, where)
    protocol = task_cls.protocol
    keys = parse_variant(variant, cell, protocol.tokens, where)
    fields = schema(task, keys)
    flat = {k: f.default for k, f in fields.items()}
    flat |= _prefixed("model", protocol.model) | _prefixed("train", protocol.train)
    flat |= _prefixed("task.params", protocol.params)
    flat |= _prefixed("execution", protocol.execution)
    for key in keys:
        flat |= _prefixed(f"regularizers.{key}", protocol.regularizers.get(key, {}))
    flat |= {f"seeds.{k}": seed for k in SEED_NAMES} | {"model.cell": cell}
    plain, scoped = _scoped(overrides or {}, variant, where)
    flat |= _applicable(plain, fields, where) | _applicable(scoped, fields, where)
    checked = {k: fields[k].check(_where(where, k), v) for k, v in flat.items()}
    checked = {k: v for k, v in checked.items() if not _neutral(fields[k], v)}
    _check_options(checked, where)
    config = _nest(checked)
    config.setdefault("task", {}).setdefault("params", {})  # a task without parameters
    problem = task_cls.check_params(config["task"]["params"])
    if problem:
        raise ConfigError(f"{_where(where, 'task.params')}: {problem}")
    _finish(config, protocol, variant, seed, keys)
    return config


def _prefixed(prefix: str, values: Mapping[str, Any]) -> dict[str, Any]:
    return {f"{prefix}.{k}": v for k, v in values.items()}


def _where(where: str, key: str) -> str:
    return f"{where}: {key}" if where else key


def _neutral(field: Field, value: Any) -> bool:
    """Whether `value` is an added option's default (left out of the resolved config)."""
    return field.added and type(value) is type(field.default) and value == field.default


SCOPED = re.compile(r"variant\[(?P<variant>[^\]]+)\]\.(?P<key>.+)")


def _scoped(
    overrides: Mapping[str, Any], variant: str, where: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The unprefixed overrides, and the `variant[<variant>].`-prefixed ones of this variant
    (prefix removed); a prefix naming an unknown variant is an error."""
    plain, scoped = {}, {}
    for key, value in overrides.items():
        match = SCOPED.fullmatch(key)
        if match is None:
            plain[key] = value
            continue
        for part in match["variant"].split("+"):
            if part not in variant_names():
                raise unknown("variant", part, variant_names(), _where(where, key))
        if match["variant"] == variant:
            scoped[match["key"]] = value
        elif match["key"] not in all_override_keys():
            raise unknown("config key", match["key"], all_override_keys(), where)
    return plain, scoped


# Options that apply only with another setting: the test of the setting, and its description.
REQUIRES = {
    "train.amsgrad": (lambda f: f["train.optimizer"] == "adam", "optimizer 'adam'"),
    "train.rmsprop_alpha": (lambda f: f["train.optimizer"] == "rmsprop", "optimizer 'rmsprop'"),
    "train.nonmono": (
        lambda f: f["train.schedule"] == "nonmono" or f["train.optimizer"] == "nt_asgd",
        "schedule 'nonmono' or optimizer 'nt_asgd'",
    ),
}


def _check_options(flat: Mapping[str, Any], where: str) -> None:
    """Options set where they do not apply, and settings that contradict one another: a
    ConfigError naming the key."""
    for key, (applies, what) in REQUIRES.items():
        if key in flat and not applies(flat):
            raise ConfigError(f"{_where(where, key)}: applies to {what} only; remove it.")
    if flat.get("task.params.variable_bptt") and flat["train.loss"] != "mean":
        raise ConfigError(
            f"{_where(where, 'task.params.variable_bptt')}: rescales the lr per window "
            "(Merity et al. 2017), which a loss summed over the window does again; set "
            "train.loss: mean."
        )
    zoneout = "regularizers.zoneout."
    if flat.get(f"{zoneout}masks") == "shared" and flat[f"{zoneout}z_c"] != flat[f"{zoneout}z_h"]:
        raise ConfigError(
            f"{_where(where, zoneout + 'masks')}: one mask shared by c and h needs z_c == z_h, "
            f"got {flat[zoneout + 'z_c']} and {flat[zoneout + 'z_h']}."
        )


def _applicable(overrides: Mapping[str, Any], fields: Mapping[str, Field], where: str) -> dict:
    valid = all_override_keys() | set(fields)
    for key in overrides:
        if key not in valid:
            raise unknown("config key", key, valid, where)
    return {k: v for k, v in overrides.items() if k in fields}


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for key, value in flat.items():
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def _finish(
    config: dict[str, Any], protocol: Any, variant: str, seed: int, keys: tuple[str, ...]
) -> None:
    """Add what is derived, not set: names, versions, the embedding size default."""
    config["task"] = {"name": protocol.name, "version": protocol.version, **config["task"]}
    config["variant"] = variant
    config["seed"] = seed
    config.setdefault("regularizers", {})
    config["regularizers"] = {k: config["regularizers"].get(k, {}) for k in keys}
    model = config["model"]
    if model["tie_weights"] and not protocol.tokens:
        raise ConfigError(f"{protocol.name}: model.tie_weights needs a task with token inputs.")
    if not protocol.tokens or model["embedding"] == "one_hot":
        model["embedding_size"] = 0
    elif model["embedding_size"] == 0:
        model["embedding_size"] = model["hidden_size"]
    if model["tie_weights"] and model["embedding_size"] != model["hidden_size"]:
        raise ConfigError(
            f"{protocol.name}: model.tie_weights needs embedding_size == "
            f"hidden_size, got {model['embedding_size']} and {model['hidden_size']}."
        )
    config["versions"] = {
        "harness": HARNESS_VERSION,
        "model": MODEL_VERSION,
        "regularizers": {k: REGULARIZERS[k].version for k in keys},
    }


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings → dotted keys (the inverse of the nesting above)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat |= flatten(value, dotted)
        else:
            flat[dotted] = value
    return flat
