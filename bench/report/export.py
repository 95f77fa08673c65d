"""results.json (machine-readable, with run ids and raw values) and results.csv (one flat line
per row) of a report."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from regbench.report import assemble as text
from regbench.report.assemble import Entry, Report
from regbench.report.stats import finite_mean

KINDS = ("error", "diverged", "crashed")


def statistics(e: Entry) -> dict[str, Any]:
    """The statistics of the numbers a row shows (its own, or a stale row's earlier ones)."""
    c, r = e.comparison, e.row
    return {
        "numbers_from": "previous" if e.stale and r is not e.current else "current",
        "n": e.test.n,
        "test_mean": e.test.mean,
        "test_std": e.test.std,
        "test_ci95_low": e.test.ci_low,
        "test_ci95_high": e.test.ci_high,
        "val_mean": e.val.mean,
        "val_std": e.val.std,
        "delta_vs_none": c.delta if c else math.nan,
        "p_welch": c.p_value if c else math.nan,
        "p_holm": c.p_holm if c else math.nan,
        "gain_vs_none_pct": c.gain_pct if c else math.nan,
        "time_overhead_pct": c.time_overhead_pct if c else math.nan,
        "train_time_s_mean": finite_mean(r.train_time_s),
        "wall_time_s_mean": finite_mean(r.wall_time_s),
        "tokens_per_s_mean": finite_mean(r.tokens_per_s),
        "sequences_per_s_mean": finite_mean(r.sequences_per_s),
        "peak_memory_bytes_mean": finite_mean(r.peak_memory_bytes),
        "memory_kind": r.memory_kind,
        "num_parameters": r.num_parameters,
        "references": r.references,
    }


def row_dict(e: Entry) -> dict[str, Any]:
    """The current jobs' state and raw values, the shown statistics, and, for a stale row,
    why and the earlier row its numbers come from."""
    d = e.current.to_dict()
    d["failed"] = e.current.failed
    d |= statistics(e)
    d["stale"] = None
    if e.stale is not None:
        d["stale"] = {"changes": list(e.stale.changes), "previous_ids": list(e.stale.previous_ids)}
        if e.row is not e.current:
            d["stale_row"] = e.row.to_dict()
    return d


def _json_safe(value: Any) -> Any:
    """NaN and infinities as null: strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def reproduction_dicts(report: Report) -> list[dict[str, Any]]:
    out = []
    for rep in report.reproductions:
        ref = rep.reference
        out.append(
            {
                "task": ref.task,
                "variant": ref.variant,
                "cell": ref.cell,
                "point": ref.point,
                "split": ref.split,
                "published": ref.value,
                "source": ref.source,
                "note": ref.note,
                "accept_low": ref.low,
                "accept_high": ref.high,
                "accept": ref.rule,
                "ours_mean": rep.ours.mean,
                "ours_std": rep.ours.std,
                "ours_n": rep.ours.n,
                "within": rep.within,
                "stale": rep.stale,
            }
        )
    return out


def search_dicts(report: Report) -> dict[str, Any] | None:
    """The search budget and, per searched row, every point's score and the selected one."""
    search = report.grid.search
    if search is None:
        return None
    return {
        "budget": search.budget(),
        "seeds": list(search.seeds),
        "selections": [
            {
                "task": sel.task,
                "cell": sel.cell,
                "variant": sel.variant,
                "selected": None if sel.chosen is None else sel.best.label,
                "selected_overrides": None if sel.chosen is None else sel.best.overrides,
                "points": [vars(score) for score in sel.scores],
            }
            for sel in report.selections
        ],
    }


def write_json(report: Report, path: Path) -> Path:
    m = report.manifest
    data = {
        "grid": report.grid.name,
        "generated": m["generated"],
        "commit": m["project"]["commit"],
        "definitions": {
            "selection": text.SELECTION,
            "statistic": text.STATISTIC,
            "comparison": text.COMPARISON,
            "cost": text.COST,
            "stale": text.STALE,
        },
        "rows": [row_dict(e) for e in report.entries],
        "reproduction": reproduction_dicts(report),
        "search": search_dicts(report),
        "failures": [vars(f) for f in report.failures],
    }
    path.write_text(json.dumps(_json_safe(data), indent=2, allow_nan=False) + "\n")
    return path


CSV_KEYS = (
    "task", "cell", "variant", "point", "metric", "direction", "numbers_from", "n",
    "test_mean", "test_std", "test_ci95_low", "test_ci95_high", "val_mean", "val_std",
    "delta_vs_none", "p_welch", "p_holm", "gain_vs_none_pct", "time_overhead_pct", "failed",
    *(f"failed_{k}" for k in KINDS), "pending", "stale", "num_parameters", "train_time_s_mean",
    "wall_time_s_mean", "tokens_per_s_mean", "sequences_per_s_mean", "peak_memory_bytes_mean",
    "memory_kind", "run_ids",
)  # fmt: skip


def csv_row(e: Entry) -> dict[str, Any]:
    d = row_dict(e)
    d |= {f"failed_{k}": e.current.failures.get(k, 0) for k in KINDS}
    d["stale"] = "; ".join(e.stale.changes) if e.stale else ""
    d["run_ids"] = " ".join(d["run_ids"])
    return {k: ("" if isinstance(d[k], float) and math.isnan(d[k]) else d[k]) for k in CSV_KEYS}


def write_csv(report: Report, path: Path) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_KEYS)
        writer.writeheader()
        writer.writerows(csv_row(e) for e in report.entries)
    return path
