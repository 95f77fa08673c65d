"""Each row against the `none` baseline of the same task, cell and sweep point."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from regbench.plan.search import base_point
from regbench.report.collect import Key, Row
from regbench.report.stats import finite_mean, gain_pct, holm, ratio_pct, welch

BASELINE = "none"


@dataclass(frozen=True)
class Comparison:
    """A row against its baseline row (the numbers shown in both)."""

    delta: float  # mean(row) − mean(none), in the metric's units
    p_value: float  # Welch's t-test, two-sided
    p_holm: float  # p_value adjusted by Holm's method over the rows compared with one none
    gain_pct: float  # improvement over none in % of |mean(none)|; positive is better
    time_overhead_pct: float  # mean train time vs none, in %


def compare(row: Row, base: Row) -> Comparison:
    delta, p = welch(row.test, base.test)
    return Comparison(
        delta=delta,
        p_value=p,
        p_holm=math.nan,
        gain_pct=gain_pct(finite_mean(row.test), finite_mean(base.test), row.direction),
        time_overhead_pct=ratio_pct(finite_mean(row.train_time_s), finite_mean(base.train_time_s)),
    )


def baseline_key(key: Key) -> Key:
    """The `none` row of the same task, cell and sweep point (tuned rows: the default one)."""
    task, cell, _, point = key
    return (task, cell, BASELINE, base_point(point))


def comparisons(rows: Sequence[Row]) -> dict[Key, Comparison]:
    """A comparison for every non-baseline row whose baseline row is in `rows`; the p-values
    of the rows compared with one baseline are one family for Holm's correction."""
    by_key = {row.key: row for row in rows}
    out = {}
    for row in rows:
        base = by_key.get(baseline_key(row.key))
        if row.variant != BASELINE and base is not None:
            out[row.key] = compare(row, base)
    families: dict[Key, list[Key]] = {}
    for key in out:
        families.setdefault(baseline_key(key), []).append(key)
    for keys in families.values():
        adjusted = holm([out[k].p_value for k in keys])
        for key, p in zip(keys, adjusted, strict=True):
            out[key] = replace(out[key], p_holm=p)
    return out
