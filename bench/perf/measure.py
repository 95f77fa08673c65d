"""`make perf`: forward+backward tokens/s of every variant against plain nn.LSTM, side by side.

For each size (PTB-small: batch 20, hidden 200, T 35, 10k-word embedding; sequential MNIST:
batch 64, hidden 128, T 784, one pixel per step) the baseline is a plain PyTorch model — an
`nn.LSTM` (cuDNN / oneDNN) with the same embedding and a 10-way head — and each variant is
regbench's network with that variant at its paper-default rates. Baseline and variant
iterations alternate, so machine drift hits both; the ratio is median(baseline time) /
median(variant time). A regularized fused-kernel variant's textbook model (the regularizer
written the common way, bench/perf/textbook.py) is then paired with the baseline the same way,
so the table shows what the regularizer costs written that way next to regbench's cost; `none`
runs on the custom cell too, with no regularizer, which is what leaving the fused kernel costs
by itself (the reference of the custom-cell rows). Variants on the custom cell are measured
eager and compiled, and on CUDA also as compiled CUDA graphs (step mode 'graph', the one 'auto'
picks there); the compile seconds are the first call's time minus a steady iteration, from a
cold cache (for 'graph' the recording too). Every row runs in a fresh process: in one long
process the baseline's own speed drifted by up to 2× after some variants had run (allocator and
cache state), which no pairing cancels. Fresh processes differ too (on the 2-vCPU guest a ratio
moved by about ±0.05 from one process to the next), so every row is measured in `--rounds`
rounds (default 3: all rows once, then again), and the table gives the median ratio and its
range. A round measures fused rows first, then 'graph', 'eager' and 'compile'; the table is
rewritten after every measurement, so a run cut short keeps what it measured; a row whose
rounds all fail or run past ROW_TIMEOUT_S is listed with its error (bench/perf/table.py writes
the table).
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
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from regbench.models.network import RecurrentNet
from regbench.models.variants import RECIPES, REGULARIZERS, defined_for
from regbench.models.variants.base import Regularizer
from regbench.perf.table import COMPILED_MODES, Row, combine, device_slug, markdown, summary
from regbench.perf.textbook import has_textbook, plain_model, textbook_step
from regbench.tasks.base import InputSpec

ROW_TIMEOUT_S = 300.0
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


def _timed(fn: Callable[[], None], device) -> float:
    import torch

    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def paired(
    base: Callable[[], None],
    other: Callable[[], None],
    seconds: float,
    device,
    min_iterations: int = 5,
) -> tuple[float, float, int]:
    """Median seconds per iteration of each, alternating iterations."""
    for _ in range(2):
        _timed(base, device), _timed(other, device)
    base_t, other_t = [], []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(base_t) < min_iterations:
        base_t.append(_timed(base, device))
        other_t.append(_timed(other, device))
    return statistics.median(base_t), statistics.median(other_t), len(base_t)


def _baseline(size: Size, device):
    model = plain_model(size, device)
    embed, rnn, head = model

    def step(x):
        model.zero_grad(set_to_none=True)
        out, _ = rnn(embed(x.transpose(0, 1)))
        logits = head(out if size.kind == "classify_each" else out[-1])
        logits.square().mean().backward()

    return model, step


def _network(size: Size, variant: str, mode: str, device):
    import torch

    torch.manual_seed(0)
    spec = InputSpec(num_outputs=10, features=size.features, vocab_size=size.vocab)
    regs = [REGULARIZERS[k]() for k in RECIPES.get(variant, (variant,))]
    if not regs and mode != "–":
        regs = [CustomCellOnly()]
    net = RecurrentNet(spec, size.kind, "lstm", size.hidden, 1, size.hidden, regs).to(device)
    net.train().set_step_mode("eager" if mode == "–" else mode)

    def step(x):
        net.zero_grad(set_to_none=True)
        out = net(x)
        loss = out.prediction.square().mean()
        (loss if out.penalty is None else loss + out.penalty).backward()

    return net, step


class CustomCellOnly(Regularizer):
    """No regularization, on the custom cell: what leaving the fused kernel costs by itself,
    the reference for the custom-cell variants' own cost (`make perf` only)."""

    key = "none"

    @property
    def custom_cell(self) -> bool:
        return True


def _inputs(size: Size, device):
    import torch

    if size.vocab:
        return torch.randint(0, size.vocab, (size.batch, size.steps), device=device)
    return torch.randn(size.batch, size.steps, size.features, device=device)


def measure(size: Size, variant: str, mode: str, seconds: float, device) -> Row:
    """One row: the variant's network against the plain baseline, taking turns in this
    process; then, for a regularized fused-kernel variant, its textbook model
    (bench/perf/textbook.py) against the baseline the same way. Two pairings, not one
    three-way turn: an iteration runs slower after a heavier one (its data pushed out of
    cache). In a pairing each side runs after the other, alike for variant and textbook
    model; in a three-way turn the variant ran after the light baseline and the baseline after
    the heavy textbook model, which made the variant look up to 0.2 faster."""
    x = _inputs(size, device)
    _, base_step = _baseline(size, device)
    _, net_step = _network(size, variant, mode, device)
    custom = mode != "–"
    first = _timed(lambda: net_step(x), device)
    base_s, variant_s, n = paired(lambda: base_step(x), lambda: net_step(x), seconds, device)
    textbook_ratio = 0.0
    if has_textbook(variant):
        _, textbook = textbook_step(size, variant, device)
        base_t, textbook_t, _ = paired(lambda: base_step(x), lambda: textbook(x), seconds, device)
        textbook_ratio = base_t / textbook_t
    tokens = size.batch * size.steps
    return Row(
        size=size.name,
        variant=variant,
        path="custom cell" if custom else "fused kernel",
        mode=mode,
        variant_tps=tokens / variant_s,
        baseline_tps=tokens / base_s,
        ratio=base_s / variant_s,
        compile_s=max(first - variant_s, 0.0) if mode in COMPILED_MODES else 0.0,
        iterations=n,
        textbook_ratio=textbook_ratio,
    )


def variants_to_measure(size: Size, cuda: bool = False) -> list[tuple[str, str]]:
    """(variant, step mode) pairs defined for the LSTM and this size's inputs; step mode '–'
    for fused-kernel variants, and 'graph' for custom cells on CUDA only. 'none' is measured
    on both paths: on the custom cell it is the reference of the custom-cell rows."""
    custom_modes = ["eager", "compile", *(["graph"] if cuda else [])]
    pairs = [("none", "–"), *(("none", mode) for mode in custom_modes)]
    for name in [*REGULARIZERS, *(r for r in RECIPES if r != "none")]:
        keys = RECIPES.get(name, (name,))
        if not defined_for(name, "lstm"):
            continue
        if any(REGULARIZERS[k].needs_tokens for k in keys) and not size.vocab:
            continue
        if not any(REGULARIZERS[k]().train().custom_cell for k in keys):
            pairs.append((name, "–"))
            continue
        pairs += [(name, mode) for mode in custom_modes]
    return pairs


def _table_order() -> Callable[[Row], tuple[int, int, int]]:
    """A sort key putting rows in size, variant and step-mode order."""
    sizes = [s.name for s in SIZES.values()]
    variants = list(dict.fromkeys(v for s in SIZES.values() for v, _ in variants_to_measure(s)))
    modes = ["–", "eager", "compile", "graph"]
    return lambda r: (sizes.index(r.size), variants.index(r.variant), modes.index(r.mode))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="regbench-perf", description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="ptb,smnist", help="comma-separated: ptb, smnist")
    ap.add_argument("--variants", default="", help="comma-separated subset (default: all)")
    ap.add_argument("--seconds", type=float, default=4.0, help="paired timing per row and round")
    ap.add_argument("--rounds", type=int, default=3, help="fresh-process rounds per row")
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
    if args.rounds < 1:
        raise SystemExit(f"regbench-perf: --rounds must be at least 1, got {args.rounds}")
    out = Path(args.out) / f"{device_slug(device)}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    command = " ".join(["python -m regbench.perf", *(sys.argv[1:] if argv is None else argv)])
    with tempfile.TemporaryDirectory(prefix="regbench-perf-") as caches:
        for rows in _rounds(_planned(args, device.type == "cuda"), args, Path(caches)):
            text = markdown(rows, device, args.seconds, args.rounds, command, _table_order())
            out.write_text(text)
    print(f"wrote {out}")
    return 0


def _rounds(
    planned: list[tuple[str, str, str]], args: argparse.Namespace, caches: Path
) -> Iterator[list[Row]]:
    """Measure every planned row once per round, all rows before the next round, so drift
    of the machine spreads over the rows; after each measurement, yield the rows so far,
    each combined over its rounds. A row's first round compiles from a cold Inductor cache
    of its own, kept for its later rounds (warm: their compile seconds are not reported)."""
    measured: dict[tuple[str, str, str], list[Row]] = {}
    for _ in range(args.rounds):
        for plan in planned:
            cache = caches / "-".join(plan).replace("–", "fused")
            row = _measure_in_fresh_process(*plan, args, cache)
            print(summary(row), flush=True)
            measured.setdefault(plan, []).append(row)
            yield [combine(rounds) for rounds in measured.values()]


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


ROW_PREFIX = "regbench-perf-row "


def _measure_in_fresh_process(
    key: str, variant: str, mode: str, args: argparse.Namespace, cache: Path
) -> Row:
    """One row, measured by a child process that prints it as JSON, compiling with the
    Inductor cache `cache` (empty at first: cold compile seconds). A child that fails or runs
    past ROW_TIMEOUT_S gives a row with the error's last line."""
    command = [sys.executable, "-m", "regbench.perf", "--row", f"{key}:{variant}:{mode}"]
    command += ["--seconds", str(args.seconds), "--device", args.device]
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(cache)}
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
