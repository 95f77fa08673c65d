"""Each row against the `none` baseline of the same task, cell and sweep point."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from regbench.collect import Key, Row
from regbench.stats import gain_pct, ratio_pct, welch

BASELINE = "none"


@dataclass(frozen=True)
class Comparison:
    """A row against its baseline row (the numbers shown in both)."""

    delta: float  # mean(row) − mean(none), in the metric's units
    p_value: float  # Welch's t-test, two-sided
    gain_pct: float  # improvement over none in % of |mean(none)|; positive is better
    time_overhead_pct: float  # mean train time vs none, in %


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values) if values else math.nan


def compare(row: Row, base: Row) -> Comparison:
    delta, p = welch(row.test, base.test)
    return Comparison(
        delta=delta,
        p_value=p,
        gain_pct=gain_pct(_mean(row.test), _mean(base.test), row.direction),
        time_overhead_pct=ratio_pct(_mean(row.train_time_s), _mean(base.train_time_s)),
    )


def baseline_key(key: Key) -> Key:
    task, cell, _, point = key
    return (task, cell, BASELINE, point)


def comparisons(rows: Sequence[Row]) -> dict[Key, Comparison]:
    """A comparison for every non-baseline row whose baseline row is in `rows`."""
    by_key = {row.key: row for row in rows}
    out = {}
    for row in rows:
        base = by_key.get(baseline_key(row.key))
        if row.variant != BASELINE and base is not None:
            out[row.key] = compare(row, base)
    return out
