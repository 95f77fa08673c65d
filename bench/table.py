"""Write a grid's results: a Markdown table (README-ready), CSV and JSON, with provenance."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from regbench.collect import Record, Row, aggregate, mean_std
from regbench.grid import Grid
from regbench.provenance import code_version, package_versions
from regbench.rundir import read_json
from regbench.tasks import get_task

ARROW = {"max": "↑ higher", "min": "↓ lower"}
SELECTION = (
    "Selection rule: in every run the checkpoint with the best validation metric is kept and "
    "the test split is evaluated once, on that checkpoint."
)
STATISTIC = (
    "mean ± std: the mean and the sample standard deviation (ddof = 1) of the test metric over "
    "the n seeds that finished; failed or unfinished runs are counted in their own columns, "
    "never dropped silently."
)


def format_value(mean: float, std: float) -> str:
    """4 significant digits for the mean; the std to the same decimal places."""
    if math.isnan(mean):
        return "–"
    magnitude = math.floor(math.log10(abs(mean))) if mean else 0
    decimals = max(0, 3 - magnitude)
    text = f"{mean:.{decimals}f}"
    return text if math.isnan(std) else f"{text} ± {std:.{decimals}f}"


def _references(row: Row) -> str:
    return "; ".join(f"{name} {value:.4g}" for name, value in row.references.items()) or "–"


def markdown_table(rows: Sequence[Row]) -> str:
    head = [
        "Task",
        "Metric",
        "Better",
        "Variant",
        "Cell",
        "Test (mean ± std)",
        "n",
        "Failed",
        "Val (mean)",
        "Reference",
        "Train s/run",
        "Params",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        test, val = mean_std(row.test), mean_std(row.val)
        train_s = mean_std(row.train_time_s)[0]
        variant = f"{row.variant} ({row.point})" if row.point else row.variant
        cells = [
            row.task,
            row.metric,
            ARROW[row.direction],
            variant,
            row.cell,
            format_value(*test),
            str(row.n),
            str(row.failed + row.pending),
            format_value(val[0], math.nan),
            _references(row),
            "–" if math.isnan(train_s) else f"{train_s:.1f}",
            "–" if row.num_parameters is None else f"{row.num_parameters:,}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def setup_lines(records: Sequence[Record]) -> list[str]:
    """How each task was run (from its first job), with the regularizer rates it used."""
    configs: dict[str, Mapping[str, Any]] = {}
    rates: dict[str, dict[str, Mapping[str, Any]]] = {}
    for record in records:
        config = record.job.config
        name = config["task"]["name"]
        configs.setdefault(name, config)
        for key, params in config["regularizers"].items():
            rates.setdefault(name, {}).setdefault(key, params)
    lines = []
    for name, config in configs.items():
        lines.append(_task_line(name, config))
        for key, params in rates.get(name, {}).items():
            values = ", ".join(f"{k} {v:g}" for k, v in params.items())
            lines.append(f"  - `{key}`: {values}")
    return lines


def _task_line(name: str, config: Mapping[str, Any]) -> str:
    protocol = get_task(name).protocol
    params = ", ".join(f"{k}={v}" for k, v in config["task"]["params"].items())
    m, t = config["model"], config["train"]
    return (
        f"- `{name}` v{config['task']['version']} ({params}): {m['num_layers']}×"
        f"{m['hidden_size']} {m['cell']}, {t['optimizer']} lr {t['lr']:g}, batch "
        f"{t['batch_size']}, {t['max_epochs']} epochs, clip {t['clip']:g}. Protocol "
        f"reference: {protocol.reference}."
    )


def _run_code_versions(done: Sequence[Record], runs_dir: Path) -> tuple[str, str]:
    """The commits the finished runs were produced at, and the hardware of the first."""
    commits, hardware = set(), "–"
    for record in done:
        prov = read_json(record.job.run_dir(runs_dir).provenance)
        code = prov["code"]
        commits.add(f"`{(code['commit'] or 'unknown')[:12]}`{' (dirty)' if code['dirty'] else ''}")
        if hardware == "–":
            hardware = prov["hardware"].get("gpu") or prov["hardware"]["cpu"]
    return ", ".join(sorted(commits)) or "–", hardware


def provenance_lines(
    grid: Grid, records: Sequence[Record], runs_dir: Path, command: str
) -> list[str]:
    done = [r for r in records if r.state == "done"]
    run_commits, hardware = _run_code_versions(done, runs_dir)
    code = code_version()
    state = {True: " (dirty)", False: "", None: " (no git checkout)"}[code["dirty"]]
    versions = package_versions()
    return [
        f"- produced by `{command}` on {date.today().isoformat()} from {len(done)} finished "
        f"run directories ({len(records)} jobs), at regbench commit "
        f"`{(code['commit'] or 'unknown')[:12]}`{state}",
        f"- runs trained at regbench commit {run_commits}; grid file `{grid.path.name}` "
        f"sha256 `{grid.file_hash()[:16]}`",
        f"- hardware: {hardware}; torch {versions['torch']}, lightning {versions['lightning']}, "
        f"python {versions['python']}",
    ]


def render(
    grid: Grid, rows: Sequence[Row], records: Sequence[Record], runs_dir: Path, command: str
) -> str:
    parts = [f"# Results: grid `{grid.name}`", ""]
    if grid.description:
        parts += [grid.description.strip(), ""]
    parts += [markdown_table(rows), "", SELECTION, STATISTIC, "", "## Setup", ""]
    parts += setup_lines(records)
    parts += ["", "## Provenance", ""]
    parts += provenance_lines(grid, records, runs_dir, command)
    return "\n".join(parts) + "\n"


def row_dict(row: Row) -> dict[str, Any]:
    test_mean, test_std = mean_std(row.test)
    return {
        "task": row.task,
        "cell": row.cell,
        "variant": row.variant,
        "point": row.point,
        "metric": row.metric,
        "direction": row.direction,
        "n": row.n,
        "failed": row.failed,
        "pending": row.pending,
        "test_mean": test_mean,
        "test_std": test_std,
        "val_mean": mean_std(row.val)[0],
        "test_values": row.test,
        "val_values": row.val,
        "seeds": row.seeds,
        "train_time_s_mean": mean_std(row.train_time_s)[0],
        "tokens_per_s_mean": mean_std(row.tokens_per_s)[0],
        "num_parameters": row.num_parameters,
        "references": row.references,
        "run_ids": row.run_ids,
    }


def write_report(
    grid: Grid, records: Sequence[Record], runs_dir: Path, out_dir: Path, command: str
) -> list[Path]:
    """Write table.md, results.csv and results.json under `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    aggregated = aggregate(records)
    rows = [row_dict(r) for r in aggregated]
    md = out_dir / "table.md"
    md.write_text(render(grid, aggregated, records, runs_dir, command))
    js = out_dir / "results.json"
    js.write_text(json.dumps({"grid": grid.name, "rows": rows}, indent=2) + "\n")
    csv_path = out_dir / "results.csv"
    flat_keys = [k for k in rows[0] if not isinstance(rows[0][k], (list, dict))] if rows else []
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=flat_keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return [md, csv_path, js]
