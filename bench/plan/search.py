"""Tuned rows: a search over each variant's rates, selected on validation only.

An untuned comparison can mislead: Melis et al. 2018 found that published rankings of
recurrent language models reversed once every model was tuned under the same budget. A grid
may therefore declare, per variant, the points of a search over its rates:

    search:
      seeds: [0]                  # every point is trained with these seeds
      space:                      # per variant, the same number of points for every variant
        dropout:                  # a list of override sets …
          - {regularizers.dropout.p_output: 0.3}
          - {regularizers.dropout.p_output: 0.7}
        zoneout:                  # … or a mapping of key to values (their product)
          regularizers.zoneout.z_c: [0.25, 0.5]
          regularizers.zoneout.z_h: [0.05]

For each task × cell × searched variant, the point with the best mean validation metric over
the search seeds is selected (the first listed on a tie; a point with a failed seed is not
eligible); the test split takes no part. The tuned row is that point trained with the grid's
`seeds`; a search seed among them is the same job, trained once. Variants without a search
space keep their paper-default row only.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from regbench.errors import ConfigError, unknown
from regbench.plan.config import flatten
from regbench.plan.jobs import Job
from regbench.tasks import get_task

SEARCH = "search: "
TUNED = "tuned: "
KEYS = ("seeds", "space")


class Finished(Protocol):
    """What selection reads of a run (a run record, regbench.run.records.RunRecord)."""

    state: str
    result: Mapping[str, Any] | None


Lookup = Callable[[Job], Finished | None]


@dataclass(frozen=True)
class Search:
    """The search a grid declares: its seeds and, per variant, its points."""

    seeds: tuple[int, ...]
    space: dict[str, list[dict[str, Any]]]

    @property
    def points(self) -> int:
        return len(next(iter(self.space.values())))

    def budget(self) -> str:
        """The search budget in words, the same for every searched variant."""
        seeds = len(self.seeds)
        return (
            f"{self.points} points × {seeds} seed{'s' * (seeds > 1)} "
            f"({', '.join(map(str, self.seeds))}) per variant"
        )


@dataclass(frozen=True)
class PointScore:
    """One search point: its label, mean validation metric and how many seeds finished."""

    label: str
    overrides: dict[str, Any]
    val_mean: float
    done: int
    failed: int


@dataclass(frozen=True)
class Selection:
    """The selected point of one task × cell × variant, with every point's score."""

    task: str
    cell: str
    variant: str
    scores: tuple[PointScore, ...]
    chosen: int | None  # index into scores; None: no point was eligible (every one failed)

    @property
    def best(self) -> PointScore:
        if self.chosen is None:
            raise ValueError(f"{self.variant}: no search point was eligible")
        return self.scores[self.chosen]

    @property
    def row_point(self) -> str:
        return TUNED + self.best.label


def is_search(point: str) -> bool:
    return point.startswith(SEARCH)


def is_tuned(point: str) -> bool:
    return point.startswith(TUNED)


def base_point(point: str) -> str:
    """The sweep point a row compares with: tuned rows compare with the default rows."""
    return "" if is_tuned(point) or is_search(point) else point


def parse_search(value: Any, variants: Sequence[str], where: str) -> Search | None:
    """The grid's `search` key, checked: known variants, equal numbers of points."""
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - set(KEYS) or "space" not in value:
        raise ConfigError(f"{where}: search must be a mapping with 'space' and 'seeds'.")
    seeds = value.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(_seed(s) for s in seeds):
        raise ConfigError(f"{where}: search.seeds must be a list of non-negative integers.")
    space = value["space"]
    if not isinstance(space, dict) or not space:
        raise ConfigError(f"{where}: search.space must map variants to their points.")
    points = {}
    for variant, spec in space.items():
        if variant not in variants:
            raise unknown("variant in search.space", str(variant), variants, where)
        points[str(variant)] = _points(spec, f"{where}: search.space.{variant}")
    counts = {v: len(p) for v, p in points.items()}
    if len(set(counts.values())) > 1:
        listed = ", ".join(f"{v} {n}" for v, n in counts.items())
        raise ConfigError(
            f"{where}: search.space gives variants different numbers of points ({listed}); "
            "every variant gets the same budget."
        )
    return Search(tuple(seeds), points)


def _seed(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _points(spec: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(spec, dict) and spec and all(isinstance(v, list) and v for v in spec.values()):
        keys = list(spec)
        points = [
            dict(zip(keys, values, strict=True)) for values in itertools.product(*spec.values())
        ]
    elif isinstance(spec, list) and spec and all(isinstance(p, dict) and p for p in spec):
        points = [flatten(p) for p in spec]
    else:
        raise ConfigError(
            f"{where}: expected a list of override mappings or a mapping of key to a list "
            "of values."
        )
    labels = [point_label(p) for p in points]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"{where}: a point is listed twice.")
    return points


def point_label(point: Mapping[str, Any]) -> str:
    return ", ".join(f"{k.split('.')[-1]}={v}" for k, v in point.items())


def select(
    task: str, cell: str, variant: str, jobs: Sequence[Sequence[Job]], points: Sequence[dict],
    lookup: Lookup,
) -> Selection | None:  # fmt: skip
    """The selection among `points` (with their search jobs), None while a job is pending;
    `chosen` is None when no point is eligible."""
    scores = []
    for point, point_jobs in zip(points, jobs, strict=True):
        records = [lookup(job) for job in point_jobs]
        if any(r is None for r in records):
            return None
        scores.append(_score(point, [r for r in records if r is not None]))
    eligible = [i for i, s in enumerate(scores) if s.failed == 0 and math.isfinite(s.val_mean)]
    if not eligible:
        return Selection(task, cell, variant, tuple(scores), None)
    sign = -1.0 if get_task(task).protocol.direction == "max" else 1.0
    chosen = min(eligible, key=lambda i: sign * scores[i].val_mean)
    return Selection(task, cell, variant, tuple(scores), chosen)


def _score(point: dict[str, Any], records: Sequence[Finished]) -> PointScore:
    done = [r for r in records if r.state == "done" and r.result]
    values = [float(r.result["val"][r.result["metric"]]) for r in done if r.result]
    mean = math.fsum(values) / len(values) if values else math.nan
    return PointScore(point_label(point), point, mean, len(done), len(records) - len(done))
