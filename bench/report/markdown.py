"""table.md: the README-ready Markdown report of a grid."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from regbench.report import assemble as text
from regbench.report.assemble import Report
from regbench.report.plots import Plot
from regbench.report.tables import (
    Table,
    cost_table,
    reproduction_table,
    results_table,
    search_table,
    task_notes,
)

REPRODUCTION = (
    "Published: the value in the source, in this table's units (accuracy as a fraction). "
    "Accept: the interval stated with it. Within: whether our mean over seeds lies in it."
)


def table(t: Table) -> str:
    head, rows = t
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def render(report: Report, plots: Sequence[Plot]) -> str:
    grid = report.grid
    parts = [f"# Results: grid `{grid.name}`", ""]
    if grid.description:
        parts += [grid.description.strip(), ""]
    parts += [table(results_table(report)), "", text.SELECTION, text.STATISTIC, text.COMPARISON]
    if any(e.stale for e in report.entries):
        parts.append(text.STALE)
    parts += ["", *[f"- {line}" for line in task_notes(report)], ""]
    parts += ["## Cost", "", table(cost_table(report)), "", text.COST, ""]
    if report.grid.search is not None:
        parts += ["## Search", "", table(search_table(report)), "", text.search_note(report), ""]
    if report.reproductions:
        parts += ["## Reproduction of published numbers", ""]
        parts += [table(reproduction_table(report)), "", REPRODUCTION, text.SELECTION, ""]
    parts += failure_lines(report) + stale_lines(report)
    parts += ["## Figures", ""]
    for plot in plots:
        parts += [f"![{plot.title}]({plot.path('png')})", "", f"*{plot.caption}*", ""]
    parts += ["## Setup", "", *report.setup, "", "## Provenance", ""]
    parts += provenance_lines(report.manifest)
    return "\n".join(parts) + "\n"


def failure_lines(report: Report) -> list[str]:
    if not report.failures:
        return []
    lines = ["## Failed runs", ""]
    lines += [f"- {f.label} (`{f.job_id}`, {f.kind}): {f.error}" for f in report.failures]
    return [*lines, ""]


def stale_lines(report: Report) -> list[str]:
    stale = [e for e in report.entries if e.stale]
    if not stale:
        return []
    lines = ["## Stale rows", ""]
    for e in stale:
        ids = ", ".join(f"`{i}`" for i in e.stale.previous_ids)
        lines.append(f"- {e.key[0]} · {e.label} · {e.key[1]}: previous runs {ids}")
        lines += [f"  - {change}" for change in e.stale.changes]
    return [*lines, ""]


def _commit(c: str | None, dirty: bool | None) -> str:
    state = {True: " (dirty)", False: "", None: " (no git checkout)"}[dirty]
    return f"`{(c or 'unknown')[:12]}`{state}"


def provenance_lines(m: dict[str, Any]) -> list[str]:
    runs, project, pk = m["runs"], m["project"], m["packages"]
    commits = ", ".join(
        f"`{c[:12]}`{c[40:]}" if len(c) >= 40 else f"`{c}`" for c in runs["commits"]
    )
    hardware = "; ".join(h.get("gpu") or h.get("cpu", "?") for h in runs["hardware"]) or "–"
    jobs = sum(len(c["job_ids"]) for c in m["rows"])
    done = sum(c["state"]["done"] for c in m["rows"])
    stale = sum(1 for c in m["rows"] if c.get("stale"))
    rows = "1 stale row shows" if stale == 1 else f"{stale} stale rows show"
    notes = f"; {rows} earlier runs" if stale else ""
    if superseded := runs.get("superseded"):
        notes += (
            f"; `records/` also keeps {superseded} records of configurations the grid no "
            "longer runs, earlier versions or rates that no row uses"
        )
    return [
        f"- produced by `{m['command']}` on {m['generated'][:10]} from {runs['count']} finished "
        f"run records in `records/` (the grid has {jobs} jobs, {done} of them done{notes}), at "
        f"regbench {project['version']} commit {_commit(project['commit'], project['dirty'])}",
        f"- runs trained at regbench commit {commits or '–'}; grid file `{m['grid']['file']}` "
        f"sha256 `{m['grid']['sha256'][:16]}`",
        f"- hardware: {hardware}; torch {pk.get('torch')}, lightning {pk.get('lightning')}, "
        f"python {pk.get('python')}; statistics with scipy {pk.get('scipy')}, plots with "
        f"matplotlib {pk.get('matplotlib')}",
        "- `manifest.json` lists every row's job ids, config hashes and versions; cite this "
        "table by its path, the commit and the date above (see CITATION.cff)",
    ]
