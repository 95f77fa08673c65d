"""Number formatting shared by the table formats: 4 significant digits for a metric, the
std, CI and Δ to the same decimal places; `–` for a missing value, `n/a` for an undefined one."""

from __future__ import annotations

import math

from regbench.report.stats import Summary

MISSING = "–"
UNDEFINED = "n/a"


def decimals(value: float) -> int:
    """Decimal places that give `value` 4 significant digits."""
    if math.isnan(value) or value == 0 or math.isinf(value):
        return 4
    return max(0, 3 - math.floor(math.log10(abs(value))))


def number(value: float, places: int | None = None) -> str:
    if math.isnan(value):
        return MISSING
    return f"{value:.{decimals(value) if places is None else places}f}"


def format_value(mean: float, std: float) -> str:
    """`mean ± std` (std to the mean's decimal places); just the mean without a std."""
    if math.isnan(mean):
        return MISSING
    places = decimals(mean)
    text = f"{mean:.{places}f}"
    return text if math.isnan(std) else f"{text} ± {std:.{places}f}"


def mean_std(s: Summary) -> str:
    """The test column: `–` without runs, `mean ± n/a` with one run."""
    if s.n == 1:
        return f"{number(s.mean)} ± {UNDEFINED}"
    return format_value(s.mean, s.std)


def ci(s: Summary) -> str:
    if s.n == 0:
        return MISSING
    if s.n == 1 or math.isnan(s.ci_low):
        return f"{UNDEFINED} (n = {s.n})"
    places = decimals(s.mean)
    return f"[{s.ci_low:.{places}f}, {s.ci_high:.{places}f}]"


def signed(value: float, places: int) -> str:
    return MISSING if math.isnan(value) else f"{value:+.{places}f}"


def p_value(p: float) -> str:
    if math.isnan(p):
        return MISSING
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def percent(value: float) -> str:
    if math.isnan(value):
        return MISSING
    return "0%" if abs(value) < 0.5 else f"{value:+.0f}%"


def mebibytes(values: list[float]) -> str:
    finite = [v for v in values if not math.isnan(v)]
    return f"{sum(finite) / len(finite) / 2**20:,.0f} MiB" if finite else MISSING


def count(value: float) -> str:
    return MISSING if math.isnan(value) else f"{value:,.0f}"


def failures(by_kind: dict[str, int]) -> str:
    """`0`, or the failed runs by kind: `1 diverged, 2 error`."""
    if not by_kind:
        return "0"
    return ", ".join(f"{n} {kind}" for kind, n in sorted(by_kind.items()))
