"""Golden numbers: every task × several variants, short deterministic runs whose metrics must
stay within a tight tolerance of tests/golden.json, recorded per numerics class of the CPU (a
class without a record is held to the others' at the measured cross-class drift; see
regbench.checks.golden). After an intended change, re-record with `make golden`
(python -m regbench.checks.golden --record --data-dir ../shared/data)."""

from __future__ import annotations

import json
import warnings

import pytest

from real_data import REAL_DATA, SKIP_REASON
from regbench.checks.golden import (
    CROSS_RTOL,
    EMBEDDED,
    GOLDEN,
    RTOL,
    cases,
    compare,
    numerics_class,
    run_case,
    updated,
)
from regbench.plan.jobs import Job

RECORDED = json.loads(GOLDEN.read_text())
HERE = numerics_class()


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
    against, problems = compare(config["task"]["name"], metrics, RECORDED[case]["classes"], HERE)
    if against != HERE:
        warnings.warn(f"{case}: no record for {HERE}; held to {against}", stacklevel=1)
    assert not problems, f"{case} against {against}: " + "; ".join(problems)


# -- the comparison and recording rules, on made-up numbers ---------------------------------
AMD, INTEL = "AVX2/AuthenticAMD", "AVX512/GenuineIntel"
LOSS = {"test/loss": 2.0}


def moved(rel: float) -> dict[str, float]:
    return {"test/loss": 2.0 * (1 + rel)}


def test_own_class_is_held_tightly_and_others_are_ignored():
    records = {AMD: moved(5e-4), INTEL: LOSS}
    assert compare("adding", moved(RTOL / 2), records, INTEL) == (INTEL, [])
    against, problems = compare("adding", moved(RTOL * 2), records, INTEL)
    assert against == INTEL and len(problems) == 1 and "test/loss" in problems[0]


def test_a_class_without_record_is_held_to_every_other_at_the_cross_tolerance():
    records = {AMD: LOSS}
    against, problems = compare("adding", moved(CROSS_RTOL / 2), records, INTEL)
    assert AMD in against and not problems
    assert compare("adding", moved(CROSS_RTOL * 2), records, INTEL)[1]
    assert not compare("pmnist", moved(CROSS_RTOL * 2), records, INTEL)[1]  # long sequences
    both = {AMD: LOSS, "AVX512/AuthenticAMD": moved(CROSS_RTOL * 1.5)}
    assert compare("adding", moved(-CROSS_RTOL * 0.8), both, INTEL)[1]


def test_recording_keeps_other_classes_only_where_they_still_hold():
    entry = {"job": "j", "classes": {AMD: moved(2e-4), INTEL: LOSS}}
    assert updated(entry, "adding", "j", moved(1e-6), INTEL)["classes"] == {
        AMD: moved(2e-4),
        INTEL: moved(1e-6),
    }
    assert updated(entry, "adding", "j", moved(1e-3), INTEL)["classes"] == {INTEL: moved(1e-3)}
    assert updated(entry, "adding", "new", LOSS, INTEL) == {"job": "new", "classes": {INTEL: LOSS}}
    first = updated({"job": "j", "classes": {AMD: LOSS}}, "adding", "j", moved(1e-4), INTEL)
    assert first["classes"] == {AMD: LOSS, INTEL: moved(1e-4)}


def test_numerics_class_names_the_kernel_level_and_vendor():
    level, vendor = HERE.split("/")
    assert level and vendor
