"""`make perf`'s plan and table (perf/measure.py): which rows it measures in which order, how a
row is judged against its target, and that failed rows are listed, not dropped."""

from __future__ import annotations

import argparse

import pytest
import torch

from regbench.perf.measure import _planned, _table_order
from regbench.perf.table import Row, combine, markdown, met


def row(variant: str, mode: str, ratio: float, compile_s: float = 0.0, size="PTB-small") -> Row:
    path = "fused kernel" if mode == "–" else "custom cell"
    return Row(size, variant, path, mode, 1000.0 * ratio, 1000.0, ratio, compile_s, 10)


def test_fused_rows_are_measured_first_then_graphs_on_cuda_only():
    args = argparse.Namespace(sizes="ptb,smnist", variants="none,zoneout,awd")
    cpu = _planned(args, cuda=False)
    cuda = _planned(args, cuda=True)
    assert [m for *_, m in cpu] == ["–"] * 3 + ["eager"] * 4 + ["compile"] * 4
    assert [m for *_, m in cuda][:7] == ["–"] * 3 + ["graph"] * 4
    assert {(k, v) for k, v, m in cpu if m == "compile"} == {
        (k, v) for k in ("ptb", "smnist") for v in ("none", "zoneout")
    }  # none on the custom cell: the custom-cell rows' reference
    assert {(k, v) for k, v, m in cuda if m == "–"} == {
        ("ptb", "none"),
        ("ptb", "awd"),
        ("smnist", "none"),
    }  # awd needs tokens: not at sequential-MNIST size


def test_custom_rows_are_judged_in_the_step_mode_auto_picks():
    assert met(row("zoneout", "compile", 0.8, 20.0), "cpu") == "yes"
    assert met(row("zoneout", "compile", 0.8, 31.0), "cpu") == "no (compile)"
    assert met(row("zoneout", "eager", 0.9), "cpu") == "(eager fallback)"
    assert met(row("zoneout", "graph", 0.6, 20.0), "cuda") == "yes"
    assert met(row("zoneout", "compile", 0.6, 20.0), "cuda") == "(no graphs)"
    assert met(row("none", "–", 0.94), "cuda") == "no"
    assert met(row("none", "compile", 0.5, 10.0), "cpu") == "(reference)"


def test_the_table_is_in_size_and_variant_order_and_keeps_failed_rows():
    failed = Row("PTB-small", "zoneout", "custom cell", "compile", 0, 0, 0, 0, 0, "ran past 300 s")
    rows = [row("zoneout", "eager", 0.4), row("none", "–", 0.97, size="sequential MNIST")]
    rows += [failed, row("none", "–", 0.98)]
    text = markdown(rows, torch.device("cpu"), 5.0, 1, "python -m regbench.perf", _table_order())
    body = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [line.split(" | ")[:4] for line in body] == [
        ["| PTB-small", "none", "fused kernel", "–"],
        ["| PTB-small", "zoneout", "custom cell", "eager"],
        ["| PTB-small", "zoneout", "custom cell", "compile"],
        ["| sequential MNIST", "none", "fused kernel", "–"],
    ]
    assert "failed: ran past 300 s" in body[2]
    assert "in step mode 'compile'" in text


def test_rounds_combine_into_the_median_with_its_range_and_the_cold_compile():
    rounds = [row("zoneout", "compile", 0.70, 25.0), row("zoneout", "compile", 0.80, 3.0)]
    rounds.append(row("zoneout", "compile", 0.74, 2.0))
    combined = combine(rounds)
    assert (combined.ratio, combined.low, combined.high) == (0.74, 0.70, 0.80)
    assert (combined.rounds, combined.iterations, combined.compile_s) == (3, 30, 25.0)
    assert combined.variant_tps == 740.0 and met(combined, "cpu") == "no"
    close = combine([row("none", "–", 0.978), row("none", "–", 0.983), row("none", "–", 0.979)])
    text = markdown([close], torch.device("cpu"), 4.0, 3, "make perf", _table_order())
    assert "| 0.979 | 0.97–0.99 | – | 3 |" in text  # rounded outwards: it holds the median


def test_failed_rounds_are_left_out_and_a_row_with_none_keeps_its_error():
    failed = Row("PTB-small", "zoneout", "custom cell", "compile", 0, 0, 0, 0, 0, "ran past 300 s")
    partly = combine([failed, row("zoneout", "compile", 0.9, 2.0)])
    assert (partly.rounds, partly.ratio, partly.error) == (1, 0.9, "")
    assert met(partly, "cpu") == "no (compile)"  # no cold round: its compile time is unknown
    assert combine([failed, failed]).error == "ran past 300 s"


@pytest.mark.slow
def test_make_perf_measures_every_row_in_each_round_in_fresh_processes(tmp_path):
    from regbench.perf.measure import main

    args = ["--sizes", "ptb", "--variants", "dropout", "--seconds", "0.2", "--rounds", "2"]
    assert main([*args, "--device", "cpu", "--out", str(tmp_path)]) == 0
    table = (tmp_path / "cpu.md").read_text()
    line = next(x for x in table.splitlines() if x.startswith("| PTB-small | dropout"))
    cells = line.strip("| ").split(" | ")
    low, high = (float(v) for v in cells[7].split("–"))
    assert cells[9] == "2" and low <= float(cells[6]) <= high
    assert float(cells[8]) > 0  # the textbook model's ratio, measured beside it
    assert "measured in 2 rounds" in table
