"""The installed layout: bench/ is `regbench`, tasks/ and models/ its subpackages."""

from __future__ import annotations

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python ≥ 3.11

ROOT = Path(__file__).resolve().parent.parent
MAPPING = {"bench": "regbench", "tasks": "regbench.tasks", "models": "regbench.models"}


def test_every_source_package_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = set()
    for top, name in MAPPING.items():
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top).parts
            found.add(".".join([name, *rel]))
    assert found == listed


def test_builtin_grids_ship_with_the_package():
    import regbench.plan.grid

    assert (Path(regbench.plan.grid.__file__).parents[1] / "grids" / "quick.yaml").is_file()
