"""Golden numbers: every task × several variants, short deterministic runs whose metrics must
stay within a tight tolerance of tests/golden.json. After an intended change, re-record with
`make golden` (python -m regbench.golden --record --data-dir ../shared/data)."""

from __future__ import annotations

import json

import pytest

from real_data import REAL_DATA, SKIP_REASON
from regbench.golden import EMBEDDED, GOLDEN, cases, run_case
from regbench.jobs import Job

RECORDED = json.loads(GOLDEN.read_text())
RTOL, ATOL = 1e-4, 1e-6


@pytest.mark.parametrize(("case", "config"), list(cases()), ids=[c for c, _ in cases()])
def test_golden_numbers(case, config):
    real = config["task"]["name"] not in EMBEDDED
    if real and REAL_DATA is None:
        pytest.skip(SKIP_REASON)
    assert case in RECORDED, f"no golden numbers for {case}: run `make golden`"
    assert RECORDED[case]["job"] == Job(config).id, (
        f"{case}: the config changed (a version or default); if intended, run `make golden`"
    )
    metrics = run_case(config, str(REAL_DATA) if real else None)
    for key, value in RECORDED[case]["metrics"].items():
        assert metrics[key] == pytest.approx(value, rel=RTOL, abs=ATOL), f"{case} {key}"
