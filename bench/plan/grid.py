"""Grid files: tasks × cells × variants × sweep points × seeds, expanded into jobs.

    name: quick                      # optional, defaults to the file name
    description: what the grid is for
    tasks:                           # a list of names, or names with per-task overrides
      seq_digits: {}
      adding: {task.params.T: 50}
    variants: [none, dropout, variational, zoneout]
    cells: [lstm]                    # optional, default [lstm]; or cells with overrides:
                                     #   {lstm: {}, gru: {model.hidden_size: 70}}
    seeds: [0, 1, 2]
    overrides: {train.max_epochs: 10}   # optional, applied to every job
    sweep:                           # optional axis of override sets, one table row each
      - {train.lr: 0.01}
      - {train.lr: 0.001}
    search: {seeds: [0], space: …}   # optional: tuned rows, selected on validation (search.py)
    undefined: skip                  # optional: leave out the task × cell × variant
                                     # combinations a paper does not define (recurrent_bn on
                                     # a GRU, embed_dropout without tokens); default: error
    references:                      # optional published numbers to compare rows with
      - {task: adding, variant: none, value: 0.164, source: "Bai et al. 2018, Table 1",
         tolerance: {range: [0.14, 0.18]}}     # see references.py for every key

Override keys are dotted config keys (see config.py); nested mappings are accepted too. A key
written `variant[<name>].<key>` applies to that variant's jobs only (e.g.
`variant[variational].regularizers.embed_dropout.p_embed: 0.2`; config.resolve reads it).
Precedence, lowest first: defaults, task protocol, `overrides`, per-task overrides, per-cell
overrides, sweep point.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from regbench.errors import ConfigError, shown, unknown
from regbench.models.variants import RECIPES, REGULARIZERS
from regbench.plan.config import flatten, resolve
from regbench.plan.jobs import Job
from regbench.plan.references import Reference, parse_references
from regbench.plan.search import SEARCH, Lookup, Search, Selection, parse_search, select
from regbench.plan.search import point_label as search_label
from regbench.plan.yamlfile import read_yaml
from regbench.tasks import get_task

BUILTIN = Path(__file__).resolve().parents[1] / "grids"
KEYS = (
    "name",
    "description",
    "tasks",
    "variants",
    "cells",
    "seeds",
    "overrides",
    "sweep",
    "undefined",
    "search",
    "references",
)
UNDEFINED = ("error", "skip")
NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}")


@dataclass(frozen=True)
class Grid:
    name: str
    path: Path
    description: str
    tasks: dict[str, dict[str, Any]]
    variants: list[str]
    cells: dict[str, dict[str, Any]]
    seeds: list[int]
    overrides: dict[str, Any] = field(default_factory=dict)
    sweep: list[dict[str, Any]] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)
    skip_undefined: bool = False
    search: Search | None = None

    def file_hash(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def builtin_grids() -> list[str]:
    return sorted(p.stem for p in BUILTIN.glob("*.yaml"))


def find_grid(name_or_path: str | Path) -> Path:
    """A grid file path, from a path or the name of a built-in grid."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ConfigError(f"{path}: grid file not found.")
        return path
    candidate = BUILTIN / f"{name_or_path}.yaml"
    if not candidate.is_file():
        raise unknown("grid", str(name_or_path), builtin_grids())
    return candidate


def load_grid(name_or_path: str | Path) -> Grid:
    """Read and check a grid file; every problem is a one-line ConfigError naming the file."""
    path = find_grid(name_or_path)
    raw = _read_yaml(path)
    where = str(path)
    for key in raw:
        if key not in KEYS:
            raise unknown("grid key", str(key), KEYS, where)
    for key in ("tasks", "variants", "seeds"):
        if key not in raw:
            raise ConfigError(
                f"{where}: missing key {key!r} (a grid needs tasks, variants, seeds)."
            )
    grid = Grid(
        name=_name(raw.get("name", path.stem), where),
        path=path,
        description=_typed(raw.get("description", ""), str, "description", where),
        tasks=_named_overrides(raw["tasks"], "tasks", where),
        variants=_list_of(raw["variants"], str, "variants", where),
        cells=_named_overrides(raw.get("cells", ["lstm"]), "cells", where),
        seeds=_seeds(raw["seeds"], where),
        overrides=_overrides(raw.get("overrides") or {}, "overrides", where),
        sweep=[_overrides(p, f"sweep[{i}]", where) for i, p in enumerate(raw.get("sweep") or [])],
        skip_undefined=_undefined(raw.get("undefined", "error"), where) == "skip",
    )
    if raw.get("search") is not None:
        if grid.sweep:
            raise ConfigError(f"{where}: a grid has a sweep or a search, not both.")
        grid = replace(grid, search=parse_search(raw["search"], grid.variants, where))
    return _with_references(grid, raw.get("references"), where)


def _with_references(grid: Grid, value: Any, where: str) -> Grid:
    """The grid with its optional `references` (references.py), checked against its rows."""
    if value is None:
        return grid
    axes = {
        "task": list(grid.tasks),
        "variant": grid.variants,
        "cell": list(grid.cells),
        "point": [point_label(p) for p in grid.sweep] or [""],
    }
    return replace(grid, references=parse_references(value, axes, point_label, where))


def expand(grid: Grid) -> list[Job]:
    """The grid's jobs in table order: every row's seeds, then the search points' jobs (which
    may be default jobs too: unique() runs each once). Two points of one kind may not
    resolve to one config."""
    jobs = _unclashed(_default_jobs(grid), str(grid.path))
    searched = [
        job for *_, point_jobs in search_jobs(grid) for seeds in point_jobs for job in seeds
    ]
    return jobs + _unclashed(searched, str(grid.path))


def _rows(grid: Grid) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """Each task × cell × variant of the grid, with its overrides (grid, task, cell)."""
    for task, task_overrides in grid.tasks.items():
        for cell, cell_overrides in grid.cells.items():
            for variant in grid.variants:
                if grid.skip_undefined and not defined(variant, cell, task):
                    continue
                yield task, cell, variant, {**grid.overrides, **task_overrides, **cell_overrides}


def _job(grid: Grid, row: tuple, point: Mapping[str, Any], seed: int, label: str) -> Job:
    task, cell, variant, overrides = row
    config = resolve(task, variant, cell, seed, {**overrides, **point}, str(grid.path))
    return Job(config, label)


def _default_jobs(grid: Grid) -> list[Job]:
    return [
        _job(grid, row, point, seed, point_label(point))
        for row in _rows(grid)
        for point in grid.sweep or [{}]
        for seed in grid.seeds
    ]


def searched_rows(grid: Grid) -> list[tuple[str, str, str, dict[str, Any]]]:
    """The task × cell × variant rows (with their overrides) that the grid's search covers."""
    space = grid.search.space if grid.search is not None else {}
    return [row for row in _rows(grid) if row[2] in space]


def search_jobs(grid: Grid) -> Iterator[tuple[tuple, list[dict], list[list[Job]]]]:
    """Per searched row: the row, its points and, per point, its search seeds' jobs."""
    for row in searched_rows(grid):
        points = grid.search.space[row[2]]
        jobs = [
            [_job(grid, row, p, seed, SEARCH + search_label(p)) for seed in grid.search.seeds]
            for p in points
        ]
        yield row, points, jobs


def expand_tuned(grid: Grid, lookup: Lookup) -> tuple[list[Selection], list[Job]]:
    """The selections made so far (search.py) and the tuned rows' jobs: each selected point
    with the grid's seeds. A variant whose search is unfinished has none yet."""
    selections, jobs = [], []
    for row, points, point_jobs in search_jobs(grid):
        chosen = select(*row[:3], point_jobs, points, lookup)
        if chosen is None:
            continue
        selections.append(chosen)
        if chosen.chosen is None:
            continue
        jobs += [_job(grid, row, chosen.best.overrides, s, chosen.row_point) for s in grid.seeds]
    return selections, jobs


def unique(jobs: Sequence[Job]) -> list[Job]:
    """One job per id, in order (a search point may also be a default row's job)."""
    return list({job.id: job for job in reversed(jobs)}.values())[::-1]


def _unclashed(jobs: list[Job], where: str) -> list[Job]:
    seen: dict[str, str] = {}
    for job in jobs:
        if job.id in seen:
            raise ConfigError(
                f"{where}: {job.label} and {seen[job.id]} resolve to the same "
                "config; remove the duplicate or make the override apply."
            )
        seen[job.id] = job.label
    return jobs


def defined(variant: str, cell: str, task: str) -> bool:
    """Whether every regularizer of `variant` is defined for `cell` and for the task's inputs
    (a name that is not a variant counts as defined, so that resolving it names the error)."""
    tokens = get_task(task).protocol.tokens
    for part in variant.split("+"):
        for key in RECIPES.get(part, (part,)):
            cls = REGULARIZERS.get(key)
            if cls is not None and (cell not in cls.cells or (cls.needs_tokens and not tokens)):
                return False
    return True


def left_out(grid: Grid) -> list[tuple[str, str, str]]:
    """The task × cell × variant combinations `undefined: skip` leaves out of the grid."""
    if not grid.skip_undefined:
        return []
    return [
        (task, cell, variant)
        for task in grid.tasks
        for cell in grid.cells
        for variant in grid.variants
        if not defined(variant, cell, task)
    ]


def _undefined(value: Any, where: str) -> str:
    if value not in UNDEFINED:
        raise unknown("value for undefined", str(value), UNDEFINED, where)
    return value


def point_label(point: Mapping[str, Any]) -> str:
    return ", ".join(f"{k.split('.')[-1]}={v}" for k, v in point.items())


def _read_yaml(path: Path) -> dict[str, Any]:
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a grid file must be a YAML mapping of {', '.join(KEYS)}.")
    return raw


def _name(value: Any, where: str) -> str:
    """The grid's name: it names results/<name>/, so a plain file name."""
    name = _typed(value, str, "name", where)
    if not NAME.fullmatch(name):
        raise ConfigError(
            f"{where}: name {shown(name)} must be letters, digits, '_', '-' or '.', not "
            "starting with '.' (it names the folder results/<name>/)."
        )
    return name


def _typed(value: Any, kind: type, key: str, where: str) -> Any:
    if not isinstance(value, kind):
        raise ConfigError(f"{where}: {key} must be a {kind.__name__}, got {shown(value)}.")
    return value


def _list_of(value: Any, kind: type, key: str, where: str) -> list:
    if not isinstance(value, list) or not value or not all(isinstance(v, kind) for v in value):
        raise ConfigError(
            f"{where}: {key} must be a non-empty list of {kind.__name__}s, got {shown(value)}."
        )
    if len(set(value)) != len(value):
        raise ConfigError(f"{where}: {key} lists a value twice: {shown(value)}.")
    return value


def _seeds(value: Any, where: str) -> list[int]:
    seeds = _list_of(value, int, "seeds", where)
    if any(isinstance(s, bool) or s < 0 for s in seeds):
        raise ConfigError(f"{where}: seeds must be non-negative integers, got {shown(value)}.")
    return seeds


def _named_overrides(value: Any, key: str, where: str) -> dict[str, dict[str, Any]]:
    """A list of names, or a mapping of name to overrides (tasks, cells)."""
    if isinstance(value, list):
        return {name: {} for name in _list_of(value, str, key, where)}
    if not isinstance(value, dict) or not value:
        raise ConfigError(
            f"{where}: {key} must be a list of names or a mapping of name to "
            f"overrides, got {shown(value)}."
        )
    return {str(name): _overrides(o or {}, f"{key}.{name}", where) for name, o in value.items()}


def _overrides(value: Any, key: str, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(
            f"{where}: {key} must be a mapping of config keys to values, got {shown(value)}."
        )
    return flatten(value)
