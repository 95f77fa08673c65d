"""The first stage: a grid file, its resolved configs and its jobs."""
