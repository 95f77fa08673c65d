"""Grid files: loading, checking and expansion into jobs."""

from __future__ import annotations

from pathlib import Path

import pytest

from regbench.errors import ConfigError
from regbench.plan.grid import expand, load_grid


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "g.yaml"
    path.write_text(text)
    return path


def test_builtin_quick_grid_expands_to_36_runs():
    grid = load_grid("quick")
    jobs = expand(grid)
    assert len(jobs) == 3 * 4 * 3 == len({j.id for j in jobs})
    assert {j.config["model"]["cell"] for j in jobs} == {"lstm"}
    adding = next(j for j in jobs if j.config["task"]["name"] == "adding")
    assert adding.config["task"]["params"]["T"] == 50


def test_precedence_and_sweep_axis(tmp_path):
    path = write(
        tmp_path,
        """
tasks: {adding: {train.lr: 0.2}, copy_memory: {}}
variants: [none]
seeds: [0]
overrides: {train.lr: 0.1, train.max_epochs: 3}
sweep: [{train.batch_size: 8}, {train: {batch_size: 16}}]
""",
    )
    jobs = expand(load_grid(path))
    assert [j.point for j in jobs] == ["batch_size=8", "batch_size=16"] * 2
    lrs = [j.config["train"]["lr"] for j in jobs]
    assert lrs == [0.2, 0.2, 0.1, 0.1]
    assert all(j.config["train"]["max_epochs"] == 3 for j in jobs)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("tasks: [adding]\nvariants: [none]\nseeds: [0]\nseed: [1]\n", "unknown grid key 'seed'"),
        ("tasks: [adding]\nvariants: [none]\n", "missing key 'seeds'"),
        ("tasks: [adding]\nvariants: [none]\nseeds: [-1]\n", "non-negative"),
        ("tasks: [adding]\nvariants: none\nseeds: [0]\n", "variants must be a non-empty list"),
        ("tasks: [adding]\nvariants: [none]\nseeds: [0, 0]\n", "lists a value twice"),
        ("tasks: [adding\nvariants: [none]\n", "invalid YAML"),
        ("tasks: [addin]\nvariants: [none]\nseeds: [0]\n", "Did you mean 'adding'"),
        ("tasks: [adding]\nvariants: [drop]\nseeds: [0]\n", "unknown variant 'drop'"),
        ("tasks: {adding: {train.lrate: 1}}\nvariants: [none]\nseeds: [0]\n", "train.lrate"),
        ("tasks: [adding]\nvariants: [none]\nseeds: [0]\nsweep: [{}, {}]\n", "same config"),
        ("- just a list\n", "must be a YAML mapping"),
    ],
)
def test_malformed_grids_are_one_line_errors_naming_the_file(tmp_path, text, fragment):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        expand(load_grid(path))
    message = str(err.value)
    assert fragment in message and str(path) in message and "\n" not in message


def test_unknown_grid_name_lists_builtin_grids():
    with pytest.raises(ConfigError, match=r"unknown grid 'quik'\. Did you mean 'quick'"):
        load_grid("quik")


def test_yaml_error_names_the_line(tmp_path):
    path = write(tmp_path, "tasks: [adding]\nvariants: [none\nseeds: [0]\n")
    with pytest.raises(ConfigError, match=r"g\.yaml:\d+: invalid YAML"):
        load_grid(path)
