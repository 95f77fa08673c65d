"""Regularizers from other packages, registered by entry point: the README's example (the
norm-stabilizer) installed into a throwaway folder, its own tests run, and run through a grid
against `none` in subprocesses; plugins keyed like a built-in, failing to import or without a
version, each refused in one line."""

from __future__ import annotations

import json
import re
from importlib.metadata import EntryPoint
from pathlib import Path

import plugins
import pytest
import yaml

from regbench.errors import ConfigError
from regbench.models.variants import REGULARIZERS, Regularizer, registry, variant_names
from regbench.models.variants.zoneout import Zoneout
from regbench.plan.config import resolve
from regbench.plan.jobs import Job

TINY = (
    "{task.params.T: 12, task.params.n_train: 96, task.params.n_val: 32, "
    "task.params.n_test: 32, model.hidden_size: 8, train.max_epochs: 1}"
)


def readme_blocks(language: str) -> list[str]:
    return plugins.readme_blocks("Add a variant", language)


install, run = plugins.install, plugins.run_with


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> Path:
    """The README's example installed once for this module's tests."""
    codes, entries = readme_blocks("python"), readme_blocks("toml")
    assert codes and entries, "README's Add a variant lacks its python or toml block"
    return install(tmp_path_factory.mktemp("norm_stabilizer"), codes[0], entries[0])


@pytest.mark.slow
def test_readme_example_passes_its_own_tests(example, tmp_path):
    tests = readme_blocks("python")
    assert len(tests) == 2, "README's Add a variant: the example, then its tests"
    (tmp_path / "test_example.py").write_text(tests[1])
    done = run(example, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=tmp_path)
    assert "2 passed" in done.stdout


@pytest.mark.slow
def test_plugin_variant_runs_through_a_grid_and_changes_the_numbers(example, tmp_path):
    listed = run(example, "-m", "regbench", "variants").stdout
    assert re.search(r"norm_stabilizer +lstm, gru, rnn +beta=50\.0 +Krueger", listed)
    shown = readme_blocks("yaml")[0]
    (tmp_path / "readme.yaml").write_text(shown)
    spec = yaml.safe_load(shown)
    jobs = len(spec["tasks"]) * len(spec["variants"]) * len(spec["cells"]) * len(spec["seeds"])
    dry = run(example, "-m", "regbench", "launch", str(tmp_path / "readme.yaml"), "--dry-run")
    assert f"{jobs} pending" in dry.stdout  # the README's grid resolves, every job included

    grid = tmp_path / "tiny.yaml"
    grid.write_text(f"tasks:\n  adding: {TINY}\nvariants: [none, norm_stabilizer]\nseeds: [0]\n")
    runs, out = tmp_path / "runs", tmp_path / "results"
    run(example, "-m", "regbench", "launch", str(grid), "--runs-dir", str(runs))
    run(example, "-m", "regbench", "report", str(grid), "--runs-dir", str(runs), "--out", str(out))
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [(r["task"], r["variant"], r["n"]) for r in rows] == [
        ("adding", "none", 1),
        ("adding", "norm_stabilizer", 1),
    ]
    records = [json.loads(p.read_text()) for p in (out / "records").glob("*.json")]
    by_variant = {r["config"]["variant"]: r for r in records}
    config = by_variant["norm_stabilizer"]["config"]
    version = int(re.search(r"version = (\d+)", readme_blocks("python")[0])[1])
    assert config["versions"]["regularizers"] == {"norm_stabilizer": version}
    assert config["regularizers"] == {"norm_stabilizer": {"beta": 50.0}}  # its default
    # the same seeds and a penalty-free `none` otherwise: only the penalty tells them apart
    assert all(r["state"] == "done" for r in records)
    losses = {v: [e["train/loss"] for e in r["epochs"]] for v, r in by_variant.items()}
    assert losses["none"] != losses["norm_stabilizer"]
    assert by_variant["none"]["result"] != by_variant["norm_stabilizer"]["result"]


@pytest.mark.slow
def test_a_plugin_keyed_like_a_built_in_is_refused_naming_its_distribution(tmp_path):
    code = readme_blocks("python")[0].replace('key = "norm_stabilizer"', 'key = "zoneout"')
    site = install(tmp_path, code, readme_blocks("toml")[0])
    failed = run(site, "-m", "regbench", "variants", check=False)
    assert failed.returncode == 2 and failed.stderr.count("\n") == 1
    message = failed.stderr
    assert "variant plugin 'norm_stabilizer'" in message and "'regbench-norm-stabilizer'" in message
    assert "the key 'zoneout', the name of a built-in regularizer" in message
    assert "another `key`" in message


class Awd(Regularizer):
    """A plugin's regularizer keyed like the recipe `awd`."""

    key = "awd"
    version = 1


class Unversioned(Regularizer):
    """A plugin's regularizer without a version of its own."""

    key = "unversioned"


class Fine(Regularizer):
    """A plugin's regularizer that passes every check."""

    key = "fine_noise"
    version = 2
    defaults = {"sigma": 0.1}


def loaded_with(monkeypatch, *entries: EntryPoint) -> None:
    """Read the registry with `entries` as the installed plugins."""
    monkeypatch.setattr(registry, "entry_points", lambda group: list(entries))
    REGULARIZERS.reload()
    variant_names()


def entry(name: str, value: str) -> EntryPoint:
    return EntryPoint(name, value, registry.ENTRY_POINTS)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (f"{__name__}:Awd", "the key 'awd', the name of a built-in recipe"),
        (f"{__name__}:Unversioned", "sets no `version`; declare one"),
        ("regbench_no_such_plugin:Thing", "failed to import: ModuleNotFoundError"),
        (f"{__name__}:Path", "is not a Regularizer class"),
    ],
)
def test_a_bad_plugin_is_refused_in_one_line_and_registers_nothing(monkeypatch, value, expected):
    try:
        with pytest.raises(ConfigError) as err:
            loaded_with(monkeypatch, entry("fine_noise", f"{__name__}:Fine"), entry("bad", value))
        message = str(err.value)
        assert "\n" not in message and f"variant plugin 'bad' ({value})" in message
        assert expected in message
        with pytest.raises(ConfigError):  # refused again at the next read, not forgotten
            variant_names()
    finally:
        monkeypatch.undo()
        REGULARIZERS.reload()  # the real plugins load again after the test
    assert "fine_noise" not in REGULARIZERS and "zoneout" in REGULARIZERS


def test_a_good_plugin_joins_the_built_ins_with_its_version_and_rates(monkeypatch):
    try:
        loaded_with(monkeypatch, entry("fine_noise", f"{__name__}:Fine"))
        assert REGULARIZERS["fine_noise"] is Fine and "fine_noise" in variant_names()
        assert "fine_noise" in REGULARIZERS.origin("fine_noise")
        assert REGULARIZERS.origin("zoneout") is None
        config = resolve("adding", "zoneout+fine_noise", "gru", 0)
        assert config["versions"]["regularizers"] == {"zoneout": Zoneout.version, "fine_noise": 2}
        assert config["regularizers"]["fine_noise"] == {"sigma": 0.1}
        before = Job(resolve("adding", "fine_noise", "gru", 0)).id
        monkeypatch.setattr(Fine, "version", 3)  # a new version: new jobs
        assert Job(resolve("adding", "fine_noise", "gru", 0)).id != before
    finally:
        monkeypatch.undo()
        REGULARIZERS.reload()
    assert "fine_noise" not in REGULARIZERS
