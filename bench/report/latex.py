"""table.tex: the results as a booktabs table for a paper (needs \\usepackage{booktabs}); the
best mean of each task is bold, in the direction its metric is better."""

from __future__ import annotations

from collections.abc import Sequence

from regbench.report import fmt
from regbench.report.assemble import Entry, Report
from regbench.report.collect import Key

SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}
ARROW = {"max": r"$\uparrow$", "min": r"$\downarrow$"}


def escape(text: str) -> str:
    out = "".join(SPECIAL.get(ch, ch) for ch in text)
    return out.replace("±", r"$\pm$").replace("Δ", r"$\Delta$").replace("–", "--")


def best(entries: Sequence[Entry]) -> set[Key]:
    """Per task, the rows with the best mean (ties all), among rows that are not stale."""
    out: set[Key] = set()
    for task in dict.fromkeys(e.key[0] for e in entries):
        rows = [e for e in entries if e.key[0] == task and e.test.n and not e.stale]
        if not rows:
            continue
        pick = max if rows[0].row.direction == "max" else min
        top = pick(e.test.mean for e in rows)
        out |= {e.key for e in rows if e.test.mean == top}
    return out


def caption(report: Report) -> str:
    directions = "; ".join(
        f"{escape(t)}: {escape(next(e.row.metric for e in report.entries if e.key[0] == t))} "
        f"{'higher' if _direction(report, t) == 'max' else 'lower'} is better"
        for t in report.tasks()
    )
    stale = (
        r" $^\dagger$: stale row (its config changed since these runs; previous numbers shown)."
        if any(e.stale for e in report.entries)
        else ""
    )
    return (
        f"Grid {escape(report.grid.name)}. Test metric of the checkpoint with the best "
        r"validation metric (the test split is evaluated once, on that checkpoint): mean $\pm$ "
        r"sample standard deviation (ddof = 1) over the $n$ seeds that finished; n/a: "
        r"undefined with $n = 1$. Bold: the best mean of each task ("
        f"{directions}). "
        r"$\Delta$: difference of means to \texttt{none} of the same task and cell; $p$: "
        r"two-sided Welch's $t$-test, Holm-corrected over the rows compared with one "
        r"\texttt{none} row. Time: mean training time relative to \texttt{none}. "
        f"Failed: runs that failed, by kind.{stale}"
    )


def _direction(report: Report, task: str) -> str:
    return next(e.row.direction for e in report.entries if e.key[0] == task)


def _row(e: Entry, first: bool, bold: bool) -> str:
    c = e.comparison
    test = escape(fmt.mean_std(e.test))
    if bold:
        test = rf"\textbf{{{test}}}"
    task = f"{escape(e.key[0])} {ARROW[e.row.direction]}" if first else ""
    cells = [
        task,
        escape(e.label) + (r"$^\dagger$" if e.stale else ""),
        escape(e.key[1]),
        test,
        str(e.test.n),
        escape(fmt.failures(e.current.failures)),
        escape(fmt.signed(c.delta, fmt.decimals(e.test.mean))) if c else "",
        escape(fmt.p_value(c.p_holm)) if c else "",
        escape(fmt.percent(c.time_overhead_pct)) if c else "",
    ]
    return "    " + " & ".join(cells) + r" \\"


def render(report: Report) -> str:
    bold = best(report.entries)
    lines = [
        "% regbench results table; needs \\usepackage{booktabs}",
        r"\begin{table}[htbp]",
        r"  \centering",
        r"  \small",
        rf"  \caption{{{caption(report)}}}",
        rf"  \label{{tab:regbench-{report.grid.name}}}",
        r"  \begin{tabular}{lllrrlrrr}",
        r"    \toprule",
        r"    Task & Variant & Cell & Test (mean $\pm$ std) & $n$ & Failed & $\Delta$ vs none"
        r" & $p$ (Holm) & Time \\",
        r"    \midrule",
    ]
    previous = None
    for e in report.entries:
        if previous is not None and e.key[0] != previous:
            lines.append(r"    \midrule")
        lines.append(_row(e, e.key[0] != previous, e.key in bold))
        previous = e.key[0]
    lines += [r"    \bottomrule", r"  \end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"
