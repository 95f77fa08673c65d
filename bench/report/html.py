"""report.html: one self-contained file per grid (tables, captions, figures as inline SVG,
setup and provenance), readable offline in any browser."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from pathlib import Path

from regbench.report import assemble as text
from regbench.report import markdown
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

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px;
       padding: 0 1rem; color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.85rem; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25rem 0.55rem; text-align: left; }
th { border-bottom: 2px solid #444; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.stale td { color: #8a6d00; background: #fff8e1; }
caption, .caption { caption-side: bottom; text-align: left; font-size: 0.8rem; color: #555;
                    padding-top: 0.4rem; }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr));
            gap: 1rem; }
figure { margin: 0.5rem 0; } figure svg { max-width: 100%; height: auto; }
code { background: #f3f3f3; padding: 0 0.2rem; }
"""
NUMERIC = re.compile(r"^[−+\-–]?[\d.,<>\[\] ±%na/()=MiBCPUG-]+$")


def inline(line: str) -> str:
    """Escape a Markdown line and render its `code` spans."""
    return re.sub(r"`([^`]*)`", r"<code>\1</code>", html.escape(line, quote=False))


def table(t: Table, caption: str, stale_column: int | None = None) -> str:
    head, rows = t
    out = ["<table>", f"<caption>{inline(caption)}</caption>", "<thead><tr>"]
    out += [f"<th>{html.escape(h)}</th>" for h in head]
    out.append("</tr></thead><tbody>")
    for row in rows:
        stale = stale_column is not None and row[stale_column].startswith("†")
        out.append('<tr class="stale">' if stale else "<tr>")
        for cell in row:
            css = ' class="num"' if cell and NUMERIC.match(cell) else ""
            out.append(f"<td{css}>{html.escape(cell)}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def svg(path: Path) -> str:
    """An SVG file's <svg> element, without the XML prolog, to inline in HTML."""
    content = path.read_text()
    return content[content.index("<svg") :]


def figures(plots: Sequence[Plot], out_dir: Path) -> list[str]:
    out = []
    for plot in plots:
        out.append(
            f'<figure id="{html.escape(plot.stem)}">{svg(out_dir / plot.path("svg"))}'
            f'<figcaption class="caption">{inline(plot.caption)}</figcaption></figure>'
        )
    return out


def _list(lines: Sequence[str]) -> str:
    """A Markdown list (`- item`, `  - nested item`) as nested <ul>."""
    out, open_nested = ["<ul>"], False
    for line in lines:
        nested = line.startswith("  - ")
        if nested and not open_nested:
            out[-1] = out[-1].removesuffix("</li>") + "<ul>"
        elif not nested and open_nested:
            out.append("</ul></li>")
        open_nested = nested
        out.append(f"<li>{inline(line.strip().removeprefix('- '))}</li>")
    out.append("</ul></li></ul>" if open_nested else "</ul>")
    return "".join(out)


def _sections(lines: Sequence[str]) -> list[str]:
    """Markdown sections (`## title` and a list) as HTML."""
    out, items = [], []
    for line in [*lines, "## "]:
        if line.startswith("## "):
            if items:
                out.append(_list(items))
            items = []
            if line[3:]:
                out.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.strip():
            items.append(line)
    return out


def render(report: Report, plots: Sequence[Plot], out_dir: Path) -> str:
    grid = report.grid
    results_caption = " ".join(
        [text.SELECTION, text.STATISTIC, text.COMPARISON]
        + ([text.STALE] if any(e.stale for e in report.entries) else [])
    )
    body = [f"<h1>Results: grid <code>{html.escape(grid.name)}</code></h1>"]
    if grid.description:
        body.append(f"<p>{inline(grid.description.strip())}</p>")
    body += ["<h2>Results</h2>", table(results_table(report), results_caption, stale_column=13)]
    body.append(_list(task_notes(report)))
    body += ["<h2>Cost</h2>", table(cost_table(report), text.COST)]
    if report.grid.search is not None:
        body += ["<h2>Search</h2>", table(search_table(report), text.search_note(report))]
    if report.reproductions:
        body.append("<h2>Reproduction of published numbers</h2>")
        body.append(table(reproduction_table(report), markdown.REPRODUCTION + " " + text.SELECTION))
    body += _sections(markdown.failure_lines(report) + markdown.stale_lines(report))
    body += ["<h2>Figures</h2>", '<div class="figures">', *figures(plots, out_dir), "</div>"]
    body += ["<h2>Setup</h2>", _list(report.setup)]
    body += ["<h2>Provenance</h2>", _list(markdown.provenance_lines(report.manifest))]
    title = html.escape(f"regbench results: {grid.name}")
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
