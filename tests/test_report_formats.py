"""The report's formats: LaTeX bold per task in the metric's direction, strict JSON, HTML
with the tables and figures inline (rendered in headless Chromium when it is installed),
plots, the manifest and the results index."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from fake_runs import done, write_grid

from regbench.plan.jobs import config_hash
from regbench.report.write import write_report

GRID = """name: formats
tasks:
  seq_digits: {}
  copy_memory: {task.params.T: 20}
variants: [none, dropout, zoneout]
seeds: [0, 1]
"""
# seq_digits: accuracy, higher is better; copy_memory: cross_entropy, lower is better
VALUES = {
    ("seq_digits", "none"): [0.80, 0.82],
    ("seq_digits", "dropout"): [0.90, 0.92],
    ("seq_digits", "zoneout"): [0.70, 0.72],
    ("copy_memory", "none"): [0.050, 0.052],
    ("copy_memory", "dropout"): [0.090, 0.092],
    ("copy_memory", "zoneout"): [0.010, 0.012],
}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("formats")
    grid, jobs = write_grid(tmp / "formats.yaml", GRID)
    runs, out = tmp / "runs", tmp / "results" / "formats"
    for job in jobs:
        key = (job.config["task"]["name"], job.config["variant"])
        value = VALUES[key][job.seed]
        done(job, runs, value, curve=[value * 2, value * 1.5, value])
    paths = write_report(grid, jobs, runs, out, "regbench report formats.yaml")
    return {"out": out, "paths": paths, "jobs": jobs}


def test_latex_bolds_the_best_per_task_in_its_direction(report):
    tex = (report["out"] / "table.tex").read_text()
    bold = re.findall(r"\\textbf\{([^}]*)\}", tex)
    assert bold == [r"0.9100 $\pm$ 0.0141", r"0.01100 $\pm$ 0.00141"]
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert r"seq\_digits $\uparrow$" in tex and r"copy\_memory $\downarrow$" in tex
    assert not re.search(r"(?<!\\)_", tex)  # every underscore escaped, captions included
    caption = re.search(r"\\caption\{(.*)\}\n", tex).group(1)
    assert r"mean $\pm$ sample standard deviation" in caption
    assert "best validation metric" in caption and "evaluated once" in caption


def test_json_is_strict_and_keeps_run_ids(report):
    text = (report["out"] / "results.json").read_text()
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON {c}"))
    ids = [i for row in data["rows"] for i in row["run_ids"]]
    assert ids == [j.id for j in report["jobs"]]
    assert "best validation metric" in data["definitions"]["selection"]


def test_plots_are_written_as_png_and_svg(report):
    names = {p.name for p in report["paths"] if p.parent.name == "plots"}
    stems = ("seq_digits-curves", "seq_digits-test", "copy_memory-curves", "copy_memory-test")
    for stem in (*stems, "cost"):
        assert {f"{stem}.png", f"{stem}.svg"} <= names
    png = (report["out"] / "plots" / "cost.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5_000


def test_html_is_self_contained_with_tables_and_figures(report):
    page = (report["out"] / "report.html").read_text()
    assert page.count("<table>") == 2  # results and cost (no references declared)
    assert page.count("<svg") == 5 and "<figcaption" in page
    assert "<td>seq_digits</td>" in page and "best validation metric" in page
    assert not re.search(r"""(src|href)=["'](?!#)""", page)  # nothing loaded from elsewhere


def test_manifest_names_jobs_hashes_versions_and_hardware(report):
    m = json.loads((report["out"] / "manifest.json").read_text())
    assert m["project"]["name"] == "regbench" and m["grid"]["name"] == "formats"
    assert len(m["grid"]["sha256"]) == 64 and m["generated"]
    first = m["rows"][0]
    jobs = [j for j in report["jobs"] if j.row_key == ("seq_digits", "lstm", "none", "")]
    assert first["job_ids"] == [j.id for j in jobs]
    assert first["config_hashes"] == [config_hash(j.config) for j in jobs]
    assert first["versions"] == jobs[0].config["versions"] and first["task_version"] == 1
    assert m["runs"]["hardware"] == [{"cpu": "Test CPU", "cpu_count": 2, "platform": "Linux"}]
    assert m["runs"]["packages"]["torch"] == ["2.13.0+cpu"]
    assert {"scipy", "matplotlib"} <= set(m["packages"])


def test_results_index_lists_the_grid(report):
    index = (report["out"].parent / "README.md").read_text()
    assert "| `formats` | 6 | 12 / 12 | 0 |" in index
    assert "[report.html](formats/report.html)" in index and "CITATION.cff" in index


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_html_renders_in_headless_chromium(report, tmp_path):
    page = report["out"] / "report.html"
    base = [
        "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    dom = subprocess.run(
        [*base, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count("<table>") == 2 and dom.stdout.count("<svg") == 5
    shot = tmp_path / "page.png"
    subprocess.run(
        [*base, f"--screenshot={shot}", "--window-size=1200,2000", page.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 20_000


def test_results_index_regenerates_from_manifests_and_lists_other_results(report):
    from regbench.report.index import write_index

    results = report["out"].parent
    (results / "perf").mkdir(exist_ok=True)
    (results / "perf" / "cpu.md").write_text("# perf\n")
    index = write_index(results).read_text()
    assert "| `formats` |" in index and "- [perf/cpu.md](perf/cpu.md)" in index


def test_citation_file_names_the_project_version_and_license():
    from pathlib import Path

    import tomllib
    import yaml

    root = Path(__file__).resolve().parent.parent
    cff = yaml.safe_load((root / "CITATION.cff").read_text())
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert cff["cff-version"] == "1.2.0" and cff["license"] == "MIT"
    assert cff["version"] == project["version"] == "0.1.0"
    assert cff["authors"] == [{"name": "regbench maintainers"}]
    assert cff["title"].startswith("regbench") and "manifest.json" in cff["message"]


SWEPT = """name: swept
tasks: [seq_digits]
variants: [none, dropout]
seeds: [0, 1]
sweep: [{train.lr: 0.01}, {train.lr: 0.001}]
references:
  - {task: seq_digits, variant: dropout, point: {train.lr: 0.01}, value: 0.9,
     source: "A. Author 2020, Table 9", tolerance: {plus_minus: 0.1}}
"""


def test_rows_differing_only_by_a_sweep_point_get_their_own_colour_and_setup_reference(
    tmp_path,
):
    from regbench.report.assemble import build_report
    from regbench.report.collect import collect
    from regbench.report.plots import _colors
    from regbench.run.records import store_for

    grid, jobs = write_grid(tmp_path / "swept.yaml", SWEPT)
    runs, out = tmp_path / "runs", tmp_path / "out"
    for job in jobs:
        done(job, runs, 0.8 + 0.01 * job.seed)
    store = store_for(out, runs)
    report = build_report(grid, collect(jobs, store), store, out, "r")
    colors = _colors(report)
    assert len(colors) == 4 and len(set(colors.values())) == 4  # one per table row
    legend = (write_report(grid, jobs, runs, out, "r"), (out / "plots" / "cost.svg").read_text())
    assert "dropout (lr=0.01)" in legend[1] and "dropout (lr=0.001)" in legend[1]
    setup = (out / "table.md").read_text().split("## Setup")[1]
    assert "A. Author 2020, Table 9" in setup and "regbench's own" not in setup
