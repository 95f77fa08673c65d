"""The reproduction table: each published number a grid declares (plan/references.py) beside
the mean over seeds of its row. Inside the tolerance, the row reproduces the published number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from regbench.plan.references import Reference
from regbench.report.collect import Key, Row
from regbench.report.stats import Summary, describe


@dataclass(frozen=True)
class Reproduction:
    """Ours beside the published value."""

    reference: Reference
    ours: Summary
    stale: bool = False

    @property
    def within(self) -> bool | None:
        """Whether our mean lies in the tolerance; None without a finished run."""
        return None if self.ours.n == 0 else self.reference.accepts(self.ours.mean)

    @property
    def verdict(self) -> str:
        text = {None: "no runs", True: "yes", False: "no"}[self.within]
        return f"{text} (stale)" if self.stale and self.within is not None else text


def reproduce(
    references: Sequence[Reference], rows: Mapping[Key, Row], stale: set[Key]
) -> list[Reproduction]:
    """One comparison per reference, from the rows shown in the report."""
    out = []
    for ref in references:
        row = rows.get(ref.key)
        values = [] if row is None else (row.test if ref.split == "test" else row.val)
        out.append(Reproduction(ref, describe(values), ref.key in stale))
    return out
