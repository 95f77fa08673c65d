"""`make perf`'s rows and table: one measurement per row and round, rounds combined into the
median, and the Markdown table written to results/perf/<device>.md (measure.py measures)."""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date

from regbench.run.provenance import _cpu_model, code_version

TARGETS = {"cpu": {"fused": 0.95, "custom": 0.75}, "cuda": {"fused": 0.95, "custom": 0.5}}
MAX_COMPILE_S = 30.0
# The step mode a custom-cell target is judged in (what step mode 'auto' picks for long runs).
TARGET_MODE = {"cpu": "compile", "cuda": "graph"}
COMPILED_MODES = ("compile", "graph")  # the step modes whose first call compiles


@dataclass
class Row:
    """One row of the table: a single measurement, or rounds of one combined (`combine`):
    then tokens/s and ratio are medians over the rounds, `low`–`high` the ratios' range,
    `compile_s` the first round's (cold cache) and `iterations` the sum. `textbook_ratio`
    is the same ratio for the variant's textbook model, where it has one."""

    size: str
    variant: str
    path: str
    mode: str
    variant_tps: float
    baseline_tps: float
    ratio: float
    compile_s: float
    iterations: int
    error: str = ""
    rounds: int = 1
    low: float = 0.0
    high: float = 0.0
    textbook_ratio: float = 0.0  # the textbook model's (bench/perf/textbook.py); 0: none


def combine(measured: list[Row]) -> Row:
    """The rounds of one row (in order, the first from a cold compile cache) as one row; the
    failed rounds are left out, and a row none of whose rounds succeeded keeps the last error."""
    done = [r for r in measured if not r.error]
    if not done:
        return replace(measured[-1], rounds=0)
    ratios = [r.ratio for r in done]
    return replace(
        done[0],
        variant_tps=statistics.median(r.variant_tps for r in done),
        baseline_tps=statistics.median(r.baseline_tps for r in done),
        ratio=statistics.median(ratios),
        compile_s=measured[0].compile_s if not measured[0].error else float("nan"),
        iterations=sum(r.iterations for r in done),
        rounds=len(done),
        low=min(ratios),
        high=max(ratios),
        textbook_ratio=statistics.median(r.textbook_ratio for r in done),
    )


def met(r: Row, kind: str) -> str:
    """Whether a row meets its target; custom-cell rows in other modes, and `none` on the
    custom cell (the reference of the custom-cell rows), are labelled."""
    if r.path == "fused kernel":
        return "yes" if r.ratio >= TARGETS[kind]["fused"] else "no"
    if r.variant == "none":
        return "(reference)"
    if r.mode != TARGET_MODE[kind]:
        return "(eager fallback)" if r.mode == "eager" else "(no graphs)"
    ok = r.ratio >= TARGETS[kind]["custom"]
    if not r.compile_s <= MAX_COMPILE_S:  # NaN: the cold round failed
        return "no (compile)" if ok else "no (both)"
    return "yes" if ok else "no"


def markdown(
    rows: list[Row],
    device,
    seconds: float,
    rounds: int,
    command: str,
    order: Callable[[Row], tuple[int, ...]],
) -> str:
    """The table of `rows` (combined over rounds), sorted by `order`, with its provenance."""
    import torch

    kind = "cuda" if device.type == "cuda" else "cpu"
    target = TARGETS[kind]
    lines = [
        f"# Variant speed on {device_label(device)}",
        "",
        f"Forward+backward tokens/s against a plain `nn.LSTM` model by `{command}` on "
        f"{date.today().isoformat()} at commit {commit()} (torch {torch.__version__}"
        f"{_precision(device)}). Each row is measured in {_rounds(rounds)}, each a fresh "
        f"process in which baseline and variant iterations alternate for about {seconds:g} s; "
        f"ratio = median baseline time / median variant time in a round, higher is better; "
        f"the table gives the median over the rounds and their range. A regularized "
        f"fused-kernel variant's textbook model (the regularizer written the common way, "
        f"bench/perf/textbook.py) is paired with the baseline the same way: its ratio is what "
        f"the regularizer costs written that way. `none` on the custom cell, no "
        f"regularizer, is what leaving the fused kernel costs by itself. Compile seconds come "
        f"from the first round, with a cold Inductor cache. Targets here: fused-kernel "
        f"variants ≥ {target['fused']}×; custom-cell variants ≥ {target['custom']}× in step "
        f"mode '{TARGET_MODE[kind]}' with a cold compile of ≤ {MAX_COMPILE_S:g} s.",
        "",
        "| size | variant | path | steps | tokens/s | baseline tokens/s | ratio | range "
        "| textbook ratio | rounds | target met | compile s | iterations |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [_line(r, kind) for r in sorted(rows, key=order)]
    return "\n".join(lines) + "\n"


def _rounds(rounds: int) -> str:
    return "one round" if rounds == 1 else f"{rounds} rounds (all rows once, then again)"


def _line(r: Row, kind: str) -> str:
    head = f"| {r.size} | {r.variant} | {r.path} | {r.mode} |"
    if r.error:
        return f"{head} failed: {r.error} |"
    compile_s = f"{r.compile_s:.1f}" if r.mode in COMPILED_MODES else "–"
    textbook = f"{r.textbook_ratio:.3f}" if r.textbook_ratio else "–"
    return (
        f"{head} {r.variant_tps:,.0f} | {r.baseline_tps:,.0f} | {r.ratio:.3f} | "
        f"{_span(r.low, r.high)} | {textbook} | {r.rounds} | {met(r, kind)} | {compile_s} | "
        f"{r.iterations} |"
    )


def _span(low: float, high: float) -> str:
    """The range of a row's ratios to two decimals, rounded outwards (so it holds the
    three-decimal median)."""
    return f"{math.floor(low * 100) / 100:.2f}–{math.ceil(high * 100) / 100:.2f}"


def summary(r: Row) -> str:
    """One measured round as a line of progress."""
    if r.error:
        return f"{r.size:17} {r.variant:18} {r.mode:7} failed: {r.error}"
    compiled = f", compile {r.compile_s:.1f} s" if r.mode in COMPILED_MODES else ""
    compiled += f", textbook {r.textbook_ratio:.2f}×" if r.textbook_ratio else ""
    return (
        f"{r.size:17} {r.variant:18} {r.mode:7} {r.ratio:5.2f}× "
        f"({r.variant_tps:,.0f} vs {r.baseline_tps:,.0f} tokens/s){compiled}"
    )


def device_label(device) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{_cpu_model()}, {torch.get_num_threads()} threads"


def device_slug(device) -> str:
    """'cpu', or 'cuda-' and the GPU's name (results/perf/<device>.md)."""
    import torch

    if device.type != "cuda":
        return "cpu"
    name = torch.cuda.get_device_name(device).lower()
    return "cuda-" + "-".join("".join(c if c.isalnum() else " " for c in name).split())


def _precision(device) -> str:
    """On CUDA, whether cuDNN and cuBLAS may use TF32 for float32 (PyTorch's defaults: cuDNN
    yes, so the nn.LSTM baseline and fused variants; matmuls no, so the custom cells)."""
    import torch

    if device.type != "cuda":
        return ""
    cudnn, matmul = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    return f"; TF32 in cuDNN {'on' if cudnn else 'off'}, in matmuls {'on' if matmul else 'off'}"


def commit() -> str:
    """The measured code's commit, as the table states it."""
    version = code_version()
    if version["commit"] is None and os.environ.get("REGBENCH_COMMIT"):  # a copy without git
        return f"`{os.environ['REGBENCH_COMMIT'][:12]}` (as given by REGBENCH_COMMIT)"
    sha = (version["commit"] or "unknown")[:12]
    return f"`{sha}`" + (" with uncommitted changes" if version["dirty"] else "")
