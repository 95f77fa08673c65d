"""Golden numbers: short, deterministic CPU runs of every task × several variants, whose
metrics are recorded in tests/golden.json. tests/test_golden.py reruns them and fails when a
code change moves a number beyond a tight tolerance; after an intended change, re-record:

    python -m regbench.golden --record [--data-dir ../shared/data]      (make golden)

Runs use one CPU thread (results do not depend on the core count) and W&B off. Cases of real
tasks run only where their data is (--data-dir / $REGBENCH_REAL_DATA); the others are kept.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from regbench.config import resolve
from regbench.jobs import Job
from regbench.runtime import Runtime

GOLDEN = Path(__file__).resolve().parent.parent / "tests" / "golden.json"
EMBEDDED_VARIANTS = (
    "none",
    "dropout",
    "variational",
    "locked_dropout",
    "weight_drop",
    "zoneout",
    "recurrent_dropout",
    "recurrent_bn",
    "bn_input",
    "layer_norm",
    "ar_tar",
)
SHORT = {"train.max_epochs": 1, "train.limit_batches": 12, "train.limit_eval_batches": 3}
SYNTHETIC = {  # adding and copy memory: tiny generated splits
    "task.params.n_train": 96,
    "task.params.n_val": 32,
    "task.params.n_test": 32,
    "model.hidden_size": 8,
    "train.max_epochs": 2,
}
MNIST = {**SHORT, "model.hidden_size": 8, "train.batch_size": 32, "train.eval_batch_size": 256}
TASKS: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "seq_digits": (
        {"model.hidden_size": 8, "train.max_epochs": 2, "train.batch_size": 64},
        EMBEDDED_VARIANTS,
    ),
    "adding": ({**SYNTHETIC, "task.params.T": 12}, EMBEDDED_VARIANTS),
    "copy_memory": ({**SYNTHETIC, "task.params.T": 5}, EMBEDDED_VARIANTS),
    "ptb_word": (
        {**SHORT, "model.hidden_size": 16, "model.embedding_size": 16},
        ("none", "dropout", "zoneout", "awd"),
    ),
    "ptb_char": ({**SHORT, "model.hidden_size": 16}, ("none", "recurrent_dropout")),
    "smnist": (MNIST, ("none", "zoneout")),
    "pmnist": (MNIST, ("none", "recurrent_bn")),
    "sst2": (
        {**SHORT, "model.hidden_size": 16, "model.embedding_size": 16},
        ("none", "embed_dropout", "dropout"),
    ),
}
EMBEDDED = ("seq_digits", "adding", "copy_memory")


def cases() -> Iterator[tuple[str, dict[str, Any]]]:
    """(case id, resolved config) of every golden case."""
    for task, (overrides, variants) in TASKS.items():
        for variant in variants:
            yield f"{task}/{variant}", resolve(task, variant, "lstm", 0, overrides)


def run_case(config: dict[str, Any], data_dir: str | None) -> dict[str, float]:
    """The val and test metrics (and test loss) of one short run."""
    from regbench.train import train

    runtime = Runtime(
        accelerator="cpu", threads=1, wandb="disabled", data_dir=data_dir, step_mode="eager"
    )
    with tempfile.TemporaryDirectory() as tmp:
        result = train(config, Path(tmp) / Job(config).id, runtime)
    metric = result["metric"]
    return {
        f"val/{metric}": result["val"][metric],
        f"test/{metric}": result["test"][metric],
        "test/loss": result["test"]["loss"],
    }


def record(path: Path, data_dir: str | None) -> dict[str, Any]:
    """Rerun every case that can run here and write the golden file (others are kept)."""
    golden = json.loads(path.read_text()) if path.exists() else {}
    for case, config in cases():
        if config["task"]["name"] not in EMBEDDED and data_dir is None:
            continue
        golden[case] = {"job": Job(config).id, "metrics": run_case(config, data_dir)}
        print(f"{case}: {golden[case]['metrics']}", flush=True)
    path.write_text(json.dumps(golden, indent=2, sort_keys=True) + "\n")
    return golden


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m regbench.golden", description=__doc__)
    ap.add_argument("--record", action="store_true", help="rerun the cases, rewrite the file")
    ap.add_argument("--data-dir", help="local data for the real tasks' cases")
    ap.add_argument("--path", default=str(GOLDEN))
    args = ap.parse_args(argv)
    if not args.record:
        ap.error("nothing to do: pass --record (tests/test_golden.py checks the numbers)")
    record(Path(args.path), args.data_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
