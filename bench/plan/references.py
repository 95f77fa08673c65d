"""Published numbers a grid declares under `references:`, read and checked with the grid
(report/references.py sets ours beside them).

    references:
      - task: copy_memory            # a row of this grid: task, variant, cell, sweep point
        variant: none
        cell: lstm                   # optional when the grid has one cell
        point: {train.lr: 0.01}      # optional: the sweep point (a mapping or its label)
        split: test                  # optional: test (default) or val
        value: 0.0204                # in the task metric's units (accuracy as a fraction)
        source: Bai et al. 2018 (TCN), Table 1
        tolerance: {range: [0.0195, 0.0210]}   # or {plus_minus: 4}, {min: 0.842}, {max: 0.2}
        note: free text              # optional

"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from regbench.errors import ConfigError, unknown

KEYS = ("task", "variant", "cell", "point", "split", "value", "source", "tolerance", "note")
TOLERANCES = ("range", "plus_minus", "min", "max")
SPLITS = ("test", "val")


@dataclass(frozen=True)
class Reference:
    """A published value for one row of a grid, and the interval that counts as a match."""

    task: str
    variant: str
    cell: str
    point: str
    value: float
    source: str
    low: float
    high: float
    rule: str  # the tolerance as written: "[0.0195, 0.021]", "± 4", "≥ 0.842"
    split: str = "test"
    note: str = ""

    @property
    def key(self) -> tuple[str, str, str, str]:
        """The row it names: (task, cell, variant, sweep point), a report's row key."""
        return (self.task, self.cell, self.variant, self.point)

    def accepts(self, x: float) -> bool:
        return self.low <= x <= self.high


def parse_references(
    value: Any,
    axes: Mapping[str, Sequence[str]],
    label: Callable[[Mapping[str, Any]], str],
    where: str,
) -> list[Reference]:
    """The grid file's `references`; `axes` holds its task, variant, cell and point names
    (points as sweep labels, [""] without a sweep), `label` turns a point mapping into one."""
    if not isinstance(value, list):
        raise ConfigError(f"{where}: references must be a list of mappings, got {value!r}.")
    return [
        _reference(item, axes, label, f"references[{i}]", where) for i, item in enumerate(value)
    ]


def _reference(
    item: Any,
    axes: Mapping[str, Sequence[str]],
    label: Callable[[Mapping[str, Any]], str],
    key: str,
    where: str,
) -> Reference:
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: {key} must be a mapping, got {item!r}.")
    for name in item:
        if name not in KEYS:
            raise unknown(f"key in {key}", str(name), KEYS, where)
    for name in ("task", "variant", "value", "source", "tolerance"):
        if name not in item:
            raise ConfigError(f"{where}: {key} is missing {name!r}.")
    point = item.get("point", "")
    if isinstance(point, dict):
        point = label(_flat(point))
    names = {
        "task": _text(item["task"], f"{key}.task", where),
        "variant": _text(item["variant"], f"{key}.variant", where),
        "cell": _text(item.get("cell", axes["cell"][0]), f"{key}.cell", where),
        "point": _text(point, f"{key}.point", where, empty=True),
        "split": _text(item.get("split", "test"), f"{key}.split", where),
    }
    for axis, name in names.items():
        valid = SPLITS if axis == "split" else axes[axis]
        if name not in valid:
            raise unknown(f"{axis} in {key}.{axis}", name, valid, where)
    number = _number(item["value"], f"{key}.value", where)
    low, high, rule = _tolerance(item["tolerance"], number, f"{key}.tolerance", where)
    return Reference(
        **names,
        value=number,
        source=_text(item["source"], f"{key}.source", where),
        low=low,
        high=high,
        rule=rule,
        note=_text(item.get("note", ""), f"{key}.note", where, empty=True),
    )


def _flat(point: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in point.items():
        dotted = f"{prefix}.{k}" if prefix else str(k)
        out |= _flat(v, dotted) if isinstance(v, dict) else {dotted: v}
    return out


def _text(value: Any, key: str, where: str, empty: bool = False) -> str:
    if not isinstance(value, str) or (not value and not empty):
        raise ConfigError(f"{where}: {key} must be a non-empty string, got {value!r}.")
    return value


def _number(value: Any, key: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ConfigError(f"{where}: {key} must be a number, got {value!r}.")
    return float(value)


def _tolerance(value: Any, center: float, key: str, where: str) -> tuple[float, float, str]:
    """(low, high, rule text) of a tolerance with exactly one of range, plus_minus, min, max."""
    if not isinstance(value, dict) or len(value) != 1:
        raise ConfigError(
            f"{where}: {key} must be a mapping with one of {', '.join(TOLERANCES)}, "
            f"e.g. {{plus_minus: 4}}, got {value!r}."
        )
    ((kind, bound),) = value.items()
    if kind not in TOLERANCES:
        raise unknown(f"kind of {key}", str(kind), TOLERANCES, where)
    if kind == "range":
        if not isinstance(bound, list) or len(bound) != 2:
            raise ConfigError(f"{where}: {key}.range must be [low, high], got {bound!r}.")
        low, high = (_number(b, f"{key}.range", where) for b in bound)
        if low > high:
            raise ConfigError(f"{where}: {key}.range must have low ≤ high, got {bound!r}.")
        return low, high, f"[{low:g}, {high:g}]"
    number = _number(bound, f"{key}.{kind}", where)
    if kind == "plus_minus":
        if number < 0:
            raise ConfigError(f"{where}: {key}.plus_minus must be ≥ 0, got {bound!r}.")
        return center - number, center + number, f"± {number:g}"
    if kind == "min":
        return number, math.inf, f"≥ {number:g}"
    return -math.inf, number, f"≤ {number:g}"
