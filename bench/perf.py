"""`make perf`: forward+backward tokens/s of every variant against plain nn.LSTM, side by side.

For each size (PTB-small: batch 20, hidden 200, T 35, 10k-word embedding; sequential MNIST:
batch 64, hidden 128, T 784, one pixel per step) the baseline is a plain PyTorch model — an
`nn.LSTM` (cuDNN / oneDNN) with the same embedding and a 10-way head — and each variant is
regbench's network with that variant at its paper-default rates. Baseline and variant
iterations alternate, so machine drift hits both; the ratio is median(baseline time) /
median(variant time). Variants on the custom cell are measured eager and compiled; the
compile seconds are the first call's time minus a steady iteration, from a cold cache. Every
row runs in a fresh process: in one long process the baseline's own speed drifted by up to 2×
after some variants had run (allocator and cache state), which no pairing cancels.
This is a benchmark, not a test: it writes results/perf/<device>.md and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

TARGETS = {"cpu": {"fused": 0.95, "custom": 0.75}, "cuda": {"fused": 0.95, "custom": 0.5}}
MAX_COMPILE_S = 30.0


@dataclass(frozen=True)
class Size:
    name: str
    batch: int
    hidden: int
    steps: int
    features: int  # 0: token inputs
    vocab: int
    kind: str


SIZES = {
    "ptb": Size("PTB-small", 20, 200, 35, 0, 10_000, "classify_each"),
    "smnist": Size("sequential MNIST", 64, 128, 784, 1, 0, "classify_last"),
}


@dataclass
class Row:
    size: str
    variant: str
    path: str
    mode: str
    variant_tps: float
    baseline_tps: float
    ratio: float
    compile_s: float
    iterations: int


def _timed(fn: Callable[[], None], device) -> float:
    import torch

    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def paired(
    base: Callable[[], None],
    variant: Callable[[], None],
    seconds: float,
    device,
    min_iterations: int = 5,
) -> tuple[float, float, int]:
    """Median seconds per iteration of each, alternating iterations."""
    for _ in range(2):
        _timed(base, device), _timed(variant, device)
    base_t, variant_t = [], []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(base_t) < min_iterations:
        base_t.append(_timed(base, device))
        variant_t.append(_timed(variant, device))
    return statistics.median(base_t), statistics.median(variant_t), len(base_t)


def _baseline(size: Size, device):
    import torch
    from torch import nn

    torch.manual_seed(0)
    embed = nn.Embedding(size.vocab, size.hidden) if size.vocab else nn.Identity()
    rnn = nn.LSTM(size.features or size.hidden, size.hidden)
    head = nn.Linear(size.hidden, 10)
    model = nn.ModuleList([embed, rnn, head]).to(device)

    def step(x):
        model.zero_grad(set_to_none=True)
        out, _ = rnn(embed(x.transpose(0, 1)))
        logits = head(out if size.kind == "classify_each" else out[-1])
        logits.square().mean().backward()

    return model, step


def _network(size: Size, variant: str, mode: str, device):
    import torch

    from regbench.models.network import RecurrentNet
    from regbench.models.variants import RECIPES, REGULARIZERS
    from regbench.tasks.base import InputSpec

    torch.manual_seed(0)
    spec = InputSpec(num_outputs=10, features=size.features, vocab_size=size.vocab)
    regs = [REGULARIZERS[k]() for k in RECIPES.get(variant, (variant,))]
    net = RecurrentNet(spec, size.kind, "lstm", size.hidden, 1, size.hidden, regs).to(device)
    net.train().set_step_mode(mode)

    def step(x):
        net.zero_grad(set_to_none=True)
        out = net(x)
        loss = out.prediction.square().mean()
        (loss if out.penalty is None else loss + out.penalty).backward()

    return net, step


def _inputs(size: Size, device):
    import torch

    if size.vocab:
        return torch.randint(0, size.vocab, (size.batch, size.steps), device=device)
    return torch.randn(size.batch, size.steps, size.features, device=device)


def measure(size: Size, variant: str, mode: str, seconds: float, device) -> Row:
    x = _inputs(size, device)
    _, base_step = _baseline(size, device)
    net, net_step = _network(size, variant, mode, device)
    custom = any(r.custom_cell for r in net.regularizers)
    first = _timed(lambda: net_step(x), device)
    base_s, variant_s, n = paired(lambda: base_step(x), lambda: net_step(x), seconds, device)
    tokens = size.batch * size.steps
    return Row(
        size=size.name,
        variant=variant,
        path="custom cell" if custom else "fused kernel",
        mode=mode if custom else "–",
        variant_tps=tokens / variant_s,
        baseline_tps=tokens / base_s,
        ratio=base_s / variant_s,
        compile_s=max(first - variant_s, 0.0) if mode == "compile" else 0.0,
        iterations=n,
    )


def variants_to_measure(size: Size) -> list[tuple[str, str]]:
    """(variant, step mode) pairs defined for the LSTM and this size's inputs."""
    from regbench.models.variants import RECIPES, REGULARIZERS, defined_for

    pairs = []
    for name in ["none", *REGULARIZERS, *(r for r in RECIPES if r != "none")]:
        keys = RECIPES.get(name, (name,))
        if not defined_for(name, "lstm"):
            continue
        if any(REGULARIZERS[k].needs_tokens for k in keys) and not size.vocab:
            continue
        custom = any(REGULARIZERS[k]().train().custom_cell for k in keys)
        pairs += [(name, "eager"), (name, "compile")] if custom else [(name, "eager")]
    return pairs


def device_label(device) -> str:
    import torch

    from regbench.provenance import _cpu_model

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


def markdown(rows: list[Row], device, seconds: float, command: str) -> str:
    import torch

    kind = "cuda" if device.type == "cuda" else "cpu"
    target = TARGETS[kind]
    lines = [
        f"# Variant speed on {device_label(device)}",
        "",
        f"Forward+backward tokens/s against a plain `nn.LSTM` model by `{command}` on "
        f"{date.today().isoformat()} at commit {_commit()} (torch {torch.__version__}). "
        f"Each row runs in a fresh process in which baseline and variant iterations "
        f"alternate for about {seconds:g} s; ratio = median baseline time / median variant "
        f"time, higher is better. Targets here: fused-kernel variants ≥ {target['fused']}×; "
        f"custom-cell variants ≥ {target['custom']}× (compiled) with a cold compile of "
        f"≤ {MAX_COMPILE_S:g} s.",
        "",
        "| size | variant | path | steps | tokens/s | baseline tokens/s | ratio | target met "
        "| compile s | iterations |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        goal = target["fused"] if r.path == "fused kernel" else target["custom"]
        met = "yes" if r.ratio >= goal else "no"
        if r.mode == "compile" and r.compile_s > MAX_COMPILE_S:
            met = "no (compile)" if met == "yes" else "no (both)"
        if r.mode == "eager" and r.path == "custom cell":
            met = "(eager fallback)"
        compile_s = f"{r.compile_s:.1f}" if r.mode == "compile" else "–"
        lines.append(
            f"| {r.size} | {r.variant} | {r.path} | {r.mode} | {r.variant_tps:,.0f} | "
            f"{r.baseline_tps:,.0f} | {r.ratio:.3f} | {met} | {compile_s} | {r.iterations} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="regbench-perf", description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="ptb,smnist", help="comma-separated: ptb, smnist")
    ap.add_argument("--variants", default="", help="comma-separated subset (default: all)")
    ap.add_argument("--seconds", type=float, default=5.0, help="paired timing per row")
    ap.add_argument("--device", default="cuda" if _cuda() else "cpu")
    ap.add_argument("--out", default="results/perf")
    ap.add_argument("--row", default="", help=argparse.SUPPRESS)  # size:variant:mode, one row
    args = ap.parse_args(argv)
    import torch

    device = torch.device(args.device)
    if args.row:
        key, variant, mode = args.row.split(":")
        row = measure(SIZES[key], variant, mode, args.seconds, device)
        print(ROW_PREFIX + json.dumps(asdict(row)))
        return 0
    wanted = set(filter(None, args.variants.split(",")))
    rows = []
    for key in args.sizes.split(","):
        for variant, mode in variants_to_measure(SIZES[key]):
            if wanted and variant not in wanted:
                continue
            row = _measure_in_fresh_process(key, variant, mode, args)
            print(
                f"{row.size:17} {row.variant:18} {row.mode:7} {row.ratio:5.2f}× "
                f"({row.variant_tps:,.0f} vs {row.baseline_tps:,.0f} tokens/s)"
                + (f", compile {row.compile_s:.1f} s" if row.mode == "compile" else ""),
                flush=True,
            )
            rows.append(row)
    out = Path(args.out) / f"{device_slug(device)}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    command = " ".join(["python -m regbench.perf", *(sys.argv[1:] if argv is None else argv)])
    out.write_text(markdown(rows, device, args.seconds, command))
    print(f"wrote {out}")
    return 0


ROW_PREFIX = "regbench-perf-row "


def _commit() -> str:
    from regbench.provenance import code_version

    version = code_version()
    commit = (version["commit"] or "unknown")[:12]
    return f"`{commit}`" + (" with uncommitted changes" if version["dirty"] else "")


def _measure_in_fresh_process(key: str, variant: str, mode: str, args: argparse.Namespace) -> Row:
    """One row, measured by a child process that prints it as JSON; it compiles from an empty
    Inductor cache of its own (cold compile seconds)."""
    command = [sys.executable, "-m", "regbench.perf", "--row", f"{key}:{variant}:{mode}"]
    command += ["--seconds", str(args.seconds), "--device", args.device]
    with tempfile.TemporaryDirectory(prefix="regbench-perf-") as cache:
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
        done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    lines = [x for x in done.stdout.splitlines() if x.startswith(ROW_PREFIX)]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"perf row {key}:{variant}:{mode} failed:\n{done.stderr[-2000:]}")
    return Row(**json.loads(lines[-1][len(ROW_PREFIX) :]))


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    raise SystemExit(main())
