"""The report's tables as text cells (header, rows), rendered by markdown.py and html.py."""

from __future__ import annotations

from regbench.report import fmt
from regbench.report.assemble import Entry, Report
from regbench.report.stats import finite_mean
from regbench.tasks import get_task

ARROW = {"max": "↑ higher", "min": "↓ lower"}
Table = tuple[list[str], list[list[str]]]
SHOWN_CHANGES = 2


def note(entry: Entry) -> str:
    """Stale mark, or what is missing; empty for a complete row."""
    cur = entry.current
    if entry.stale is not None:
        changes = list(entry.stale.changes)
        shown = "; ".join(changes[:SHOWN_CHANGES])
        more = f"; {len(changes) - SHOWN_CHANGES} more" if len(changes) > SHOWN_CHANGES else ""
        numbers = "previous numbers" if entry.row is not cur else "no previous numbers"
        return (
            f"† stale ({shown}{more}): {numbers}; {cur.n + cur.failed} of {len(cur.job_ids)} rerun"
        )
    if cur.n == 0 and cur.pending:
        return "not run yet"
    return ""


def results_table(report: Report) -> Table:
    head = [
        "Task",
        "Metric",
        "Better",
        "Variant",
        "Cell",
        "Test (mean ± std)",
        "95% CI",
        "n",
        "Δ vs none",
        "p (Welch)",
        "p (Holm)",
        "Failed",
        "Pending",
        "Note",
    ]
    rows = []
    for e in report.entries:
        c = e.comparison
        places = fmt.decimals(e.test.mean)
        rows.append(
            [
                e.row.task,
                e.row.metric,
                ARROW[e.row.direction],
                e.label,
                e.row.cell,
                fmt.mean_std(e.test),
                fmt.ci(e.test),
                str(e.test.n),
                "baseline"
                if c is None and e.row.variant == "none"
                else (fmt.signed(c.delta, places) if c else fmt.MISSING),
                fmt.p_value(c.p_value) if c else fmt.MISSING,
                fmt.p_value(c.p_holm) if c else fmt.MISSING,
                fmt.failures(e.current.failures),
                str(e.current.pending),
                note(e),
            ]
        )
    return head, rows


def cost_table(report: Report) -> Table:
    head = [
        "Task",
        "Variant",
        "Cell",
        "Params",
        "Train s/run",
        "Tokens/s",
        "Time vs none",
        "Peak memory",
    ]
    rows = []
    for e in report.entries:
        r = e.row
        params = fmt.MISSING if r.num_parameters is None else f"{r.num_parameters:,}"
        memory = fmt.mebibytes(r.peak_memory_bytes)
        rows.append(
            [
                r.task,
                e.label + (" †" if e.stale else ""),
                r.cell,
                params,
                fmt.number(finite_mean(r.train_time_s), 1),
                fmt.count(finite_mean(r.tokens_per_s)),
                fmt.percent(e.comparison.time_overhead_pct) if e.comparison else fmt.MISSING,
                f"{memory} ({r.memory_kind.upper()})" if r.memory_kind else memory,
            ]
        )
    return head, rows


def reproduction_table(report: Report) -> Table:
    head = [
        "Task",
        "Variant",
        "Cell",
        "Split",
        "Published",
        "Source",
        "Accept",
        "Ours (mean ± std)",
        "n",
        "Within",
    ]
    rows = []
    for rep in report.reproductions:
        ref = rep.reference
        variant = f"{ref.variant} ({ref.point})" if ref.point else ref.variant
        rows.append(
            [
                ref.task,
                variant,
                ref.cell,
                ref.split,
                f"{ref.value:g}",
                ref.source + (f" ({ref.note})" if ref.note else ""),
                ref.rule,
                fmt.mean_std(rep.ours),
                str(rep.ours.n),
                rep.verdict,
            ]
        )
    return head, rows


def search_table(report: Report) -> Table:
    """Every search point's mean validation metric, the selected one marked (no test
    metric: the test split takes no part in selection)."""
    head = ["Task", "Variant", "Cell", "Point", "Val (mean over search seeds)", "Seeds", "Selected"]
    rows = []
    for sel in report.selections:
        for i, score in enumerate(sel.scores):
            seeds = f"{score.done}" + (f" + {score.failed} failed" if score.failed else "")
            rows.append(
                [
                    sel.task,
                    sel.variant,
                    sel.cell,
                    score.label,
                    fmt.number(score.val_mean, fmt.decimals(score.val_mean) + 1),
                    seeds,
                    _selected(sel.chosen, i),
                ]
            )
    return head, rows


def _selected(chosen: int | None, i: int) -> str:
    if chosen is None:
        return "none eligible"
    return "✓" if i == chosen else ""


def task_notes(report: Report) -> list[str]:
    """Per task: its metric's direction and the reference values to judge it by."""
    lines = []
    for task in report.tasks():
        refs = next((e.row.references for e in report.entries if e.key[0] == task), {})
        text = "; ".join(f"{name} {value:.4g}" for name, value in refs.items()) or "none"
        protocol = get_task(task).protocol
        lines.append(
            f"`{task}`: {protocol.metric}, {ARROW[protocol.direction]} is better; "
            f"reference values: {text}."
        )
    return lines
