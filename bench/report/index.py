"""results/README.md: an index of the grids' reports, regenerated from their manifests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from regbench.report.stale import MANIFEST, manifest_rows
from regbench.run.rundir import read_json

HEADER = """# Results

Every folder here is written by `regbench report <grid>` from the grid's run directories.
Each holds `table.md` (Markdown), `results.csv`, `results.json` (with run ids and the raw
values), `table.tex` (booktabs), `report.html` (one self-contained file), `plots/` (PNG and
SVG) and `manifest.json` (the commit, the date, the grid file's hash, every row's job ids,
config hashes and versions, the packages and the hardware). Cite a table by its path, the
commit and the date in its manifest (see `CITATION.cff` at the top level).

This index is regenerated with every report (`regbench.report.index.write_index`).
"""


def _summary(path: Path) -> dict[str, Any]:
    m = read_json(path / MANIFEST)
    rows = manifest_rows(m)
    jobs = sum(len(r["job_ids"]) for r in rows)
    done = sum(r["state"]["done"] for r in rows)
    return {
        "grid": m["grid"]["name"],
        "folder": path.name,
        "rows": len(rows),
        "runs": f"{done} / {jobs}",
        "stale": sum(1 for r in rows if r.get("stale")),
        "commit": (m["project"]["commit"] or "unknown")[:12]
        + (" (dirty)" if m["project"]["dirty"] else ""),
        "date": m["generated"][:10],
    }


def _links(folder: str, path: Path) -> str:
    names = ("table.md", "report.html", "results.csv", "table.tex", "manifest.json")
    return ", ".join(f"[{n}]({folder}/{n})" for n in names if (path / n).is_file())


def render(results_dir: Path) -> str:
    grids = sorted(p for p in results_dir.iterdir() if (p / MANIFEST).is_file())
    lines = [HEADER, "## Grids", ""]
    if grids:
        lines += [
            "| Grid | Rows | Runs done | Stale rows | Commit | Date | Files |",
            "|---|---|---|---|---|---|---|",
        ]
        for path in grids:
            s = _summary(path)
            lines.append(
                f"| `{s['grid']}` | {s['rows']} | {s['runs']} | {s['stale']} | "
                f"`{s['commit']}` | {s['date']} | {_links(s['folder'], path)} |"
            )
    else:
        lines.append("No grid has been reported yet.")
    others = sorted(p for p in results_dir.glob("*/*.md") if not (p.parent / MANIFEST).is_file())
    if others:
        lines += ["", "## Other results", ""]
        lines += [f"- [{p.relative_to(results_dir)}]({p.relative_to(results_dir)})" for p in others]
    return "\n".join(lines) + "\n"


def write_index(results_dir: Path) -> Path:
    """Rewrite results_dir/README.md from the manifests of its grid folders."""
    path = Path(results_dir) / "README.md"
    path.write_text(render(Path(results_dir)))
    return path
