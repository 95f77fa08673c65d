"""Launching a grid's jobs: locally on workers or on SLURM (the registry in launchers.py), with
a live view and status."""
