"""A regbench job trained by a plain PyTorch loop: the reference `regbench.perf.end_to_end`
measures `regbench run` against.

The loop does a run's numeric work and nothing else: the network a resolved config describes
(regbench.models.build_network, seeded as train.py seeds it), the task's datamodule loaders,
the config's optimizer, schedule and gradient clipping, the CPU threads, step mode and
deterministic algorithms of the run; per epoch a training pass and a validation pass, then one
test pass with the weights of the best validation epoch (kept in memory). No Lightning loop,
no checkpoint files, no metrics file, no logger, no callbacks. It repeats what Lightning does
around the network in the same order (zero_grad, forward, loss, backward, clip by norm, step;
the schedule after validation; epoch means weighted by batch size, in float32 as Lightning's
logged results), so on the CPU with the same seeds its metrics equal the run's.

`python -m regbench.perf.plain_loop --config job.json [--data-dir D]` prints one line,
PLAIN_PREFIX + JSON: per-epoch metrics and times, the test metrics and the loop's seconds.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from regbench.errors import ConfigError
from regbench.models import build_network
from regbench.models.optim import build_optimizer, build_schedule
from regbench.run.runtime import choose_step_mode, cpu_threads, execution
from regbench.run.train import build_task
from regbench.tasks import get_task

PLAIN_PREFIX = "regbench-plain-loop "
UNSUPPORTED_OPTIMIZERS = ("nt_asgd",)  # SequenceModel's weight averaging is not repeated here
Batch = dict[str, Tensor]


class Job:
    """The pieces of one job that the loop needs, built as train.py builds them."""

    def __init__(self, config: Mapping[str, Any], data_dir: str | None) -> None:
        settings = execution(config)
        if settings["devices"] > 1:
            raise ConfigError("plain loop: execution.devices must be 1 (one process).")
        if config["train"]["optimizer"] in UNSUPPORTED_OPTIMIZERS:
            raise ConfigError(
                f"plain loop: train.optimizer {config['train']['optimizer']} (weight averaging) "
                "is not reproduced here; measure a job with another optimizer."
            )
        self.config = config
        self.device = torch.device("cuda" if settings["device"] == "cuda" else "cpu")
        self.protocol = get_task(config["task"]["name"]).protocol
        self.task = build_task(config, data_dir)
        self.task.setup("fit")
        self._limit_evaluation()
        torch.manual_seed(config["seeds"]["init"])
        spec = self.task.input_spec()
        self.net = build_network(config, spec, self.protocol.kind)
        self.step_mode = choose_step_mode(config, self.task)
        self.net.set_step_mode(self.step_mode)
        self.metric = self.protocol.metric_def
        self.val_metric = self.metric.make(spec.num_outputs).to(self.device)
        self.test_metric = self.metric.make(spec.num_outputs).to(self.device)
        torch.manual_seed(config["seeds"]["mask"])
        self.net.to(self.device)
        self.carried: dict[str, Any] = {}

    def _limit_evaluation(self) -> None:
        """The datamodule reads `train.limit_eval_batches` from its trainer (a seeded subset);
        give it the two limits Lightning's Trainer would hold."""
        n = self.config["train"]["limit_eval_batches"]
        limit = n if n else 1.0
        self.task.trainer = SimpleNamespace(limit_val_batches=limit, limit_test_batches=limit)

    def forward(self, batch: Batch, split: str) -> Any:
        """SequenceModel.forward: a stateful batch starts from the split's carried state."""
        stateful = bool(batch.get("stateful"))
        carried = self.carried.get(split) if stateful else None
        out = self.net(batch["x"], batch.get("lengths"), carried)
        if stateful:
            self.carried[split] = [tuple(s.detach() for s in state) for state in out.state]
        return out

    def losses(self, prediction: Tensor, target: Tensor) -> Tensor:
        """Per-example (or per-position) losses, unreduced (SequenceModel._losses)."""
        if self.protocol.kind == "regress_last":
            return F.mse_loss(prediction, target, reduction="none")
        return F.cross_entropy(prediction.flatten(0, -2), target.flatten(), reduction="none")

    def to_device(self, batch: Batch) -> Batch:
        if self.device.type == "cpu":
            return batch
        return {k: v.to(self.device) if isinstance(v, Tensor) else v for k, v in batch.items()}


class Mean:
    """An epoch mean weighted by batch size, accumulated as Lightning's logged results are."""

    def __init__(self) -> None:
        self.value = torch.tensor(0.0)
        self.count = torch.tensor(0)

    def add(self, value: Tensor, size: int) -> None:
        self.value = self.value + value.detach().float().cpu() * size
        self.count = self.count + size

    def mean(self) -> float:
        return float(self.value / self.count)


def train_epoch(job: Job, optimizer: torch.optim.Optimizer, loader: Iterable, epoch: int) -> float:
    """One training pass; its mean loss (penalties included, as `train/loss`)."""
    job.net.train()
    job.carried.pop("train", None)
    sampler = getattr(loader, "sampler", None)
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)
    limit = job.config["train"]["limit_batches"] or None
    clip = job.config["train"]["clip"]
    mean = Mean()
    for batch in itertools.islice(loader, limit):
        if "lr_scale" in batch:
            raise ConfigError("plain loop: variable-length BPTT (lr_scale) is not reproduced.")
        batch = job.to_device(batch)
        out = job.forward(batch, "train")
        loss = job.losses(out.prediction, batch["y"]).mean()
        if out.penalty is not None:
            loss = loss + out.penalty
        if job.config["train"]["loss"] == "sum_steps" and job.protocol.kind == "classify_each":
            loss = loss * batch["y"].shape[1]
        mean.add(loss, len(batch["y"]))
        optimizer.zero_grad()
        loss.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(job.net.parameters(), clip)
        optimizer.step()
    return mean.mean()


def evaluate(job: Job, loader: Iterable, split: str) -> dict[str, float]:
    """One evaluation pass of `split`: its mean loss and the task's metric."""
    job.net.eval()
    job.carried.pop(split, None)
    metric = job.val_metric if split == "val" else job.test_metric
    mean = Mean()
    with torch.inference_mode():
        for batch in loader:
            batch = job.to_device(batch)
            out = job.forward(batch, split)
            losses = job.losses(out.prediction, batch["y"])
            if job.metric.from_nll:
                metric.update(losses)
            else:
                metric.update(out.prediction, batch["y"])
            mean.add(losses.mean(), len(batch["y"]))
    value = float(metric.compute())
    metric.reset()
    return {f"{split}/loss": mean.mean(), f"{split}/{job.metric.name}": value}


def _better(value: float, best: float | None, direction: str) -> bool:
    """ModelCheckpoint's rule: the first epoch, then strict improvements only."""
    if best is None:
        return True
    return value < best if direction == "min" else value > best


def fit_and_test(job: Job) -> dict[str, Any]:
    """Every epoch's training and validation pass, then a test pass on the best epoch's
    weights; the metrics and the seconds of each part."""
    cfg = job.config["train"]
    optimizer = build_optimizer(job.net.parameters(), cfg)
    schedule = build_schedule(optimizer, cfg)
    train_loader = job.task.train_dataloader()
    key = f"val/{job.metric.name}"
    rows: list[dict[str, Any]] = []
    best: float | None = None
    best_state: dict[str, Tensor] = {}
    for epoch in range(cfg["max_epochs"]):
        started = time.perf_counter()
        loss = train_epoch(job, optimizer, train_loader, epoch)
        row: dict[str, Any] = {"epoch": epoch, "train/loss": loss}
        row |= evaluate(job, job.task.val_dataloader(), "val")
        row["lr"] = optimizer.param_groups[0]["lr"]
        if _better(row[key], best, job.protocol.direction):
            best, best_state = row[key], copy.deepcopy(job.net.state_dict())
            row["best"] = True
        if schedule is not None:
            scheduler = schedule["scheduler"]
            monitor = schedule.get("monitor")
            scheduler.step(row[monitor]) if monitor else scheduler.step()
        row["epoch_time_s"] = time.perf_counter() - started
        rows.append(row)
    started = time.perf_counter()
    job.net.load_state_dict(best_state)
    test = evaluate(job, job.task.test_dataloader(), "test")
    return {"epochs": rows, "test": test, "test_time_s": time.perf_counter() - started}


def run_plain(config: Mapping[str, Any], data_dir: str | None = None) -> dict[str, Any]:
    """Train and test one job in this process; its metrics and seconds (`setup_s`: data and
    network, `fit_s`: the epochs, `loop_s`: all three with the test pass)."""
    with cpu_threads(config):
        deterministic = execution(config)["device"] == "cpu"
        torch.use_deterministic_algorithms(True, warn_only=not deterministic)
        started = time.perf_counter()
        job = Job(config, data_dir)
        setup_s = time.perf_counter() - started
        out = fit_and_test(job)
        loop_s = time.perf_counter() - started
    fit_s = sum(r["epoch_time_s"] for r in out["epochs"])
    return {**out, "step_mode": job.step_mode, "setup_s": setup_s, "fit_s": fit_s, "loop_s": loop_s}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="regbench-plain-loop", description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True, help="a resolved job config as JSON")
    ap.add_argument("--data-dir", default=None, help="local data (as regbench run --data-dir)")
    args = ap.parse_args(argv)
    config = json.loads(Path(args.config).read_text())
    print(PLAIN_PREFIX + json.dumps(run_plain(config, args.data_dir)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
