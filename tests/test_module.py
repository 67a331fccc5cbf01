"""The workflow deployed the catalog's way (README, "Use it in your own project"): a folder of
the user's own holds only config/ and the Snakefile snakedeploy writes, the module comes from a
git source at a tag, and the library from a pip install of that tag. Nothing of a working tree
is read: once the package is installed, the tagged repository keeps its git store only, and
every output lands in the user's folder."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from workflow_helpers import ROOT, run_ids, snakemake

from cnnopt.config import grid

pytestmark = [pytest.mark.dag, pytest.mark.mirror, pytest.mark.slow]

# The smoke study with the smallest grid that runs every rule (5 runs), as --configfile layers them.
LAYERS = ("config/config.yaml", "config/smoke.yaml", "tests/configs/small_grid.yaml")
TAG = "v0.0.0-test"
#: Snakemake's rerun triggers but "code": with a gitfile(...) module, Snakemake 9.27.1 fails on
#: its code trigger (LocalGitFile.join takes only strings, and a rule's script path arrives as
#: a LocalSourceFile: "TypeError: sequence item 1: expected str instance"); github(...) sources
#: join through an f-string and are not affected. Each script's code still reruns its jobs here
#: through the code_version param (params trigger), which hashes the script too.
TRIGGERS = ("--rerun-triggers", "mtime", "params", "input", "software-env")
#: The README's module declaration: the repository's address is the one placeholder to fill in.
GITHUB = 'github("<owner>/cnnopt", path="workflow/Snakefile", tag="<tag>")'


def readme_snakefile() -> str:
    """The Snakefile that the README shows snakedeploy writing (its python block)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Use it in your own project"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def tagged_repository(dest) -> str:
    """A git repository of this working tree's files (tracked and new, not ignored: what the
    next commit would hold), tagged TAG. Returns its path."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                           check=True, capture_output=True, text=True).stdout.split("\0")
    repo = dest / "cnnopt"
    for name in filter(None, files):
        src = ROOT / name
        if src.is_symlink() or src.is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, repo / name, follow_symlinks=False)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.org"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "release"], ["tag", TAG]):
        subprocess.run([*git, *args], cwd=repo, check=True, capture_output=True)
    return str(repo)


def remove_working_tree(repo) -> None:
    """Every file of ``repo`` but its git store: what Snakemake and pip read must come from
    the tag."""
    for path in Path(repo).iterdir():
        if path.name != ".git":
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()


def snapshot(folder) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns
            for p in folder.rglob("*") if p.is_file()}


def test_the_workflow_deploys_from_a_tag_with_the_package_installed_from_it(tmp_path, mirror):
    repo = tagged_repository(tmp_path)

    # pip install "cnnopt @ git+<address>@<tag>", as a user would (into a folder of its own
    # that comes first on the path, so the clone's editable install is not what runs)
    site = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                          "--disable-pip-version-check", "--target", str(site),
                          f"git+file://{repo}@{TAG}"],
                         capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stderr[-3000:]
    remove_working_tree(repo)
    before = snapshot(Path(repo))
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    where = subprocess.run(
        [sys.executable, "-c", "import cnnopt; from cnnopt.judge import claims; from cnnopt.report import html;"
         "from cnnopt.common.registry import SCHEMA_PATH;"
         "print(cnnopt.__file__); print(len(claims.load_claims()), html.TEMPLATE.is_file(), SCHEMA_PATH.is_file())"],
        env=dict(os.environ, **env), capture_output=True, text=True, check=True).stdout.split()
    assert where[0].startswith(str(site)) and where[1:] == ["43", "True", "True"]

    project = tmp_path / "my-study"
    (project / "config").mkdir(parents=True)
    merged: dict = {}
    for path in LAYERS:
        merged = grid.deep_merge(merged, yaml.safe_load((ROOT / path).read_text(encoding="utf-8")))
    merged = grid.deep_merge(merged, {"data_source": str(mirror), "threads": 1})
    (project / "config" / "config.yaml").write_text(yaml.safe_dump(merged, sort_keys=False),
                                                    encoding="utf-8")
    text = readme_snakefile()
    assert text.count(GITHUB) == 1
    (project / "workflow").mkdir()
    (project / "workflow" / "Snakefile").write_text(
        text.replace(GITHUB, f'gitfile({json.dumps(repo)}, path="workflow/Snakefile", tag="{TAG}")'),
        encoding="utf-8")

    proc = snakemake(project, "--cores", "2", *TRIGGERS, env=env)
    assert proc.returncode == 0, proc.stdout[-4000:]

    results = project / "results"
    assert {p.name for p in (results / "runs").iterdir()} == run_ids(*LAYERS[1:])
    html = (results / "report/report.html").read_text(encoding="utf-8")
    assert 'id="claims-table"' in html and html.count("data:image/png;base64,") >= 5
    assert "none (an installed copy of cnnopt)" in html  # the library ran from the pip install
    tables = {p.name for p in (results / "tables").glob("*.csv")}
    assert {"claims.csv", "runs.csv", "table1.csv", "calibration.csv"} <= tables
    figures = sorted((results / "figures").glob("*.png"))
    assert len(figures) >= 5
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in figures)
    assert {p.name for p in project.iterdir()} <= {".snakemake", "workflow", "config", "results"}
    assert snapshot(Path(repo)) == before  # nothing written into the repository

    # the code versions, hashed from the installed files and the git source, are stable
    again = snakemake(project, "--cores", "2", "-n", *TRIGGERS, env=env)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout, again.stdout[-3000:]
