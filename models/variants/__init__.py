"""Variants: a name (or several joined by '+') resolving to a list of regularizers.

A variant name is a regularizer key (`zoneout`), a named recipe composed of several (`awd`),
or a composition such as `zoneout+recurrent_bn`. `none` is the plain cell. Two regularizers
that change the same part of the network (their `claims` overlap) cannot be composed.
Regularizers of other packages join through the entry-point group `regbench.variants`
(registry.py) and are then variants like the built-ins.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from regbench.errors import ConfigError, unknown
from regbench.models.variants.ar_tar import ActivationRegularization
from regbench.models.variants.base import CELLS, LayerDims, Regularizer
from regbench.models.variants.bn_input import InputBatchNorm
from regbench.models.variants.dropout import ZarembaDropout
from regbench.models.variants.embed_dropout import EmbeddingDropout
from regbench.models.variants.layer_norm import LayerNorm
from regbench.models.variants.locked_dropout import LockedDropout
from regbench.models.variants.recurrent_bn import RecurrentBatchNorm
from regbench.models.variants.recurrent_dropout import RecurrentDropout
from regbench.models.variants.registry import ENTRY_POINTS, Registry
from regbench.models.variants.variational import VariationalDropout
from regbench.models.variants.weight_drop import WeightDrop
from regbench.models.variants.zoneout import Zoneout

RECIPES: dict[str, tuple[str, ...]] = {
    "none": (),
    # Merity et al. 2017: weight-drop + locked dropout + embedding dropout + AR/TAR.
    "awd": ("weight_drop", "locked_dropout", "embed_dropout", "ar_tar"),
}
# The built-ins, then the regularizers of installed plugins (entry-point group
# `regbench.variants`), imported the first time the registry is read (registry.py).
REGULARIZERS: Registry = Registry(
    (
        ZarembaDropout,
        EmbeddingDropout,
        VariationalDropout,
        LockedDropout,
        WeightDrop,
        Zoneout,
        RecurrentDropout,
        RecurrentBatchNorm,
        InputBatchNorm,
        LayerNorm,
        ActivationRegularization,
    ),
    reserved=RECIPES,
)


def variant_names() -> list[str]:
    return sorted({*RECIPES, *REGULARIZERS})


def parse_variant(name: str, cell: str, tokens: bool = True, where: str = "") -> tuple[str, ...]:
    """The regularizer keys of a variant, checked against the cell and the task's inputs."""
    prefix = f"{where}: " if where else ""
    parts = name.split("+")
    keys: list[str] = []
    for part in parts:
        if part in RECIPES:
            keys.extend(RECIPES[part])
        elif part in REGULARIZERS:
            keys.append(part)
        else:
            raise unknown("variant", part, variant_names(), where)
    if "none" in parts and len(parts) > 1:
        raise ConfigError(f"{prefix}'none' cannot be combined with other variants in {name!r}.")
    if cell not in CELLS:
        raise unknown("cell", cell, CELLS, where)
    if len(set(keys)) != len(keys):
        raise ConfigError(f"{prefix}variant {name!r} repeats a regularizer.")
    check_composition([REGULARIZERS[k] for k in keys], cell, tokens, prefix)
    return tuple(keys)


def check_composition(
    classes: Sequence[type[Regularizer]], cell: str, tokens: bool, prefix: str = ""
) -> None:
    """Raise ConfigError unless every regularizer class is defined for `cell` (and has token
    inputs if it needs them) and no two claim the same part of the network."""
    for cls in classes:
        _check_defined(cls, cell, tokens, prefix)
    owner: dict[str, str] = {}
    for cls in classes:
        for part in cls.claims:
            if part in owner:
                raise ConfigError(
                    f"{prefix}{cls.key!r} and {owner[part]!r} both change the network's "
                    f"{part}; they cannot be composed."
                )
            owner[part] = cls.key


def _check_defined(cls: type[Regularizer], cell: str, tokens: bool, prefix: str) -> None:
    key = cls.key
    if cell not in cls.cells:
        valid = [v for v in variant_names() if defined_for(v, cell)]
        raise ConfigError(
            f"{prefix}variant {key!r} is not defined for cell {cell!r} (its paper defines it "
            f"for {', '.join(cls.cells)}). Valid for {cell}: {', '.join(valid)}."
        )
    if cls.needs_tokens and not tokens:
        raise ConfigError(
            f"{prefix}variant {key!r} drops word types from an embedding and needs a task "
            "with token inputs."
        )


def defined_for(variant: str, cell: str) -> bool:
    keys = RECIPES.get(variant, (variant,))
    return all(cell in REGULARIZERS[k].cells for k in keys)


def build_regularizers(params: Mapping[str, Mapping[str, Any]]) -> list[Regularizer]:
    """Instantiate regularizers from resolved config: {key: {param: value}}, in order."""
    return [REGULARIZERS[key](**p) for key, p in params.items()]


__all__ = [
    "CELLS",
    "ENTRY_POINTS",
    "RECIPES",
    "REGULARIZERS",
    "LayerDims",
    "Registry",
    "Regularizer",
    "build_regularizers",
    "check_composition",
    "defined_for",
    "parse_variant",
    "variant_names",
]
