"""Launching a grid's jobs: locally on workers or on SLURM, with a live view and status."""
