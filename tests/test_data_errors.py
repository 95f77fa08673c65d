"""Data that used to escape as tracebacks or wrong diagnoses (issue 18 §4): a byte flipped
inside a .gz, an unreadable file, a damaged cache entry, and `validate` / `launch --dry-run`,
which now check the data `launch` would check. Each error is one line naming the file.

Tests run as root, where `chmod 000` does not stop reads, so an unreadable file is simulated
by making `Path.read_bytes` and `Path.read_text` raise PermissionError (as the OS would) for
that one path."""

from __future__ import annotations

import gzip
import pathlib
import warnings

import pytest
import torch

import fixtures
from helpers import task_instance
from regbench.cli import main
from regbench.tasks import mnist, ptb, sst
from regbench.tasks.cache import cached
from regbench.tasks.sources import DataError, cache_dir


def build(name, root, **params):
    task_instance(name, root, batch_size=2, **params).prepare_data()


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message and isinstance(err.value, DataError)
    return message


@pytest.fixture
def root(tmp_path, monkeypatch):
    """Every real task's files (tiny), with the tables of expected hashes and counts."""
    monkeypatch.setattr(ptb, "WORD_MD5", fixtures.write_ptb(tmp_path))
    monkeypatch.setattr(ptb, "CHAR_GIT_SHA1", fixtures.write_ptb_char(tmp_path))
    monkeypatch.setattr(mnist, "IDX", fixtures.write_mnist(tmp_path))
    monkeypatch.setattr(sst, "ROOT_COUNTS", fixtures.write_sst(tmp_path))
    return tmp_path


CASES = {  # a file of each reader, and the task that reads it
    "ptb/ptb.valid.txt": ("ptb_word", {}),
    "ptb_char/ptb.char.train.txt.gz": ("ptb_char", {}),
    "mnist/t10k-labels-idx1-ubyte.gz": ("smnist", {"n_val": 10}),
    "sst/trees/dev.txt": ("sst2", {}),
}
GZ = [name for name in CASES if name.endswith(".gz")]


@pytest.mark.parametrize("name", GZ)
def test_a_corrupted_deflate_stream_is_named(root, name):
    path = root / name
    data = bytearray(path.read_bytes())
    data[10] |= 0b110  # the first block's type becomes 3, which deflate reserves: zlib.error
    path.write_bytes(bytes(data))
    task, params = CASES[name]
    with pytest.raises(DataError) as err:
        build(task, root, **params)
    message = one_line(err)
    assert message.startswith(f"{path}: not a complete gzip file (corrupted:")
    assert "replace it with the original" in message


@pytest.mark.parametrize("name", GZ)
def test_a_flipped_byte_anywhere_in_a_gzip_file_is_named_or_harmless(root, name):
    path, original = root / name, (root / name).read_bytes()
    task, params = CASES[name]
    for position in range(0, len(original), max(1, len(original) // 60)):
        data = bytearray(original)
        data[position] ^= 0x40
        path.write_bytes(bytes(data))
        try:
            build(task, root, **params)
        except DataError as err:
            assert str(err).startswith(f"{path}: ") and "\n" not in str(err)
        else:  # a header timestamp, a padding bit: the content is intact
            assert gzip.decompress(bytes(data)) == gzip.decompress(original)


def test_a_truncated_gzip_file_is_called_truncated(root):
    path = root / GZ[0]
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(DataError, match=r"not a complete gzip file \(it ends early: truncated\)"):
        build("ptb_char", root)


@pytest.mark.parametrize("name", list(CASES))
def test_an_unreadable_file_is_named_as_unreadable(root, monkeypatch, name):
    path = root / name
    read_bytes, read_text = pathlib.Path.read_bytes, pathlib.Path.read_text

    def denied(original):
        def method(self, *args, **kwargs):
            if self == path:
                raise PermissionError(13, "Permission denied", str(self))
            return original(self, *args, **kwargs)

        return method

    monkeypatch.setattr(pathlib.Path, "read_bytes", denied(read_bytes))
    monkeypatch.setattr(pathlib.Path, "read_text", denied(read_text))
    task, params = CASES[name]
    with pytest.raises(DataError) as err:
        build(task, root, **params)
    message = one_line(err)
    assert message.startswith(f"{path}: cannot read ") and "(Permission denied)" in message


@pytest.mark.parametrize("name", list(CASES))
def test_a_folder_in_place_of_a_file_is_named(root, name):
    path = root / name
    path.unlink()
    path.mkdir()
    task, params = CASES[name]
    with pytest.raises(DataError) as err:
        build(task, root, **params)
    assert one_line(err).startswith(f"{path}: not a regular file but ")


def test_a_tree_file_that_is_not_utf8_is_named(root):
    path = root / "sst" / "trees" / "test.txt"
    path.write_bytes(path.read_bytes() + b"\xff\xfe\n")
    with pytest.raises(DataError) as err:
        build("sst2", root)
    assert one_line(err).startswith(f"{path}: not UTF-8 text")


# -- the processed-data cache ------------------------------------------------------------------
DATA = {"ids": torch.arange(5000), "vocab": ["<eos>", "a", "b"] * 50, "n": 3}


def equal(a, b) -> bool:
    return a.keys() == b.keys() and all(
        torch.equal(a[k], b[k]) if torch.is_tensor(a[k]) else a[k] == b[k] for k in a
    )


def entry():
    return cache_dir() / "t-v1-key.pt"


def flip_middle(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


DAMAGE = {
    "a flipped byte": flip_middle,
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
    "a flipped byte in its checksum": lambda p: p.write_bytes(
        p.read_bytes()[:-1] + bytes([p.read_bytes()[-1] ^ 1])
    ),
    "not an archive": lambda p: p.write_bytes(b"garbage"),
    "empty": lambda p: p.write_bytes(b""),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_cache_entry_is_rebuilt_with_a_warning_naming_it(damage):
    assert cached("t", 1, "key", lambda: DATA) is DATA
    DAMAGE[damage](entry())
    with pytest.warns(UserWarning, match=rf"{entry()}: cache entry unusable \(.*\); rebuilding it"):
        rebuilt = cached("t", 1, "key", lambda: dict(DATA))
    assert equal(rebuilt, DATA)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert equal(cached("t", 1, "key", lambda: pytest.fail("rebuilt twice")), DATA)


def test_an_entry_without_the_checksum_is_rebuilt_quietly_and_sealed_ones_load_in_torch():
    entry().parent.mkdir(parents=True, exist_ok=True)
    torch.save({"stale": 1}, entry())  # as regbench wrote entries before the checksum
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert equal(cached("t", 1, "key", lambda: DATA), DATA)
    assert equal(torch.load(entry(), weights_only=True), DATA)  # older regbench reads it


def test_a_cache_entry_that_cannot_be_read_or_written_is_named(monkeypatch, tmp_path):
    entry().parent.mkdir(parents=True, exist_ok=True)
    entry().mkdir()  # a folder where the entry should be: unreadable and unwritable
    unreadable = pytest.warns(UserWarning, match=r"unusable \(unreadable: Is a directory\)")
    with unreadable, pytest.raises(DataError) as err:
        cached("t", 1, "key", lambda: DATA)
    message = one_line(err)
    assert (
        message.startswith(f"{entry()}: cannot write the data cache")
        and "REGBENCH_CACHE" in message
    )
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("REGBENCH_CACHE", str(tmp_path / "file"))  # a file, not a folder
    with pytest.raises(DataError, match="cannot write the data cache"):
        cached("t", 1, "key", lambda: DATA)


def test_a_task_whose_cache_entry_was_damaged_rebuilds_it(root):
    first = task_instance("ptb_char", root)
    first.setup()
    (path,) = cache_dir().glob("ptb_char-*.pt")
    flip_middle(path)
    second = task_instance("ptb_char", root)
    with pytest.warns(UserWarning, match=str(path)):
        second.setup()
    assert torch.equal(second.splits["train"], first.splits["train"])


# -- validate and launch --dry-run ---------------------------------------------------------------
GRID = "name: datacheck\ntasks: [ptb_word, adding]\nvariants: [none]\nseeds: [0]\n"


@pytest.fixture
def grid(root, monkeypatch, tmp_path):
    counts = {
        s: sum(len(ln.split()) + 1 for ln in fixtures.PTB_LINES[name])
        for s, name in (("train", "train"), ("val", "valid"), ("test", "test"))
    }
    monkeypatch.setattr(ptb.PtbWord, "expected_tokens", lambda self: counts)
    path = tmp_path / "datacheck.yaml"
    path.write_text(GRID)
    return path


COMMANDS = {"validate": ["validate"], "launch --dry-run": ["launch", "--dry-run"]}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_validate_and_dry_run_check_the_data_of_the_jobs_to_run(grid, root, capsys, command):
    head, *flags = COMMANDS[command]
    argv = [head, str(grid), *flags, "--runs-dir", str(root / "runs"), "--data-dir", str(root)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"data of ptb_word: checked ({root})" in out and "pending" in out
    path = root / "ptb" / "ptb.train.txt"
    path.write_bytes(path.read_bytes()[:-10])  # truncated
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and f"{path}: md5 " in captured.err
    assert "pending" not in captured.out  # refused before any job is listed as runnable
