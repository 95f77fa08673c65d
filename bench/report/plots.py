"""The report's figures, PNG and SVG (matplotlib, Agg): per task, validation curves over
epochs with a band over seeds and the test metric per variant with its 95% CI; for the grid,
the cost-vs-gain scatter (time overhead against improvement over `none`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from regbench.report.assemble import Entry, Report
from regbench.run.records import RecordStore

matplotlib.rcParams["svg.hashsalt"] = "regbench"  # stable ids: a rerun gives the same SVG
matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: small, searchable SVG
FORMATS = ("png", "svg")
METADATA = {"png": {"Software": None}, "svg": {"Date": None}}
DIRECTION = {"max": "higher is better", "min": "lower is better"}


@dataclass(frozen=True)
class Plot:
    """One figure: its file stem under plots/ (one file per format), title and caption."""

    stem: str
    title: str
    caption: str

    def path(self, fmt: str) -> str:
        return f"plots/{self.stem}.{fmt}"


def write_plots(report: Report, out_dir: Path) -> tuple[list[Plot], list[Path]]:
    """Every figure of the report under out_dir/plots; the plots and the files written."""
    (out_dir / "plots").mkdir(parents=True, exist_ok=True)
    colors = _colors(report)
    plots, files = [], []
    for task in report.tasks():
        entries = [e for e in report.entries if e.key[0] == task]
        for plot, fig in (_curves(task, entries, report.store, colors), _test(task, entries)):
            plots.append(plot)
            files += _save(fig, out_dir, plot.stem)
    plot, fig = _cost(report, colors)
    plots.append(plot)
    files += _save(fig, out_dir, plot.stem)
    return plots, files


def _save(fig: Figure, out_dir: Path, stem: str) -> list[Path]:
    paths = []
    for fmt in FORMATS:
        path = out_dir / "plots" / f"{stem}.{fmt}"
        fig.savefig(path, format=fmt, dpi=110, bbox_inches="tight", metadata=METADATA[fmt])
        paths.append(path)
    return paths


def _colors(report: Report) -> dict[str, str]:
    """One colour per row label (variant and sweep point, or tuned rates), distinct for every
    label: tab10 or tab20 while they suffice, else evenly spaced hues."""
    labels = list(dict.fromkeys(e.label for e in report.entries))
    if len(labels) <= 20:
        palette = matplotlib.colormaps["tab10" if len(labels) <= 10 else "tab20"].colors
    else:
        palette = matplotlib.colormaps["nipy_spectral"](np.linspace(0.03, 0.95, len(labels)))
    return {v: matplotlib.colors.to_hex(palette[i]) for i, v in enumerate(labels)}


def _name(e: Entry, several_cells: bool) -> str:
    cell = f" · {e.key[1]}" if several_cells else ""
    return f"{e.label}{cell}{' (stale)' if e.stale else ''}"


def _several_cells(entries: Sequence[Entry]) -> bool:
    return len({e.key[1] for e in entries}) > 1


def val_curves(entry: Entry, store: RecordStore) -> list[dict[int, float]]:
    """Per finished seed of the shown row: validation metric by epoch (the run records)."""
    key = f"val/{entry.row.metric}"
    curves = []
    for run_id in entry.row.done_ids:
        run = store.get(run_id)
        rows = run.epochs if run is not None else []
        curve = {int(r["epoch"]): float(r[key]) for r in rows if key in r}
        if curve:
            curves.append(curve)
    return curves


def _band(curves: list[dict[int, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Epochs (from 1) every seed reached, and the mean, min and max over seeds."""
    epochs = sorted(set.intersection(*(set(c) for c in curves)))
    values = np.array([[c[e] for e in epochs] for c in curves])
    return np.array(epochs) + 1, values.mean(axis=0), values.min(axis=0), values.max(axis=0)


def _log_scale(ax: Axes, values: Sequence[float]) -> None:
    """A log y axis for positive values that span more than two decades."""
    finite = [v for v in values if math.isfinite(v)]
    if finite and min(finite) > 0 and max(finite) / min(finite) > 100:
        ax.set_yscale("log")


def _curves(
    task: str, entries: Sequence[Entry], store: RecordStore, colors: dict[str, str]
) -> tuple[Plot, Figure]:
    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.subplots()
    several = _several_cells(entries)
    styles = ["-", "--", ":", "-."]
    cells = list(dict.fromkeys(e.key[1] for e in entries))
    plotted: list[float] = []
    for e in entries:
        curves = val_curves(e, store)
        if not curves:
            continue
        x, mean, low, high = _band(curves)
        color, style = colors[e.label], styles[cells.index(e.key[1]) % len(styles)]
        ax.plot(x, mean, style, color=color, label=f"{_name(e, several)} (n={len(curves)})")
        ax.fill_between(x, low, high, color=color, alpha=0.15, linewidth=0)
        plotted += [*low, *high]
    _log_scale(ax, plotted)
    metric, direction = entries[0].row.metric, entries[0].row.direction
    _labels(ax, f"{task}: validation {metric} by epoch", "epoch", f"val {metric}")
    caption = (
        f"{task}: validation {metric} ({DIRECTION[direction]}) after each epoch; line: mean over "
        "seeds, band: from the lowest to the highest seed (none with one seed)."
    )
    return Plot(f"{task}-curves", f"{task}: validation curves", caption), fig


def _test(task: str, entries: Sequence[Entry]) -> tuple[Plot, Figure]:
    fig = Figure(figsize=(6.4, 3.6))
    ax = fig.subplots()
    several = _several_cells(entries)
    for i, e in enumerate(entries):
        ax.scatter([i] * len(e.row.test), e.row.test, s=12, color="0.55", zorder=2)
        if e.test.n:
            err = None
            if not math.isnan(e.test.ci_low):
                err = [[e.test.mean - e.test.ci_low], [e.test.ci_high - e.test.mean]]
            ax.errorbar([i], [e.test.mean], yerr=err, fmt="o", color="C0", capsize=4, zorder=3)
    ax.set_xticks(range(len(entries)), [_name(e, several) for e in entries], rotation=20)
    metric, direction = entries[0].row.metric, entries[0].row.direction
    _labels(ax, f"{task}: test {metric}", "", f"test {metric}", legend=False)
    caption = (
        f"{task}: test {metric} ({DIRECTION[direction]}) per variant; dot with bars: mean over "
        "seeds with its 95% t-interval (no bar with one seed); grey: the seeds."
    )
    return Plot(f"{task}-test", f"{task}: test metric per variant", caption), fig


def _cost(report: Report, colors: dict[str, str]) -> tuple[Plot, Figure]:
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    markers = "osD^vP*X"
    tasks = report.tasks()
    gains: list[float] = []
    for e in report.entries:
        c = e.comparison
        if c is None or math.isnan(c.time_overhead_pct) or math.isnan(c.gain_pct):
            continue
        marker = markers[tasks.index(e.key[0]) % len(markers)]
        hollow = "none" if e.stale else colors[e.label]
        ax.scatter(
            c.time_overhead_pct,
            c.gain_pct,
            marker=marker,
            s=42,
            facecolors=hollow,
            edgecolors=colors[e.label],
        )
        gains.append(c.gain_pct)
    if gains and max(abs(g) for g in gains) > 100:
        ax.set_yscale("symlog", linthresh=10)
    ax.axhline(0, color="0.6", linewidth=0.8)
    ax.axvline(0, color="0.6", linewidth=0.8)
    handles = [
        Line2D([], [], color=colors[label], marker="o", linestyle="", label=label)
        for label in dict.fromkeys(e.label for e in report.entries if e.key[2] != "none")
    ]
    handles += [
        Line2D(
            [],
            [],
            color="0.3",
            marker=markers[i % len(markers)],
            linestyle="",
            markerfacecolor="none",
            label=t,
        )
        for i, t in enumerate(tasks)
    ]
    if handles:
        ax.legend(handles=handles, fontsize=7, loc="best")
    _labels(
        ax,
        "Cost against gain over none",
        "training time vs none (%)",
        "gain over none (% of none's mean; > 0 is better)",
        legend=False,
    )
    caption = (
        "Each variant against the `none` row of its task, cell and sweep point: x, the "
        "increase of mean training time; y, the improvement of the mean test metric in % of "
        "none's (positive is better for either direction; symmetric log scale beyond ±10% "
        "when a gain exceeds 100%). Colour: table row (variant and sweep point or tuned "
        "rates); marker: task; hollow: stale row."
    )
    return Plot("cost", "Cost against gain", caption), fig


def _labels(ax: Axes, title: str, x: str, y: str, legend: bool = True) -> None:
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.grid(alpha=0.3)
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
