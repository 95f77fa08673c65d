"""How a run executes: devices, threads, step mode, data and logging. None of it is part of
the job's identity (two runs of one config on different machines are the same job)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from regbench.tasks import Task

# Training step-iterations (time steps × batches × epochs) from which compiling the custom
# cells pays off on a CPU: measured here, a chunk compiles in 6–30 s and saves 0.08–0.12 ms
# per step-iteration (results/perf/cpu.md), so 10⁶ step-iterations repay it several times.
COMPILE_WORK = 1_000_000


@dataclass(frozen=True)
class Runtime:
    accelerator: str = "auto"
    devices: int = 1  # more than 1: one run over several devices (Lightning DDP)
    threads: int = 0  # CPU threads for torch; 0 keeps torch's default
    progress: bool = False
    step_mode: str = "auto"  # custom cells: auto, eager, compile or graph (models/steps.py)
    data_dir: str | None = None  # local data in the original formats (else $REGBENCH_DATA/hub)
    wandb: str = "offline"  # offline, online or disabled (WANDB_MODE overrides)
    project: str = "regbench"  # the W&B project
    group: str | None = None  # the grid's name: the W&B group
    command: tuple[str, ...] = field(default_factory=tuple)

    def uses_cuda(self) -> bool:
        import torch

        if self.accelerator in ("gpu", "cuda"):
            return True
        return self.accelerator == "auto" and torch.cuda.is_available()


def choose_step_mode(requested: str, config: Mapping[str, Any], task: Task, cuda: bool) -> str:
    """'eager', 'compile' or 'graph' for this run: as requested, or for 'auto' compiled CUDA
    graphs on CUDA, and on the CPU compile for runs long enough to repay the compile."""
    if requested != "auto":
        return requested
    if cuda:
        return "graph"
    work = task.step_iterations_per_epoch() * config["train"]["max_epochs"]
    return "compile" if work >= COMPILE_WORK else "eager"
