"""Published numbers declared in a grid file: parsing, one-line errors, and the reproduction
table's verdicts (inside or outside the stated tolerance)."""

from __future__ import annotations

import json
import math

import pytest
from fake_runs import done, write_grid

from regbench.errors import ConfigError
from regbench.plan.grid import load_grid
from regbench.report.write import write_report

HEAD = """name: repro
tasks:
  adding: {task.params.T: 20}
  seq_digits: {}
variants: [none, dropout]
seeds: [0, 1, 2]
"""
REFERENCES = """references:
  - {task: adding, variant: none, value: 0.164, source: "Bai et al. 2018, Table 1",
     tolerance: {range: [0.14, 0.18]}}
  - {task: adding, variant: dropout, value: 0.164, source: "Bai et al. 2018, Table 1",
     tolerance: {range: [0.14, 0.18]}}
  - {task: seq_digits, variant: none, cell: lstm, value: 0.872, source: TCN,
     tolerance: {min: 0.842}, note: "published − 3 pp"}
  - {task: seq_digits, variant: dropout, split: val, value: 0.849, source: T15,
     tolerance: {plus_minus: 0.015}}
"""


def test_references_parse_into_intervals(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text(HEAD + REFERENCES)
    refs = load_grid(path).references
    assert [(r.task, r.variant, r.cell, r.split) for r in refs] == [
        ("adding", "none", "lstm", "test"),
        ("adding", "dropout", "lstm", "test"),
        ("seq_digits", "none", "lstm", "test"),
        ("seq_digits", "dropout", "lstm", "val"),
    ]
    assert (refs[0].low, refs[0].high, refs[0].rule) == (0.14, 0.18, "[0.14, 0.18]")
    assert (refs[2].low, refs[2].high, refs[2].rule) == (0.842, math.inf, "≥ 0.842")
    assert refs[3].low == pytest.approx(0.834) and refs[3].high == pytest.approx(0.864)
    assert refs[3].rule == "± 0.015" and refs[2].note == "published − 3 pp"


def test_a_sweep_point_is_named_by_its_mapping_or_label(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text(
        "tasks: [adding]\nvariants: [none]\nseeds: [0]\n"
        "sweep: [{train.lr: 0.01}, {train.lr: 0.001}]\nreferences:\n"
        "  - {task: adding, variant: none, point: {train.lr: 0.001}, value: 1, source: s,"
        " tolerance: {max: 2}}\n"
        "  - {task: adding, variant: none, point: 'lr=0.01', value: 1, source: s,"
        " tolerance: {max: 2}}\n"
    )
    assert [r.point for r in load_grid(path).references] == ["lr=0.001", "lr=0.01"]


@pytest.mark.parametrize(
    ("reference", "fragment"),
    [
        ("{task: adding, variant: zoneout, value: 1, source: s, tolerance: {max: 2}}",
         "unknown variant in references[0].variant 'zoneout'"),
        ("{task: adding, variant: none, value: 1, tolerance: {max: 2}}",
         "references[0] is missing 'source'"),
        ("{task: adding, variant: none, value: 1, source: s, tolerance: {within: 2}}",
         "unknown kind of references[0].tolerance 'within'"),
        ("{task: adding, variant: none, value: 1, source: s, tolerance: {range: [2, 1]}}",
         "references[0].tolerance.range must have low ≤ high"),
        ("{task: adding, variant: none, value: x, source: s, tolerance: {max: 2}}",
         "references[0].value must be a number"),
        ("{task: adding, variant: none, value: 1, source: s, tolerance: 2}",
         "references[0].tolerance must be a mapping"),
        ("{task: adding, variant: none, point: 'lr=1', value: 1, source: s, tolerance: {max: 2}}",
         "unknown point in references[0].point 'lr=1'"),
        ("{task: adding, varient: none, value: 1, source: s, tolerance: {max: 2}}",
         "unknown key in references[0] 'varient'. Did you mean 'variant'"),
    ],
)  # fmt: skip
def test_reference_mistakes_are_one_line_errors_naming_file_and_key(tmp_path, reference, fragment):
    path = tmp_path / "g.yaml"
    path.write_text(
        f"tasks: [adding]\nvariants: [none]\nseeds: [0]\nreferences:\n  - {reference}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_grid(path)
    message = str(err.value)
    assert fragment in message and message.startswith(str(path)) and "\n" not in message


def test_reproduction_table_says_whether_ours_is_within_tolerance(tmp_path):
    grid, jobs = write_grid(tmp_path / "repro.yaml", HEAD + REFERENCES)
    runs, out = tmp_path / "runs", tmp_path / "out"
    values = {
        ("adding", "none"): [0.15, 0.16, 0.17],  # mean 0.16: inside [0.14, 0.18]
        ("adding", "dropout"): [0.18, 0.19, 0.20],  # mean 0.19: outside
        ("seq_digits", "none"): [0.85, 0.86, 0.84],  # mean 0.85 ≥ 0.842
    }
    for job in jobs:
        key = (job.config["task"]["name"], job.config["variant"])
        if key in values:  # seq_digits dropout never ran
            done(job, runs, values[key][job.seed])
    write_report(grid, jobs, runs, out, "pytest")
    repro = json.loads((out / "results.json").read_text())["reproduction"]
    assert [r["within"] for r in repro] == [True, False, True, None]
    assert repro[0]["ours_mean"] == pytest.approx(0.16) and repro[0]["ours_n"] == 3
    assert repro[2]["accept_high"] is None  # +inf is not JSON
    table = (out / "table.md").read_text()
    assert "## Reproduction of published numbers" in table
    assert (
        "| adding | none | lstm | test | 0.164 | Bai et al. 2018, Table 1 | [0.14, 0.18] |" in table
    )
    assert "| 0.1600 ± 0.0100 | 3 | yes |" in table and "| 0.1900 ± 0.0100 | 3 | no |" in table
    assert "| TCN (published − 3 pp) | ≥ 0.842 |" in table and "| – | 0 | no runs |" in table
    page = (out / "report.html").read_text()
    assert page.count("<table>") == 3 and "<td>Bai et al. 2018, Table 1</td>" in page


def test_builtin_grid_references_name_rows_of_their_grid():
    from regbench.plan.grid import builtin_grids, expand

    declared = 0
    for name in builtin_grids():
        grid = load_grid(name)
        rows = {job.row_key for job in expand(grid)}
        for ref in grid.references:
            assert ref.key in rows, (name, ref.key)
            assert ref.low <= ref.value <= ref.high, (name, ref.key)
            declared += 1
    assert declared >= 6  # copy_memory_tcn, ptb_examples, sst2_lstm
