"""A grid's report, assembled once and rendered by every format (Markdown, CSV, JSON, LaTeX,
HTML, plots): the rows shown with their statistics, the comparison with the `none`
baseline, stale marks, the reproduction table, the setup and the manifest."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regbench.plan.grid import Grid, searched_rows
from regbench.plan.jobs import Job
from regbench.plan.search import Selection, is_search
from regbench.report.baseline import Comparison, comparisons
from regbench.report.collect import Key, Record, Row, aggregate
from regbench.report.manifest import build_manifest, row_entry
from regbench.report.references import Reproduction, reproduce
from regbench.report.stale import Stale, assess, read_previous
from regbench.report.stats import Summary, describe
from regbench.run.records import RecordStore
from regbench.tasks import get_task

SELECTION = (
    "Selection rule: in every run the checkpoint with the best validation metric is kept and "
    "the test split is evaluated once, on that checkpoint."
)
STATISTIC = (
    "mean ± std: the mean and the sample standard deviation (ddof = 1) of the test metric over "
    "the n seeds that finished. 95% CI: Student's t interval mean ± t(0.975, n−1)·std/√n. "
    "With n = 1 the std and the CI are undefined and shown as such. Failed runs (by kind: "
    "error, diverged, crashed) and pending runs are counted in their own columns, never "
    "dropped silently."
)
COMPARISON = (
    "Δ vs none: mean minus the mean of the `none` row of the same task, cell and sweep point "
    "(a tuned row: the paper-default `none` row); p (Welch): two-sided Welch's t-test "
    "(unequal variances) of the seeds' values, undefined with fewer than 2 seeds on either "
    "side; p (Holm): the Welch p-values of all rows compared with one `none` row, corrected "
    "for multiple comparisons by Holm's step-down method (family-wise error rate). Time vs "
    "none: mean training time (sum of epoch times) relative to `none`."
)
TUNED = (
    "Tuned rows: each searched variant's rates were chosen by the best mean validation metric "
    "over the search points (the test split took no part), then trained with every seed of "
    "the table; the row names the selected rates. Variants without a search space show their "
    "paper-default row only."
)


def search_note(report: Report) -> str:
    """The search budget and what was left unsearched, for the search table's caption."""
    search = report.grid.search
    if search is None:
        return ""
    unsearched = [v for v in report.grid.variants if v not in search.space]
    searches = len(searched_rows(report.grid))
    return (
        f"Search budget: {search.budget()}; the point with the best mean validation metric is "
        f"selected, a point with a failed seed is not eligible. {len(report.selections)} of "
        f"{searches} searches finished (the others have runs left). Not searched (no rates, "
        f"or none declared): {', '.join(unsearched) or '–'}. {TUNED}"
    )


COST = (
    "Cost, mean per run: training time (sum of epoch times), tokens/s (input time steps "
    "processed per second of training; sequences/s are in results.json), and peak memory "
    "(torch's peak GPU allocation on a GPU, else the process's peak resident set size). "
    "Variants that change the recurrence itself (a mask on h_{t−1} or on the cell update, "
    "zoneout, normalization inside the step) run on regbench's custom cell instead of the "
    "fused cuDNN/oneDNN kernel, so their time includes leaving that kernel, which depends "
    "more on the size and the step mode than on the regularizer; results/perf/README.md "
    "measures it apart (`none` on the custom cell)."
)
STALE = (
    "† stale: the row's config changed since the previous report (a version or a "
    "hyperparameter: the changed keys are listed); its previous numbers are shown until the "
    "new jobs have run. `regbench launch` runs only those."
)


@dataclass(frozen=True)
class Entry:
    """One table row as shown: the numbers (current, or a stale row's earlier ones) and
    the state of its current jobs."""

    row: Row
    current: Row
    test: Summary
    val: Summary
    comparison: Comparison | None
    stale: Stale | None

    @property
    def key(self) -> Key:
        return self.current.key

    @property
    def label(self) -> str:
        """The variant, with the sweep point when there is one."""
        return (
            f"{self.current.variant} ({self.current.point})"
            if self.current.point
            else (self.current.variant)
        )


@dataclass(frozen=True)
class Failure:
    """A failed run, as failed.json records it."""

    label: str
    job_id: str
    kind: str
    error: str


@dataclass(frozen=True)
class Report:
    grid: Grid
    entries: list[Entry]
    reproductions: list[Reproduction]
    failures: list[Failure]
    setup: list[str]
    manifest: dict[str, Any]
    store: RecordStore
    selections: list[Selection] = field(default_factory=list)

    def tasks(self) -> list[str]:
        return list(dict.fromkeys(e.key[0] for e in self.entries))


def build_report(
    grid: Grid,
    records: Sequence[Record],
    store: RecordStore,
    out_dir: Path,
    command: str,
    selections: Sequence[Selection] = (),
) -> Report:
    """Aggregate the records (a search point's go to `selections`, not to a row), mark stale
    rows against the report in `out_dir`, compare."""
    failures = [
        Failure(r.job.label, r.job.id, r.kind or "error", (r.error or "–").splitlines()[0])
        for r in records
        if r.state == "failed"
    ]
    collected, records = records, [r for r in records if not is_search(r.job.point)]
    jobs: dict[Key, list[Job]] = {}
    for rec in records:
        jobs.setdefault(rec.job.row_key, []).append(rec.job)
    previous = read_previous(out_dir, store, grid.name)
    current = aggregate(records)
    shown, stale = [], {}
    for row in current:
        mark, earlier = assess(row, jobs[row.key][0].config, previous.get(row.key), store)
        if mark is not None:
            stale[row.key] = mark
        shown.append(earlier or row)
    compared = comparisons(shown)
    entries = [
        Entry(s, c, describe(s.test), describe(s.val), compared.get(c.key), stale.get(c.key))
        for s, c in zip(shown, current, strict=True)
    ]
    rows = [row_entry(e.current, jobs[e.key], e.stale, store) for e in entries]
    run_ids = [i for e in entries for i in e.row.done_ids]
    superseded = unused_records(store, collected, stale.values())
    manifest = build_manifest(grid, rows, run_ids, store, command, superseded)
    rows = {e.key: e.row for e in entries}
    reproductions = reproduce(grid.references, rows, set(stale))
    setup = setup_lines(records, grid)
    return Report(grid, entries, reproductions, failures, setup, manifest, store, list(selections))


def unused_records(store: RecordStore, records: Sequence[Record], stale: Iterable[Stale]) -> int:
    """How many records in `store` belong to no collected job (row, search point or tuned
    row) and back no stale row: configurations the grid no longer runs."""
    used = {r.job.id for r in records} | {i for mark in stale for i in mark.previous_ids}
    return sum(1 for run in store if run.job not in used)


def setup_lines(records: Sequence[Record], grid: Grid) -> list[str]:
    """How each task was run (from its first job), with the regularizer rates it used."""
    configs: dict[tuple[str, str], Mapping[str, Any]] = {}
    rates: dict[tuple[str, str], dict[str, Mapping[str, Any]]] = {}
    for rec in records:
        config = rec.job.config
        key = (config["task"]["name"], config["model"]["cell"])
        configs.setdefault(key, config)
        for reg, params in config["regularizers"].items():
            rates.setdefault(key, {}).setdefault(reg, params)
    lines = []
    for (name, cell), config in configs.items():
        lines.append(_task_line(name, config, grid))
        for key, params in rates.get((name, cell), {}).items():
            values = ", ".join(f"{k} {_value(v)}" for k, v in params.items())
            lines.append(f"  - `{key}`: {values}")
    return lines


def _value(value: Any) -> str:
    """A regularizer parameter as the setup lists it: numbers in %g, others as they are."""
    if isinstance(value, float | int) and not isinstance(value, bool):
        return f"{value:g}"
    return str(value)


def _task_line(name: str, config: Mapping[str, Any], grid: Grid) -> str:
    params = ", ".join(f"{k}={v}" for k, v in config["task"]["params"].items())
    m, t = config["model"], config["train"]
    return (
        f"- `{name}` v{config['task']['version']} ({params}): {m['num_layers']}×"
        f"{m['hidden_size']} {m['cell']}, {t['optimizer']} lr {t['lr']:g}, batch "
        f"{t['batch_size']}, {t['max_epochs']} epochs, clip {t['clip']:g}. "
        f"{protocol_reference(name, grid)}"
    )


def protocol_reference(task: str, grid: Grid) -> str:
    """The reference of the protocol this grid ran: the sources of the published numbers the
    grid declares for the task, else the task's default protocol (with the grid's overrides
    when it has any)."""
    sources = list(dict.fromkeys(r.source for r in grid.references if r.task == task))
    if sources:
        return f"Protocol reference (this grid's published numbers): {'; '.join(sources)}."
    reference = get_task(task).protocol.reference
    changed = grid.overrides or grid.tasks.get(task) or any(grid.cells.values())
    note = " with this grid's overrides" if changed else ""
    return f"Protocol: the task's default ({reference}){note}."
