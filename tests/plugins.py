"""Plugins for the tests: the README's example code blocks, installed into a throwaway folder
as a real distribution with its entry point, and commands run with that folder on PYTHONPATH."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_blocks(section: str, language: str) -> list[str]:
    """The code blocks in `language` of the README's `## <section>`, in order."""
    text = README.read_text().split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


def install(folder: Path, code: str, entry: str) -> Path:
    """Install `code` as the module the toml `entry` names (the distribution named after it)
    into `folder`/site, the folder to put on PYTHONPATH."""
    module = re.search(r'= "(\w+):', entry)[1]
    package = folder / "plugin"
    (package / module).mkdir(parents=True)
    (package / module / "__init__.py").write_text(code)
    (package / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        f'[project]\nname = "{module.replace("_", "-")}"\nversion = "0.1"\n' + entry
    )
    site = folder / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run([*pip, "--target", str(site), str(package)], check=True, capture_output=True)
    return site


def run_with(site: Path, *command: str, check: bool = True, cwd: Path | None = None):
    """`python *command` with the plugin folder on PYTHONPATH."""
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run(
        [sys.executable, *command], env=env, check=check, capture_output=True, text=True, cwd=cwd
    )
