"""The grids of published comparisons: each validates, its models have the published sizes,
and every job takes a training step on the CPU (a tiny synthetic batch; no data, no GPU)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator

import pytest
import torch

from regbench.models.module import SequenceModel, build_network
from regbench.models.optim import build_optimizer, scaled_lr
from regbench.plan.grid import expand, load_grid
from regbench.plan.jobs import Job
from regbench.tasks import get_task
from regbench.tasks.base import InputSpec

GRIDS = ("wen2018_word", "wen2018_char", "krueger2017_pmnist", "cooijmans2017", "zaremba_medium")
VOCABULARY = {"ptb_word": 10_000, "ptb_char": 50}  # the tasks' published vocabularies
# (grid, task): the published parameter count and the digits it is published to
PUBLISHED = {
    ("wen2018_word", "ptb_word"): (19.8e6, 3),  # Wen et al. 2018, App. D.1: 19.8M
    ("wen2018_char", "ptb_char"): (4.26e6, 3),  # Wen et al. 2018, App. D.1: 4.26M
    ("zaremba_medium", "ptb_word"): (20e6, 1),  # Zaremba et al. 2014, Sec. 4.1: "20M"
}


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """One CPU thread: the orthogonal initialization of a 1000-unit layer is a QR
    decomposition that two contended threads make twenty times slower."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


def spec(task: str) -> InputSpec:
    """The task's input spec without its data: token tasks by their published vocabulary."""
    if task in VOCABULARY:
        return InputSpec(num_outputs=VOCABULARY[task], vocab_size=VOCABULARY[task])
    cls = get_task(task)
    return cls(cls.protocol.params, 0, 0, 1, 1).input_spec()


def one_per_row(jobs: list[Job]) -> list[Job]:
    """One job per task × cell × variant × point: the rest differ in their seeds only."""
    return list({job.row_key: job for job in reversed(jobs)}.values())


@pytest.mark.parametrize("name", GRIDS)
def test_every_new_grid_validates_and_names_its_rows_references(name):
    grid = load_grid(name)
    jobs = expand(grid)
    rows = {job.row_key for job in jobs}
    assert len(jobs) == len(rows) * len(grid.seeds)
    assert grid.references and {ref.key for ref in grid.references} <= rows
    assert all(job.config["execution"]["device"] == "cuda" for job in jobs)
    assert "Deviation" in grid.description or "differences" in grid.description


@pytest.mark.parametrize(("name", "task"), list(PUBLISHED))
def test_model_sizes_match_the_published_counts(name, task):
    published, digits = PUBLISHED[(name, task)]
    jobs = [job for job in expand(load_grid(name)) if job.config["task"]["name"] == task]
    assert jobs
    for job in one_per_row(jobs):
        kind = get_task(task).protocol.kind
        count = sum(p.numel() for p in build_network(job.config, spec(task), kind).parameters())
        shown = round(count, digits - 1 - math.floor(math.log10(count)))
        assert shown == published, f"{job.label}: {count:,} parameters"


def batch_for(task: str, steps: int = 4, size: int = 2) -> dict:
    """A tiny synthetic batch in the task's format."""
    g = torch.Generator().manual_seed(0)
    if task in VOCABULARY:
        tokens = torch.randint(0, VOCABULARY[task], (size, steps + 1), generator=g)
        return {"x": tokens[:, :-1], "y": tokens[:, 1:], "stateful": True}
    x = torch.randn(size, steps, spec(task).features, generator=g)
    return {"x": x, "y": torch.randint(0, spec(task).num_outputs, (size,), generator=g)}


def one_step(job: Job) -> tuple[float, bool]:
    """One forward, backward, clipping and optimizer step of the job's model (its loss, and
    whether every parameter with a gradient moved)."""
    config = job.config
    task = config["task"]["name"]
    torch.manual_seed(config["seeds"]["init"])
    model = SequenceModel(config, spec(task), get_task(task).protocol).train()
    optimizer = build_optimizer(model.parameters(), config["train"])
    before = [p.detach().clone() for p in model.parameters()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log without a trainer
        loss = model.training_step(batch_for(task), 0)
    loss.backward()
    if config["train"]["clip"] > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), config["train"]["clip"])
    with scaled_lr(optimizer, model.lr_scale):
        optimizer.step()
    moved = all(
        not torch.equal(p, b)
        for p, b in zip(model.parameters(), before, strict=True)
        if p.grad is not None and p.grad.abs().sum() > 0
    )
    return float(loss.detach()), moved


@pytest.mark.slow
@pytest.mark.parametrize("name", GRIDS)
def test_one_training_step_of_every_job_runs_on_the_cpu(name):
    for job in expand(load_grid(name)):
        loss, moved = one_step(job)
        assert math.isfinite(loss) and loss > 0 and moved, job.label
