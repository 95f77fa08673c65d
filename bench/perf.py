"""`make perf`: forward+backward tokens/s of every variant against plain nn.LSTM, side by side.

For each size (PTB-small: batch 20, hidden 200, T 35, 10k-word embedding; sequential MNIST:
batch 64, hidden 128, T 784, one pixel per step) the baseline is a plain PyTorch model — an
`nn.LSTM` (cuDNN / oneDNN) with the same embedding and a 10-way head — and each variant is
regbench's network with that variant at its paper-default rates. Baseline and variant
iterations alternate, so machine drift hits both; the ratio is median(baseline time) /
median(variant time). Variants on the custom cell are measured eager and compiled, and on
CUDA also as compiled CUDA graphs (step mode 'graph', the one 'auto' picks there); the compile
seconds are the first call's time minus a steady iteration, from a cold cache (for 'graph'
the recording too). Every row runs in a fresh process: in one long process the baseline's own
speed drifted by up to 2× after some variants had run (allocator and cache state), which no
pairing cancels. Rows are measured fused first, then 'graph', 'eager' and 'compile', and the
table is rewritten after every row, so a run cut short keeps what it measured; a row that
fails or runs past ROW_TIMEOUT_S is listed with its error.
This is a benchmark, not a test: it writes results/perf/<device>.md and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
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
ROW_TIMEOUT_S = 300.0
# The step mode a custom-cell target is judged in (what step mode 'auto' picks for long runs).
TARGET_MODE = {"cpu": "compile", "cuda": "graph"}
MODE_ORDER = {"–": 0, "graph": 1, "eager": 2, "compile": 3}  # what to measure first


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
    error: str = ""


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
    net.train().set_step_mode("eager" if mode == "–" else mode)

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
        compile_s=max(first - variant_s, 0.0) if mode in ("compile", "graph") else 0.0,
        iterations=n,
    )


def variants_to_measure(size: Size, cuda: bool = False) -> list[tuple[str, str]]:
    """(variant, step mode) pairs defined for the LSTM and this size's inputs; step mode '–'
    for fused-kernel variants, and 'graph' for custom cells on CUDA only."""
    from regbench.models.variants import RECIPES, REGULARIZERS, defined_for

    pairs = []
    for name in ["none", *REGULARIZERS, *(r for r in RECIPES if r != "none")]:
        keys = RECIPES.get(name, (name,))
        if not defined_for(name, "lstm"):
            continue
        if any(REGULARIZERS[k].needs_tokens for k in keys) and not size.vocab:
            continue
        if not any(REGULARIZERS[k]().train().custom_cell for k in keys):
            pairs.append((name, "–"))
            continue
        pairs += [(name, "eager"), (name, "compile"), *([(name, "graph")] if cuda else [])]
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
        f"{date.today().isoformat()} at commit {_commit()} (torch {torch.__version__}"
        f"{_precision(device)}). Each row runs in a fresh process in which baseline and "
        f"variant iterations alternate for about {seconds:g} s; ratio = median baseline time / "
        f"median variant time, higher is better. Targets here: fused-kernel variants "
        f"≥ {target['fused']}×; custom-cell variants ≥ {target['custom']}× in step mode "
        f"'{TARGET_MODE[kind]}' with a cold compile of ≤ {MAX_COMPILE_S:g} s.",
        "",
        "| size | variant | path | steps | tokens/s | baseline tokens/s | ratio | target met "
        "| compile s | iterations |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=_table_order()):
        if r.error:
            lines.append(f"| {r.size} | {r.variant} | {r.path} | {r.mode} | failed: {r.error} |")
            continue
        compiled = r.mode in ("compile", "graph")
        compile_s = f"{r.compile_s:.1f}" if compiled else "–"
        lines.append(
            f"| {r.size} | {r.variant} | {r.path} | {r.mode} | {r.variant_tps:,.0f} | "
            f"{r.baseline_tps:,.0f} | {r.ratio:.3f} | {_met(r, kind)} | {compile_s} | "
            f"{r.iterations} |"
        )
    return "\n".join(lines) + "\n"


def _met(r: Row, kind: str) -> str:
    """Whether a row meets its target; custom-cell rows in other modes are labelled."""
    if r.path == "fused kernel":
        return "yes" if r.ratio >= TARGETS[kind]["fused"] else "no"
    if r.mode != TARGET_MODE[kind]:
        return "(eager fallback)" if r.mode == "eager" else "(no graphs)"
    met = r.ratio >= TARGETS[kind]["custom"]
    if r.compile_s > MAX_COMPILE_S:
        return "no (compile)" if met else "no (both)"
    return "yes" if met else "no"


def _table_order() -> Callable[[Row], tuple[int, int, int]]:
    """A sort key putting rows in size, variant and step-mode order."""
    sizes = [s.name for s in SIZES.values()]
    variants = list(dict.fromkeys(v for s in SIZES.values() for v, _ in variants_to_measure(s)))
    modes = ["–", "eager", "compile", "graph"]
    return lambda r: (sizes.index(r.size), variants.index(r.variant), modes.index(r.mode))


def _precision(device) -> str:
    """On CUDA, whether cuDNN and cuBLAS may use TF32 for float32 (PyTorch's defaults: cuDNN
    yes, so the nn.LSTM baseline and fused variants; matmuls no, so the custom cells)."""
    import torch

    if device.type != "cuda":
        return ""
    cudnn, matmul = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    return f"; TF32 in cuDNN {'on' if cudnn else 'off'}, in matmuls {'on' if matmul else 'off'}"


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
    out = Path(args.out) / f"{device_slug(device)}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    command = " ".join(["python -m regbench.perf", *(sys.argv[1:] if argv is None else argv)])
    rows = []
    for key, variant, mode in _planned(args, device.type == "cuda"):
        row = _measure_in_fresh_process(key, variant, mode, args)
        print(_summary(row), flush=True)
        rows.append(row)
        out.write_text(markdown(rows, device, args.seconds, command))
    print(f"wrote {out}")
    return 0


def _planned(args: argparse.Namespace, cuda: bool) -> list[tuple[str, str, str]]:
    """(size key, variant, step mode) in measuring order: fused rows first, then 'graph',
    'eager' and 'compile' rows."""
    wanted = set(filter(None, args.variants.split(",")))
    planned = [
        (key, variant, mode)
        for key in args.sizes.split(",")
        for variant, mode in variants_to_measure(SIZES[key], cuda)
        if not wanted or variant in wanted
    ]
    return sorted(planned, key=lambda p: MODE_ORDER[p[2]])  # stable: sizes keep their order


def _summary(row: Row) -> str:
    if row.error:
        return f"{row.size:17} {row.variant:18} {row.mode:7} failed: {row.error}"
    compiled = f", compile {row.compile_s:.1f} s" if row.mode in ("compile", "graph") else ""
    return (
        f"{row.size:17} {row.variant:18} {row.mode:7} {row.ratio:5.2f}× "
        f"({row.variant_tps:,.0f} vs {row.baseline_tps:,.0f} tokens/s){compiled}"
    )


ROW_PREFIX = "regbench-perf-row "


def _commit() -> str:
    from regbench.provenance import code_version

    version = code_version()
    if version["commit"] is None and os.environ.get("REGBENCH_COMMIT"):  # a copy without git
        return f"`{os.environ['REGBENCH_COMMIT'][:12]}` (as given by REGBENCH_COMMIT)"
    commit = (version["commit"] or "unknown")[:12]
    return f"`{commit}`" + (" with uncommitted changes" if version["dirty"] else "")


def _measure_in_fresh_process(key: str, variant: str, mode: str, args: argparse.Namespace) -> Row:
    """One row, measured by a child process that prints it as JSON; it compiles from an empty
    Inductor cache of its own (cold compile seconds). A child that fails or runs past
    ROW_TIMEOUT_S gives a row with the error's last line."""
    command = [sys.executable, "-m", "regbench.perf", "--row", f"{key}:{variant}:{mode}"]
    command += ["--seconds", str(args.seconds), "--device", args.device]
    with tempfile.TemporaryDirectory(prefix="regbench-perf-") as cache:
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
        child = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,  # its compile workers too can be stopped as one group
        )
        try:
            stdout, stderr = child.communicate(timeout=ROW_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
            return _failed(key, variant, mode, f"ran past {ROW_TIMEOUT_S:g} s")
    lines = [x for x in stdout.splitlines() if x.startswith(ROW_PREFIX)]
    if child.returncode != 0 or not lines:
        sys.stderr.write(f"perf row {key}:{variant}:{mode} failed:\n{stderr[-3000:]}\n")
        last = (stderr.strip().splitlines() or ["no output"])[-1]
        return _failed(key, variant, mode, last.replace("|", "/")[:200])
    return Row(**json.loads(lines[-1][len(ROW_PREFIX) :]))


def _failed(key: str, variant: str, mode: str, error: str) -> Row:
    path = "fused kernel" if mode == "–" else "custom cell"
    return Row(SIZES[key].name, variant, path, mode, 0.0, 0.0, 0.0, 0.0, 0, error)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    raise SystemExit(main())
