"""regbench: a benchmark of RNN regularizers.

The data path: grid file (grid.py) → jobs (jobs.py) → train(job) (train.py) → run directory
(rundir.py) → collect (collect.py) → table (table.py). Tasks live in regbench.tasks, models and
regularizers in regbench.models.
"""

__version__ = "0.1.0"
