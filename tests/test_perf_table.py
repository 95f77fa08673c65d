"""`make perf`'s plan and table (bench/perf.py): which rows it measures in which order, how a
row is judged against its target, and that failed rows are listed, not dropped."""

from __future__ import annotations

import argparse

import torch

from regbench.perf import Row, _met, _planned, markdown


def row(variant: str, mode: str, ratio: float, compile_s: float = 0.0, size="PTB-small") -> Row:
    path = "fused kernel" if mode == "–" else "custom cell"
    return Row(size, variant, path, mode, 1000.0 * ratio, 1000.0, ratio, compile_s, 10)


def test_fused_rows_are_measured_first_then_graphs_on_cuda_only():
    args = argparse.Namespace(sizes="ptb,smnist", variants="none,zoneout,awd")
    cpu = _planned(args, cuda=False)
    cuda = _planned(args, cuda=True)
    assert [m for *_, m in cpu] == ["–", "–", "–", "eager", "eager", "compile", "compile"]
    assert [m for *_, m in cuda][:5] == ["–", "–", "–", "graph", "graph"]
    assert {(k, v) for k, v, m in cuda if m == "–"} == {
        ("ptb", "none"),
        ("ptb", "awd"),
        ("smnist", "none"),
    }  # awd needs tokens: not at sequential-MNIST size


def test_custom_rows_are_judged_in_the_step_mode_auto_picks():
    assert _met(row("zoneout", "compile", 0.8, 20.0), "cpu") == "yes"
    assert _met(row("zoneout", "compile", 0.8, 31.0), "cpu") == "no (compile)"
    assert _met(row("zoneout", "eager", 0.9), "cpu") == "(eager fallback)"
    assert _met(row("zoneout", "graph", 0.6, 20.0), "cuda") == "yes"
    assert _met(row("zoneout", "compile", 0.6, 20.0), "cuda") == "(no graphs)"
    assert _met(row("none", "–", 0.94), "cuda") == "no"


def test_the_table_is_in_size_and_variant_order_and_keeps_failed_rows():
    failed = Row("PTB-small", "zoneout", "custom cell", "compile", 0, 0, 0, 0, 0, "ran past 300 s")
    rows = [row("zoneout", "eager", 0.4), row("none", "–", 0.97, size="sequential MNIST")]
    rows += [failed, row("none", "–", 0.98)]
    text = markdown(rows, torch.device("cpu"), 5.0, "python -m regbench.perf")
    body = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [line.split(" | ")[:4] for line in body] == [
        ["| PTB-small", "none", "fused kernel", "–"],
        ["| PTB-small", "zoneout", "custom cell", "eager"],
        ["| PTB-small", "zoneout", "custom cell", "compile"],
        ["| sequential MNIST", "none", "fused kernel", "–"],
    ]
    assert "failed: ran past 300 s" in body[2]
    assert "in step mode 'compile'" in text
