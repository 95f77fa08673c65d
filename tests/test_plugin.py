"""Tasks from other packages, registered by entry point: the README's two examples (a
generated task and a file-reading token task), each installed into a throwaway folder and run
through a grid in subprocesses; and a plugin that takes a built-in task's name, refused."""

from __future__ import annotations

import json
import subprocess
from importlib.metadata import EntryPoint
from pathlib import Path

import plugins
import pytest

from regbench.errors import ConfigError
from regbench.tasks import Protocol, Task, registry, task_names


def readme_blocks(language: str) -> list[str]:
    return plugins.readme_blocks("Add a task", language)


def install_plugin(tmp_path: Path, example: int = 0) -> Path:
    """Install the README's `example`-th task (its python and toml blocks) into a folder for
    PYTHONPATH; the package is named by the entry point."""
    codes, entries = readme_blocks("python"), readme_blocks("toml")
    assert len(codes) > example < len(entries), f"README's Add a task lacks example {example}"
    return plugins.install(tmp_path, codes[example], entries[example])


def regbench(site: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return plugins.run_with(site, "-m", "regbench", *args, check=check)


@pytest.mark.slow
def test_plugin_task_runs_through_a_grid(tmp_path):
    site = install_plugin(tmp_path)
    grid = tmp_path / "plugin.yaml"
    grid.write_text(
        "tasks:\n  parity: {task.params.n_train: 200, train.max_epochs: 2}\n"
        "variants: [none, zoneout]\nseeds: [0]\n"
    )
    assert "parity" in regbench(site, "tasks").stdout
    runs, out = tmp_path / "runs", tmp_path / "results"
    regbench(site, "launch", str(grid), "--runs-dir", str(runs))
    regbench(site, "report", str(grid), "--runs-dir", str(runs), "--out", str(out))
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [(r["task"], r["variant"], r["n"]) for r in rows] == [
        ("parity", "none", 1),
        ("parity", "zoneout", 1),
    ]
    assert "| parity | accuracy | ↑ higher | none |" in (out / "table.md").read_text()


POSITIVE = ["great", "superb", "moving", "fine", "loved"]
NEGATIVE = ["awful", "dull", "bad", "boring", "hated"]
FILLER = ["the", "film", "a", "plot", "was", "and", "it", "so"]


def write_reviews(root: Path) -> None:
    """DIR/reviews/{train,val,test}.tsv: label, a tab, then a review of 2 to 6 words."""
    folder = root / "reviews"
    folder.mkdir(parents=True)
    for split, n in (("train", 48), ("val", 12), ("test", 12)):
        lines = []
        for i in range(n):
            words = [(POSITIVE if i % 2 else NEGATIVE)[i % 5], *FILLER[: i % 5]]
            lines.append(f"{i % 2}\t{' '.join(words[i % 3 :] + words[: i % 3])}")
        (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n")


@pytest.mark.slow
def test_file_reading_token_plugin_runs_through_a_grid(tmp_path):
    site = install_plugin(tmp_path, example=1)
    data = tmp_path / "data"
    write_reviews(data)
    grid = tmp_path / "reviews.yaml"
    grid.write_text(
        "tasks:\n  reviews: {train.max_epochs: 2}\nvariants: [none, embed_dropout]\nseeds: [0]\n"
    )
    runs, out = tmp_path / "runs", tmp_path / "results"
    where = ["--runs-dir", str(runs), "--data-dir", str(data)]
    listed = regbench(site, "launch", str(grid), "--dry-run", *where)
    assert "2 pending" in listed.stdout  # embed_dropout too: the task has token inputs
    regbench(site, "launch", str(grid), *where)
    regbench(site, "report", str(grid), "--runs-dir", str(runs), "--out", str(out))
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [(r["task"], r["variant"], r["n"]) for r in rows] == [
        ("reviews", "none", 1),
        ("reviews", "embed_dropout", 1),
    ]
    records = [json.loads(p.read_text()) for p in (out / "records").glob("*.json")]
    sources = {json.dumps(r["result"]["data_source"], sort_keys=True) for r in records}
    assert len(records) == 2 and len(sources) == 1
    assert json.loads(sources.pop())["kind"] == "local"
    bad = data / "reviews" / "val.tsv"
    bad.write_text(bad.read_text().replace("\t", " ", 1))  # line 1 loses its tab
    again = tmp_path / "again"
    failed = regbench(
        site, "launch", str(grid), "--runs-dir", str(again), "--data-dir", str(data), check=False
    )
    assert failed.returncode == 2 and failed.stderr.count("\n") == 1
    assert f"{bad}:1: not a review line" in failed.stderr
    assert not again.exists() or not any(again.iterdir())  # refused before any run started


class Clash(Task):
    """A plugin's task that takes the name of the built-in task `adding`."""

    protocol = Protocol(
        name="adding",
        version=1,
        metric="mse",
        kind="regress_last",
        splits="",
        reference="",
        params={"T": 1},
    )


def test_a_plugin_named_like_a_built_in_task_is_refused_naming_both(monkeypatch):
    entry = EntryPoint("my_adding", f"{__name__}:Clash", registry.ENTRY_POINTS)
    monkeypatch.setattr(registry, "entry_points", lambda group: [entry])
    registry.load_plugins.cache_clear()
    try:
        with pytest.raises(ConfigError) as err:
            task_names()
    finally:
        registry.load_plugins.cache_clear()  # the real plugins load again after the test
    message = str(err.value)
    assert "\n" not in message and f"{__name__}:Clash" in message
    assert "named 'adding'" in message and "regbench.tasks.adding:Adding" in message
    assert registry.get_task("adding").__name__ == "Adding"
