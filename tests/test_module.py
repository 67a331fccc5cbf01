"""The workflow used as a Snakemake module of a folder of the user's own, the catalog's way
(README, "Use it in your own project"): that folder holds only its config/config.yaml and a
Snakefile declaring the module; every output lands there, none in this repository."""

from __future__ import annotations

import json

import pytest
import yaml
from workflow_helpers import ROOT, run_ids, snakemake

from cnnopt.config import grid

pytestmark = [pytest.mark.dag, pytest.mark.mirror, pytest.mark.slow]

# The smoke study with the smallest grid that runs every rule (5 runs), as --configfile layers them.
LAYERS = ("config/config.yaml", "config/smoke.yaml", "tests/configs/small_grid.yaml")

# What snakedeploy writes, with a local copy of the workflow instead of github(...).
SNAKEFILE = """\
configfile: "config/config.yaml"


module cnnopt:
    snakefile:
        {snakefile}
    config:
        config


use rule * from cnnopt
"""


def user_config(mirror) -> dict:
    merged: dict = {}
    for path in LAYERS:
        merged = grid.deep_merge(merged, yaml.safe_load((ROOT / path).read_text(encoding="utf-8")))
    return grid.deep_merge(merged, {"data_source": str(mirror), "threads": 1})


def results_in_repository() -> dict[str, int]:
    """Every file under this repository's results/ (what a run writes), with its mtime."""
    return {str(p.relative_to(ROOT)): p.stat().st_mtime_ns
            for p in (ROOT / "results").rglob("*") if p.is_file()}


def test_the_workflow_runs_as_a_module_of_the_users_own_folder(tmp_path, mirror):
    project = tmp_path / "my-study"
    (project / "config").mkdir(parents=True)
    (project / "config" / "config.yaml").write_text(
        yaml.safe_dump(user_config(mirror), sort_keys=False), encoding="utf-8")
    (project / "Snakefile").write_text(
        SNAKEFILE.format(snakefile=json.dumps(str(ROOT / "Snakefile"))), encoding="utf-8")
    before = results_in_repository()

    proc = snakemake(project, "--cores", "2")
    assert proc.returncode == 0, proc.stdout[-4000:]

    results = project / "results"
    # the user's configuration ran, not the workflow's default grid
    assert {p.name for p in (results / "runs").iterdir()} == run_ids(*LAYERS[1:])
    html = (results / "report/report.html").read_text(encoding="utf-8")
    assert 'id="claims-table"' in html and html.count("data:image/png;base64,") >= 5
    tables = {p.name for p in (results / "tables").glob("*.csv")}
    assert {"claims.csv", "runs.csv", "table1.csv", "calibration.csv"} <= tables
    figures = sorted((results / "figures").glob("*.png"))
    assert len(figures) >= 5
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in figures)

    assert {p.name for p in project.iterdir()} <= {".snakemake", "Snakefile", "config", "results"}
    assert results_in_repository() == before  # nothing written into the workflow's own folder
