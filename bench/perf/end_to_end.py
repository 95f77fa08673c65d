"""`python -m regbench.perf.end_to_end`: what the harness costs on top of the training it runs.

For each size, one job is run both ways, each in a fresh process, alternating in rounds:
(a) `regbench run` of the job in a fresh runs directory — Lightning's Trainer with the run's
checkpoints, records, W&B logger (offline unless WANDB_MODE says otherwise) and callbacks — and
(b) the same job in a plain PyTorch loop (bench/perf/plain_loop.py: the same network, data,
optimizer, schedule, clipping and per-epoch work, nothing else). The times compared:

- fit: the run's `train_time_s` (its epochs' `epoch_time_s`, training and validation) against
  the loop's epochs, timed the same way;
- run: the run's `wall_time_s` (the attempt: data, model, fit, test, records) against the
  loop's setup, epochs and test pass;
- process: the whole `regbench run` process against the whole plain-loop process (imports,
  W&B start and shutdown included).

A round runs both processes back to back, in turn order alternating between rounds, so drift
of a shared machine hits both; the ratios are taken per round and the table gives their
median and range. The loop must reach the run's metrics (the last epoch's validation metric
and the test metric): same seeds and the same operations in the same order give equal
numbers on the CPU, and a pair that differs beyond REL_TOL is marked in the table and makes
the command exit 1, since it would not be the same job. The table goes to
results/perf/end-to-end.md, rewritten after every round; notes written under NOTES_MARKER
(the profile of the harness, say) are kept. A benchmark, not a test: it asserts
no time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from regbench.errors import ConfigError
from regbench.perf.plain_loop import PLAIN_PREFIX
from regbench.perf.table import commit
from regbench.plan.config import resolve
from regbench.plan.grid import expand, load_grid
from regbench.plan.jobs import Job
from regbench.run.provenance import _cpu_model
from regbench.tasks import get_task

PROCESS_TIMEOUT_S = 1800.0
REL_TOL = 1e-6  # metrics of the two ways; equal in practice on the CPU (same ops, same order)
TARGET = 1.10  # the fit ratio at quick size (issue 19: the harness costs at most 10 %)
OUT_NAME = "end-to-end.md"
NOTES_MARKER = "<!-- notes: what follows is kept when the command rewrites this file -->"
DESCRIPTION = (
    "regbench run against a plain PyTorch loop of the same job (results/perf/end-to-end.md)"
)


@dataclass(frozen=True)
class Size:
    """One job to measure: a built-in grid's (task, variant, cell, seed) with the grid's
    overrides, plus `extra` overrides (limits that keep a real task's size short)."""

    key: str
    label: str
    grid: str
    task: str
    variant: str = "none"
    cell: str = "lstm"
    seed: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)
    needs_data: bool = False


SIZES = {
    s.key: s
    for s in (
        Size("quick", "quick: adding T 50, LSTM 64, 4000 sequences, 15 epochs", "quick", "adding"),
        Size(
            "tcn",
            "copy memory T 1000 at the TCN size (LSTM 50, batch 32), 2 epochs of 100 batches",
            "copy_memory_tcn",
            "copy_memory",
            extra={"train.max_epochs": 2, "train.limit_batches": 100},
        ),
        Size(
            "sst2",
            "SST-2 at Tai et al.'s size (LSTM 168, 300-d embedding), 2 epochs of 100 batches",
            "sst2_lstm",
            "sst2",
            extra={"train.max_epochs": 2, "train.limit_batches": 100},
            needs_data=True,
        ),
        Size(
            "tiny",
            "tiny: adding T 10, LSTM 8, 256 sequences, 2 epochs (the unit test's)",
            "quick",
            "adding",
            extra={
                "task.params.T": 10,
                "task.params.n_train": 256,
                "task.params.n_val": 64,
                "task.params.n_test": 64,
                "model.hidden_size": 8,
                "train.max_epochs": 2,
            },
        ),
    )
}


def overrides(size: Size) -> dict[str, Any]:
    """The `--set` overrides of the size's job: its grid's (grid-wide, task, cell), then extra."""
    grid = load_grid(size.grid)
    return {
        **grid.overrides,
        **grid.tasks[size.task],
        **grid.cells.get(size.cell, {}),
        **size.extra,
    }


def job_of(size: Size) -> tuple[dict[str, Any], str, bool]:
    """The size's resolved config, its job id, and whether the grid has that very job."""
    where = f"end-to-end size {size.key}"
    config = resolve(size.task, size.variant, size.cell, size.seed, overrides(size), where)
    job = Job(config)
    in_grid = not size.extra and job.id in {j.id for j in expand(load_grid(size.grid))}
    return config, job.id, in_grid


def run_command(size: Size, runs_dir: Path, data_dir: str | None) -> list[str]:
    """`regbench run` of the size's job (its overrides as --set, values as YAML)."""
    command = [sys.executable, "-m", "regbench", "run", "--task", size.task]
    command += ["--variant", size.variant, "--cell", size.cell, "--seed", str(size.seed)]
    for key, value in overrides(size).items():
        command += ["--set", f"{key}={json.dumps(value)}"]
    command += ["--runs-dir", str(runs_dir)]
    return command + (["--data-dir", data_dir] if data_dir else [])


def _child(command: list[str], what: str) -> tuple[str, float]:
    """Run a child process to the end; its stdout and wall seconds. A failure raises."""
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{what} ran past {PROCESS_TIMEOUT_S:g} s") from None
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        tail = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        raise RuntimeError(f"{what} failed (exit {done.returncode}): {tail}")
    return done.stdout, seconds


def measure_regbench(size: Size, job_id: str, data_dir: str | None) -> dict[str, Any]:
    """One `regbench run` in a fresh process and runs directory: its times and metrics. Its
    run directory must be <runs>/<job id>, i.e. the command resolved the size's very job."""
    with tempfile.TemporaryDirectory(prefix="regbench-e2e-runs-") as runs:
        _, seconds = _child(run_command(size, Path(runs), data_dir), "regbench run")
        run = Path(runs) / job_id
        if not (run / "result.json").is_file():
            found = ", ".join(p.name for p in Path(runs).iterdir()) or "nothing"
            raise RuntimeError(f"regbench run did not finish job {job_id} (runs dir: {found})")
        result = json.loads((run / "result.json").read_text())
        lines = (run / "metrics.jsonl").read_text().splitlines()
    epochs = [json.loads(x) for x in lines if x.strip()]
    metric = result["metric"]
    return {
        "process_s": seconds,
        "fit_s": result["train_time_s"],
        "run_s": result["wall_time_s"],
        "val": epochs[-1][f"val/{metric}"],
        "test": result["test"][metric],
        "step_mode": result.get("step_mode", "?"),
        "epochs": len(epochs),
    }


def measure_plain(config: Mapping[str, Any], metric: str, data_dir: str | None) -> dict[str, Any]:
    """The plain loop of the same job in a fresh process: its times and metrics."""
    with tempfile.TemporaryDirectory(prefix="regbench-e2e-plain-") as tmp:
        path = Path(tmp) / "config.json"
        path.write_text(json.dumps(config))
        command = [sys.executable, "-m", "regbench.perf.plain_loop", "--config", str(path)]
        command += ["--data-dir", data_dir] if data_dir else []
        stdout, seconds = _child(command, "plain loop")
    lines = [x for x in stdout.splitlines() if x.startswith(PLAIN_PREFIX)]
    if not lines:
        raise RuntimeError("plain loop printed no result line")
    out = json.loads(lines[-1][len(PLAIN_PREFIX) :])
    return {
        "process_s": seconds,
        "fit_s": out["fit_s"],
        "run_s": out["loop_s"],
        "val": out["epochs"][-1][f"val/{metric}"],
        "test": out["test"][f"test/{metric}"],
        "step_mode": out["step_mode"],
        "epochs": len(out["epochs"]),
    }


def agree(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two measurements reached the same metrics (last validation epoch and test)."""
    return all(math.isclose(a[k], b[k], rel_tol=REL_TOL, abs_tol=1e-12) for k in ("val", "test"))


@dataclass
class Round:
    regbench: dict[str, Any]
    plain: dict[str, Any]

    def ratio(self, kind: str) -> float:
        """'fit', 'run' or 'process': regbench's seconds over the plain loop's."""
        return self.regbench[f"{kind}_s"] / self.plain[f"{kind}_s"]


@dataclass
class Measured:
    size: Size
    job_id: str
    in_grid: bool
    metric: str
    config: dict[str, Any]
    rounds: list[Round] = field(default_factory=list)

    def agrees(self) -> bool:
        return all(agree(r.regbench, r.plain) for r in self.rounds)


def measure_round(m: Measured, index: int, data: str | None) -> Round:
    """Both ways once; regbench first in even rounds, the plain loop first in odd ones."""
    if index % 2 == 0:
        rb = measure_regbench(m.size, m.job_id, data)
        return Round(rb, measure_plain(m.config, m.metric, data))
    plain = measure_plain(m.config, m.metric, data)
    return Round(measure_regbench(m.size, m.job_id, data), plain)


def _median_span(values: list[float], digits: int = 2) -> str:
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.{digits}f}"
    return f"{med:.{digits}f} [{min(values):.{digits}f}–{max(values):.{digits}f}]"


def _times_line(m: Measured) -> str:
    def med(side: str, kind: str) -> str:
        return f"{statistics.median(getattr(r, side)[f'{kind}_s'] for r in m.rounds):.1f}"

    cells = [f"{med('regbench', k)} / {med('plain', k)}" for k in ("fit", "run", "process")]
    return f"| {m.size.key} | {' | '.join(cells)} |"


def _ratio_line(m: Measured) -> str:
    ratios = [_median_span([r.ratio(k) for r in m.rounds]) for k in ("fit", "run", "process")]
    last = m.rounds[-1]
    same = "yes" if m.agrees() else "**NO**"
    metrics = f"{last.regbench['val']:.6g} / {last.plain['val']:.6g}"
    target = "–"
    if m.size.key == "quick":
        target = "yes" if statistics.median(r.ratio("fit") for r in m.rounds) <= TARGET else "no"
    cells = [m.size.key, str(len(m.rounds)), *ratios, target, metrics, same]
    return f"| {' | '.join(cells)} |"


def _job_line(m: Measured) -> str:
    where = f"{m.size.grid}'s job" if m.in_grid else f"{m.size.grid}'s, with {dict(m.size.extra)}"
    r = m.rounds[-1].regbench
    return (
        f"- **{m.size.key}**: {m.size.label}; job `{m.job_id}` ({m.size.task} · {m.size.variant} · "
        f"{m.size.cell} · seed {m.size.seed}, {where}); step mode {r['step_mode']}, "
        f"{r['epochs']} epochs; metric {m.metric}."
    )


def markdown(measured: list[Measured], command: str, load: tuple[float, float]) -> str:
    """The end-to-end table with its provenance."""
    import torch

    wandb = os.environ.get("WANDB_MODE", "offline (regbench's default)")
    lines = [
        "# The harness's own cost: `regbench run` against a plain PyTorch loop",
        "",
        f"Measured by `{command}` on {date.today().isoformat()} at commit {commit()} (torch "
        f"{torch.__version__}) on {_cpu_model()}, {os.cpu_count()} cores, shared with other "
        f"work (load average {load[0]:.1f} at the start, {load[1]:.1f} at the end), so single "
        f"times are noisy; W&B mode {wandb}. Each round runs the job both ways, each in a "
        f"fresh process (regbench run in a fresh runs directory), in alternating order; a "
        f"ratio is regbench's time over the plain loop's in the same round, and the table "
        f"gives the median over the rounds and [min–max]. fit: the run's `train_time_s` "
        f"(every epoch's training and validation) against the loop's epochs; run: the "
        f"run's `wall_time_s` (data, model, fit, test, records) against the loop's setup, "
        f"epochs and test; process: the whole processes. The plain loop "
        f"(bench/perf/plain_loop.py) trains the same network from the same config and seeds "
        f"on the task's loaders with the same optimizer, schedule and clipping, validating "
        f"every epoch and testing the best epoch's weights once, with no Lightning, "
        f"checkpoint, record or logger. Target: fit ratio ≤ {TARGET:.2f} at quick size.",
        "",
        *[_job_line(m) for m in measured if m.rounds],
        "",
        "Median seconds, regbench / plain loop:",
        "",
        "| size | fit | run | process |",
        "|---|---|---|---|",
        *[_times_line(m) for m in measured if m.rounds],
        "",
        "| size | rounds | fit ratio | run ratio | process ratio | target met "
        "| last val metric, regbench / plain | same metrics |",
        "|---|---|---|---|---|---|---|---|",
        *[_ratio_line(m) for m in measured if m.rounds],
    ]
    return "\n".join(lines) + "\n"


def _sizes(text: str, data_dir: str | None) -> list[Size]:
    keys = [k for k in text.split(",") if k]
    for key in keys:
        if key not in SIZES:
            raise ConfigError(f"--sizes: unknown size {key!r}; valid: {', '.join(SIZES)}.")
        if SIZES[key].needs_data and not data_dir:
            raise ConfigError(f"--sizes: {key} reads local data; give --data-dir (with sst/).")
    return [SIZES[k] for k in keys]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="regbench-perf-end-to-end", description=DESCRIPTION)
    ap.add_argument("--sizes", default="quick,tcn", help=f"comma-separated: {', '.join(SIZES)}")
    ap.add_argument("--rounds", type=int, default=5, help="paired rounds per size")
    ap.add_argument("--data-dir", default=None, help="local data, for sst2")
    ap.add_argument("--out", default="results/perf", help=f"folder of {OUT_NAME}")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        raise ConfigError(f"--rounds must be at least 1, got {args.rounds}.")
    sizes = _sizes(args.sizes, args.data_dir)
    given = sys.argv[1:] if argv is None else argv
    command = " ".join(["python -m regbench.perf.end_to_end", *given])
    out = Path(args.out) / OUT_NAME
    out.parent.mkdir(parents=True, exist_ok=True)
    measured = [_planned(size) for size in sizes]
    notes = _kept_notes(out)
    start_load = os.getloadavg()[0]
    for index in range(args.rounds):
        for m in measured:
            r = measure_round(m, index, args.data_dir)
            m.rounds.append(r)
            print(_progress(m, r, index), flush=True)
            table = markdown(measured, command, (start_load, os.getloadavg()[0]))
            out.write_text(table + notes)
    print(f"wrote {out}")
    return 0 if all(m.agrees() for m in measured) else 1


def _kept_notes(path: Path) -> str:
    """The notes under NOTES_MARKER in an earlier version of the file, if any."""
    text = path.read_text() if path.is_file() else ""
    at = text.find(NOTES_MARKER)
    return "" if at < 0 else "\n" + text[at:]


def _planned(size: Size) -> Measured:
    config, job_id, in_grid = job_of(size)
    return Measured(size, job_id, in_grid, get_task(size.task).protocol.metric, config)


def _progress(m: Measured, r: Round, index: int) -> str:
    ratios = ", ".join(f"{k} {r.ratio(k):.2f}×" for k in ("fit", "run", "process"))
    same = "same metrics" if agree(r.regbench, r.plain) else "METRICS DIFFER"
    return (
        f"round {index + 1} {m.size.key}: fit {r.regbench['fit_s']:.1f} s vs "
        f"{r.plain['fit_s']:.1f} s; {ratios}; {same}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
