"""Variants: a name (or several joined by '+') resolving to a list of regularizers.

A variant name is either a regularizer key (`zoneout`), a named recipe composed of several
(`awd`, later), or a composition such as `dropout+zoneout`. `none` is the plain cell.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from regbench.errors import ConfigError, unknown
from regbench.models.variants.base import CELLS, Regularizer
from regbench.models.variants.dropout import ZarembaDropout
from regbench.models.variants.variational import VariationalDropout
from regbench.models.variants.zoneout import Zoneout

REGULARIZERS: dict[str, type[Regularizer]] = {
    cls.key: cls for cls in (ZarembaDropout, VariationalDropout, Zoneout)
}
RECIPES: dict[str, tuple[str, ...]] = {"none": ()}


def variant_names() -> list[str]:
    return sorted({*RECIPES, *REGULARIZERS})


def parse_variant(name: str, cell: str, tokens: bool = True, where: str = "") -> tuple[str, ...]:
    """The regularizer keys of a variant, checked against the cell and the task's inputs."""
    keys: list[str] = []
    for part in name.split("+"):
        if part in RECIPES:
            keys.extend(RECIPES[part])
        elif part in REGULARIZERS:
            keys.append(part)
        else:
            raise unknown("variant", part, variant_names(), where)
    if "none" in name.split("+") and len(name.split("+")) > 1:
        raise ConfigError(f"{where}: 'none' cannot be combined with other variants in {name!r}.")
    _check_composition(name, keys, cell, tokens, where)
    return tuple(keys)


def _check_composition(name: str, keys: list[str], cell: str, tokens: bool, where: str) -> None:
    if cell not in CELLS:
        raise unknown("cell", cell, CELLS, where)
    if len(set(keys)) != len(keys):
        raise ConfigError(f"{where}: variant {name!r} repeats a regularizer.")
    claimed: dict[str, str] = {}
    for key in keys:
        cls = REGULARIZERS[key]
        if cell not in cls.cells:
            valid = [v for v in variant_names() if _defined_for(v, cell)]
            raise ConfigError(
                f"{where}: variant {key!r} is not defined for cell {cell!r} "
                f"(defined for {', '.join(cls.cells)}). Valid for {cell}: {', '.join(valid)}."
            )
        if cls.needs_tokens and not tokens:
            raise ConfigError(f"{where}: variant {key!r} needs a task with token inputs.")
        for field in cls.plan_fields:
            if field in claimed:
                raise ConfigError(
                    f"{where}: {key!r} and {claimed[field]!r} both change the cell's {field}; "
                    "they cannot be composed."
                )
            claimed[field] = key


def _defined_for(variant: str, cell: str) -> bool:
    keys = RECIPES.get(variant, (variant,))
    return all(cell in REGULARIZERS[k].cells for k in keys)


def build_regularizers(params: Mapping[str, Mapping[str, Any]]) -> list[Regularizer]:
    """Instantiate regularizers from resolved config: {key: {param: value}}, in order."""
    return [REGULARIZERS[key](**p) for key, p in params.items()]


__all__ = [
    "CELLS",
    "RECIPES",
    "REGULARIZERS",
    "Regularizer",
    "build_regularizers",
    "parse_variant",
    "variant_names",
]
