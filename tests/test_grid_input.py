"""Grid files that are not what they should be: one short line naming the file, before any
job is expanded (binary files, duplicate keys, alias bombs, a name that escapes results/)."""

from __future__ import annotations

import time

import pytest

from regbench.errors import ConfigError
from regbench.plan.grid import load_grid

BASE = "tasks: [seq_digits]\nvariants: [none]\nseeds: [0]\n"


def _refused(path, match: str) -> str:
    with pytest.raises(ConfigError, match=match) as err:
        load_grid(path)
    message = str(err.value)
    assert str(path) in message and "\n" not in message and len(message) < 400
    return message


def test_a_binary_file_is_not_a_grid(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_bytes(bytes(range(256)) * 4)
    _refused(path, "not a text file")


def test_a_key_given_twice_is_refused_with_its_line(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text(BASE + "seeds: [1]\n")
    assert ":4:" in _refused(path, "'seeds' is given twice")
    path.write_text("tasks:\n  seq_digits: {train.lr: 0.1, train.lr: 0.2}\n" + BASE[20:])
    _refused(path, "'train.lr' is given twice")


def test_an_alias_bomb_is_refused_quickly_and_briefly(tmp_path):
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 9):
        prev, name = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{name}: &{name} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\ntasks: *i\nvariants: [none]\nseeds: [0]\n")
    assert path.stat().st_size < 400
    started = time.perf_counter()
    _refused(path, "aliases expand to more than")
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize("name", ["../../escape", "/tmp/x", ".hidden", "a/b", ""])
def test_a_name_must_not_leave_the_results_folder(tmp_path, name):
    path = tmp_path / "g.yaml"
    path.write_text(f"name: {name!r}\n" + BASE)
    _refused(path, "must be letters, digits")


def test_a_long_wrong_value_is_cut_in_the_message(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text(BASE.replace("seeds: [0]", "seeds: " + repr(["x" * 50] * 1000)))
    _refused(path, "seeds must be")


def test_yaml_merge_keys_still_work(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text(
        "base: &base {train.max_epochs: 2, train.lr: 0.01}\n"
        "tasks:\n  seq_digits: {<<: *base, model.hidden_size: 8}\n"
        "variants: [none]\nseeds: [0]\n"
    )
    with pytest.raises(ConfigError, match="unknown grid key 'base'"):
        load_grid(path)  # the merge itself loads; the extra top-level key is what is refused
    path.write_text(path.read_text().replace("base: &base", "overrides: &base"))
    grid = load_grid(path)
    assert grid.tasks["seq_digits"] == {
        "train.max_epochs": 2,
        "train.lr": 0.01,
        "model.hidden_size": 8,
    }
