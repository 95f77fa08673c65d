"""One run: train(job) from a resolved config to a run directory (train.py, rundir.py), its
result.json and outcome (result.py), the job as every launcher runs it (job.py), its record."""
