"""train(job): one run, from a resolved config to a run directory and its record."""
