"""Write a grid's report folder (results/<grid>/ by default):

    table.md        README-ready Markdown: results, cost, reproduction, figures, setup, provenance
    results.csv     one flat line per row
    results.json    machine-readable: raw values with run ids, statistics, definitions
    table.tex       booktabs table, best mean per task in bold
    report.html     one self-contained file: the tables and the figures inline
    plots/          per task validation curves and test metric, the cost scatter (PNG, SVG)
    manifest.json   commit, date, grid hash, job ids and config hashes, versions, hardware

Rows whose config changed since the report already in the folder are marked stale and keep
their previous numbers until rerun (stale.py). When the folder sits in a `results/` folder,
results/README.md (the index) is regenerated too.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from regbench.plan.grid import Grid, expand_tuned
from regbench.plan.jobs import Job
from regbench.report import export, html, latex, markdown
from regbench.report.assemble import build_report
from regbench.report.collect import collect
from regbench.report.index import write_index
from regbench.report.manifest import write_manifest
from regbench.report.plots import write_plots
from regbench.run.records import store_for

INDEXED = "results"


def write_report(
    grid: Grid,
    jobs: Sequence[Job],
    runs_dir: Path,
    out_dir: Path,
    command: str,
    index: bool | None = None,
) -> list[Path]:
    """Write every format of the report under `out_dir` from the run records in
    out_dir/records (finished or failed runs in `runs_dir` without one are recorded there
    first); return the files written. `index`: regenerate out_dir/../README.md (default:
    when out_dir's parent is named `results`)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    store = store_for(out_dir, runs_dir)
    selections, tuned = expand_tuned(grid, lambda job: store.get(job.id))
    records = collect([*jobs, *tuned], store)
    report = build_report(grid, records, store, out_dir, command, selections)
    plots, plot_files = write_plots(report, out_dir)
    md = out_dir / "table.md"
    md.write_text(markdown.render(report, plots))
    tex = out_dir / "table.tex"
    tex.write_text(latex.render(report))
    page = out_dir / "report.html"
    page.write_text(html.render(report, plots, out_dir))
    written = [
        md,
        export.write_csv(report, out_dir / "results.csv"),
        export.write_json(report, out_dir / "results.json"),
        tex,
        page,
        *plot_files,
        write_manifest(report.manifest, out_dir),
    ]
    if index if index is not None else out_dir.resolve().parent.name == INDEXED:
        written.append(write_index(out_dir.resolve().parent))
    return written
