"""A job: one resolved config, identified by the hash of its content."""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ID_LENGTH = 12


# Config keys added after results existed, with the value that means "as before the key
# existed": a config at that value hashes as it did before, so adding an option does not turn
# every finished run into a new job. Add each new key here with its neutral value; a section
# added whole is listed too, with the neutral value {} (left empty by its keys' removal).
ADDED_KEYS: dict[tuple[str, ...], Any] = {
    ("model", "tie_weights"): False,
    ("train", "limit_batches"): 0,
    ("train", "limit_eval_batches"): 0,
    # the execution of every run before the section existed: 1 thread, CPU, auto, 1 device
    ("execution", "threads"): 1,
    ("execution", "device"): "cpu",
    ("execution", "step_mode"): "auto",
    ("execution", "devices"): 1,
    ("execution", "flush_denormal"): False,
    ("execution",): {},
    # protocol features (config.py leaves these out of a resolved config at these values, so
    # they never reach an identity there; listed for configs written with them)
    ("model", "initial_state"): "zeros",
    ("model", "h0_noise"): 0.0,
    ("train", "amsgrad"): False,
    ("train", "rmsprop_alpha"): 0.99,
    ("train", "nonmono"): 5,
    ("task", "params", "variable_bptt"): False,
    ("regularizers", "zoneout", "masks"): "separate",
}


# What a config that limits its batches computes changed: limited evaluation reads a random
# subset drawn from the data seed (not the first batches), and `auto` step mode counts the
# limited batches. Such configs carry this version in their identity, so their old runs are
# other jobs; configs without limits (every grid's) hash as before.
LIMITS_VERSION = 2


def identity(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config without added keys at their neutral value (deepest keys first, so that a
    section added whole is dropped once its keys are), with the limits' version where a
    limit is set."""
    view = copy.deepcopy(dict(config))
    train = view.get("train", {})
    if train.get("limit_batches") or train.get("limit_eval_batches"):
        train["limits_version"] = LIMITS_VERSION
    for path, neutral in sorted(ADDED_KEYS.items(), key=lambda item: -len(item[0])):
        node = view
        for part in path[:-1]:
            node = node.get(part, {})
        if path[-1] in node and node[path[-1]] == neutral:
            del node[path[-1]]
    return view


def config_hash(config: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a resolved config's identity."""
    canonical = json.dumps(identity(config), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Job:
    """One run of a grid. `point` names the grid's sweep point (display only)."""

    config: Mapping[str, Any]
    point: str = field(default="", compare=False)

    @functools.cached_property
    def id(self) -> str:
        return config_hash(self.config)[:ID_LENGTH]

    @property
    def seed(self) -> int:
        return self.config["seed"]

    @property
    def row_key(self) -> tuple[str, str, str, str]:
        """The table row this job contributes to: task, cell, variant, sweep point."""
        c = self.config
        return (c["task"]["name"], c["model"]["cell"], c["variant"], self.point)

    @property
    def label(self) -> str:
        task, cell, variant, point = self.row_key
        parts = [task, variant, cell, *([point] if point else []), f"seed {self.seed}"]
        return " · ".join(parts)
