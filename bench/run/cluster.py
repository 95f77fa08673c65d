"""The cluster a run trains on, as Lightning's Trainer sees it (trainer.py).

Inside a SLURM job the Trainer gets Lightning's SLURM environment with Lightning's own
requeue off: the SLURM launcher (launch/slurm.py) submits through submitit, which requeues a
preempted or timed-out task itself, and the run resumes from its run directory. Outside
SLURM a run needs no cluster plugin.
"""

from __future__ import annotations

import warnings
from typing import Any

from lightning.pytorch.plugins.environments import SLURMEnvironment


def slurm_plugins() -> list[Any]:
    """Trainer plugins for a run: inside a SLURM job, Lightning's SLURM environment with its
    own requeue off (submitit requeues); outside SLURM, none."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "srun is available but not used" on submit hosts
        if not SLURMEnvironment.detect():
            return []
        return [SLURMEnvironment(auto_requeue=False)]
