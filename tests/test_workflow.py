"""The whole workflow, run by the real Snakemake on tiny data and on a slice of the mirror."""

from __future__ import annotations

import contextlib
import html
import json
import os
import re
import shutil
import subprocess
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from datasets import (
    CLASS_NAMES,
    make_canonical_python_archive,
    make_symlink_tar,
    make_traversal_tar,
    serve_directory,
    truncate,
)
from workflow_helpers import (
    ROOT,
    SNAKEMAKE,
    config_args,
    copy_workflow,
    documented_claims,
    rule_scripts,
    run_ids,
    snakemake,
)

from cnnopt.data import cifar10 as data

pytestmark = pytest.mark.dag

SMOKE = ["--configfile", "config/smoke.yaml"]
DIVERGE = str(Path(__file__).parent / "configs" / "diverge.yaml")
TINY = {"validation_size": 100, "max_train_images": 0, "max_test_images": 0}


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """The smoke DAG end to end, data downloaded from a local HTTP server with its md5."""
    served = tmp_path_factory.mktemp("served")
    md5 = make_canonical_python_archive(served / "cifar-10-python.tar.gz",
                                        n_train_per_class=60, n_test_per_class=20)
    wf = copy_workflow(tmp_path_factory.mktemp("wf"))
    with serve_directory(served) as url:
        args = [*SMOKE, DIVERGE, *config_args(threads=1, data_source=f"{url}/cifar-10-python.tar.gz",
                                     data_checksum=f"md5:{md5}", **TINY)]
        proc = snakemake(wf, "--cores", "2", *args)
    assert proc.returncode == 0, proc.stdout[-4000:]
    return wf, args


def test_smoke_dag_produces_every_output(smoke_run):
    wf, _ = smoke_run
    runs = pd.read_csv(wf / "results/tables/runs.csv")
    expected = run_ids("config/smoke.yaml", DIVERGE)
    assert {"sgd-explode-s0", "adam-final_no_batchnorm-s0", "sgd-final_no_momentum-s0"} <= expected
    assert set(runs["run_id"]) == expected
    for rid in expected:
        folder = wf / "results/runs" / rid
        for name in ("model.keras", "history.csv", "metrics.json", "run.json", "evaluation.json"):
            assert (folder / name).stat().st_size > 0, f"{rid}/{name}"
        if rid == "adam-initial_again-s0":  # its spec equals adam-initial-s0's: copied
            assert (wf / f"results/benchmarks/share_run/{rid}.tsv").exists()
            continue
        assert (wf / f"results/logs/train/{rid}.log").read_text().count("epoch ") >= 2
        assert (wf / f"results/benchmarks/train/{rid}.tsv").exists()
    for rule in ("prepare_data", "aggregate", "figures", "report"):  # every rule has one
        assert (wf / f"results/benchmarks/{rule}.tsv").exists(), rule
    table1 = pd.read_csv(wf / "results/tables/table1.csv")
    assert sorted(table1["optimizer"]) == ["adam", "adamax", "rmsprop", "sgd"]
    assert table1.set_index("optimizer").loc["adam", "paper_final"] == 85.5
    twins = {rid.rsplit("-s", 1)[0] for rid in expected if "-final_no_" in rid}
    assert len(pd.read_csv(wf / "results/tables/ablation.csv")) == len(twins) == 7
    for fig in ("optimizer_adam", "optimizer_sgd", "optimizer_rmsprop", "optimizer_adamax",
                "val_accuracy_vs_epoch", "val_accuracy_vs_seconds", "final_accuracy",
                "lr_schedules", "confusion_best"):
        assert (wf / f"results/figures/{fig}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_diverging_run_is_recorded_and_the_dag_completes(smoke_run):
    wf, _ = smoke_run
    metrics = json.loads((wf / "results/runs/sgd-explode-s0/metrics.json").read_text())
    assert metrics["diverged"] and metrics["diverged_epoch"] >= 1
    runs = pd.read_csv(wf / "results/tables/runs.csv").set_index("run_id")
    assert bool(runs.loc["sgd-explode-s0", "diverged"])
    assert not runs.drop("sgd-explode-s0")["diverged"].astype(bool).any()
    html = (wf / "results/report/report.html").read_text()
    assert "diverged at epoch" in html


def test_smoke_data_came_through_the_download_and_checksum(smoke_run):
    wf, _ = smoke_run
    assert (wf / "results/data/download/cifar-10-python.tar.gz").exists()
    manifest = json.loads((wf / "results/data/manifest.json").read_text())
    assert manifest["format"] == "cifar10-python"
    assert manifest["checksum_verified"].startswith("md5:")
    assert manifest["counts"]["train"]["cat"] == 60


def test_smoke_report_is_self_contained_and_names_the_paper(smoke_run):
    wf, _ = smoke_run
    html = (wf / "results/report/report.html").read_text()
    assert html.count("data:image/png;base64,") >= 9
    assert "85.5" in html and "70.71" in html
    assert 'src="results' not in html and "src='results" not in html


def test_smoke_report_opens_with_every_claim_judged(smoke_run):
    from cnnopt.judge import claims as judge_claims

    wf, _ = smoke_run
    ids = [c["id"] for c in judge_claims.load_claims()]
    claims = pd.read_csv(wf / "results/tables/claims.csv")
    assert list(claims["id"]) == ids
    # one seed: no claim can be decided, and each row says why
    assert set(claims["verdict"]) <= {"inconclusive", "untested"}
    assert claims["reason"].str.len().min() > 10
    html = (wf / "results/report/report.html").read_text()
    assert html.index('id="claims-table"') < html.index('id="methodology"')
    for cid in ids:
        assert f'id="claim-{cid}"' in html
    assert 'id="deviations"' in html and "reduced scale" in html
    assert 'id="strata-table"' in html and 'id="calibration-table"' in html


def test_a_run_with_an_equal_spec_is_copied_not_trained(smoke_run):
    wf, _ = smoke_run
    shared, owner = wf / "results/runs/adam-initial_again-s0", wf / "results/runs/adam-initial-s0"
    assert not (wf / "results/logs/train/adam-initial_again-s0.log").exists()
    assert "copied, not trained" in (wf / "results/logs/share_run/adam-initial_again-s0.log").read_text()
    assert (shared / "model.keras").read_bytes() == (owner / "model.keras").read_bytes()
    spec = json.loads((shared / "run.json").read_text())
    assert spec["variant"] == "initial_again" and spec["shared_with"] == "adam-initial-s0"
    assert json.loads((shared / "metrics.json").read_text())["run_id"] == "adam-initial_again-s0"
    runs = pd.read_csv(wf / "results/tables/runs.csv").set_index("run_id")
    assert runs.loc["adam-initial_again-s0", "test_accuracy"] == runs.loc["adam-initial-s0", "test_accuracy"]


def test_the_learned_models_beat_chance(smoke_run):
    wf, _ = smoke_run
    runs = pd.read_csv(wf / "results/tables/runs.csv").set_index("run_id")
    assert runs["test_accuracy"].max() > 30  # 10 classes: chance is 10 %


def test_rerun_with_nothing_changed_plans_nothing(smoke_run):
    wf, args = smoke_run
    proc = snakemake(wf, "-n", *args)  # the server is gone: nothing may need it
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "Nothing to be done" in proc.stdout


def test_deleted_tables_and_figures_come_back_and_nothing_else_is_redone(smoke_run):
    wf, args = smoke_run
    products = {p.relative_to(wf) for d in ("results/tables", "results/figures")
                for p in (wf / d).iterdir()}
    assert {Path("results/tables/table1.csv"), Path("results/figures/final_accuracy.png")} <= products
    for d in ("results/tables", "results/figures"):
        shutil.rmtree(wf / d)
    plan = planned(wf, args)  # the report is up to date, yet its inputs are gone
    assert plan == {"aggregate": 1, "calibrate": 1, "figures": 1, "report": 1, "all": 1}
    proc = snakemake(wf, "--cores", "2", *args)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert {p.relative_to(wf) for d in ("results/tables", "results/figures")
            for p in (wf / d).iterdir()} == products


RULEGRAPHS = {"default": [], "future": ["--configfile", "config/future.yaml"]}
RULEGRAPH_BLOCK = re.compile(r"(<!-- rulegraph (\w+):[^\n]*-->\n```mermaid\n)(.*?)(```\n)", re.S)


def _rulegraph(wf: Path, *args: str) -> str:
    """``snakemake --rulegraph mermaid-js`` of the workflow in ``wf``, its edges sorted
    (Snakemake lists them in set order, which varies between runs; the diagram is the same)."""
    proc = subprocess.run([str(SNAKEMAKE), "--rulegraph", "mermaid-js", "--quiet", *args],
                          cwd=wf, text=True, capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    edges = sorted((line for line in lines if "-->" in line),
                   key=lambda e: [int(n) for n in re.findall(r"id(\d+)", e)][::-1])
    return "\n".join([line for line in lines if "-->" not in line] + edges) + "\n"


def test_the_readmes_rule_graphs_are_snakemakes_own(tmp_path):
    """The README draws the DAG with what ``snakemake --rulegraph mermaid-js`` prints, for the
    default and the future configs. ``CNNOPT_UPDATE_README=1`` rewrites a stale copy."""
    readme = ROOT / "README.md"
    text = readme.read_text()
    found = {m.group(2): m.group(3) for m in RULEGRAPH_BLOCK.finditer(text)}
    assert set(found) == set(RULEGRAPHS), found.keys()
    wf = copy_workflow(tmp_path)
    fresh = {name: _rulegraph(wf, *args) for name, args in RULEGRAPHS.items()}
    if os.environ.get("CNNOPT_UPDATE_README") == "1":
        readme.write_text(RULEGRAPH_BLOCK.sub(
            lambda m: m.group(1) + fresh[m.group(2)] + m.group(4), text))
        found = fresh
    for name, graph in fresh.items():
        assert found[name] == graph, (
            f"README.md's {name} rule graph is stale: rerun with CNNOPT_UPDATE_README=1")


def test_default_config_plans_the_whole_study(tmp_path):
    wf = copy_workflow(tmp_path)
    counts = planned(wf, [])
    runs = run_ids()  # one evaluation per run of the default grid, one training per distinct spec
    assert len(runs) == 36 and counts["train"] == counts["evaluate"] == len(runs)
    assert "share_run" not in counts
    for rule in ("download_data", "prepare_data", "aggregate", "calibrate", "figures", "report", "all"):
        assert counts[rule] == 1


def test_the_papers_scale_plans_every_twin_the_claims_need(tmp_path):
    from cnnopt.judge import claims as judge_claims

    wf = copy_workflow(tmp_path)
    proc = snakemake(wf, "-n", "--configfile", "config/paper.yaml")
    assert proc.returncode == 0, proc.stdout[-3000:]
    planned_runs = set(re.findall(r"results/runs/([\w.-]+)/model\.keras", proc.stdout))
    arms = {arm for c in judge_claims.load_claims() for arm in judge_claims.arms(c)}
    expected = {f"{arm.replace('/', '-')}-s{seed}" for arm in arms for seed in (0, 1, 2)}
    assert expected <= planned_runs, sorted(expected - planned_runs)


def test_runs_with_equal_specs_are_trained_once(tmp_path):
    from cnnopt.config import grid, schema

    wf = copy_workflow(tmp_path)
    # three names for two trainings per seed: "copy" is the initial recipe under another name
    extra = ["--config", "variants={copy: {role: extra, label: a copy, epochs: 8}}",
             "grid=[{optimizers: [adam, sgd], variants: [initial, copy, final]}]", "seeds=[0,1]"]
    counts = planned(wf, extra)
    assert counts["train"] == 2 * 2 * 2 and counts["share_run"] == 2 * 2
    assert counts["evaluate"] == 2 * 3 * 2
    specs = grid.expand_runs(schema.load(wf / "config/config.yaml", {
        "variants": {"copy": {"role": "extra", "label": "a copy", "epochs": 8}},
        "grid": [{"optimizers": ["adam", "sgd"], "variants": ["initial", "copy", "final"]}],
        "seeds": [0, 1]}))
    assert len({grid.training_key(s) for s in specs.values()}) == counts["train"]


@pytest.mark.parametrize("source", ["default URL", "local archive", "future.yaml"])
def test_lint_is_clean(tmp_path, source):
    wf = copy_workflow(tmp_path)
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(b"not read by --lint")
    args = {"default URL": [], "local archive": config_args(data_source=archive),
            "future.yaml": ["--configfile", "config/future.yaml"]}[source]
    proc = snakemake(wf, "--lint", *args)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "Lints for" not in proc.stdout, proc.stdout[-3000:]


def _fails_cleanly(wf, proc, *needles):
    assert proc.returncode != 0
    for needle in needles:
        assert needle in proc.stdout, proc.stdout[-3000:]
    assert not (wf / "results/data/cifar10.npz").exists()
    assert not (wf / "results/data/manifest.json").exists()
    assert not list((wf / "results").rglob("*.part*")) if (wf / "results").exists() else True


def test_wrong_checksum_fails_and_leaves_nothing(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    make_canonical_python_archive(served / "cifar-10-python.tar.gz")
    wf = copy_workflow(tmp_path / "wf")
    with serve_directory(served) as url:
        proc = snakemake(wf, "--cores", "1", *SMOKE, *config_args(
            data_source=f"{url}/cifar-10-python.tar.gz", data_checksum="md5:" + "0" * 32))
    _fails_cleanly(wf, proc, "checksum")
    assert not (wf / "results/data/download/cifar-10-python.tar.gz").exists()


@pytest.mark.parametrize("kind", ["truncated", "traversal", "symlink"])
def test_bad_archive_fails_and_leaves_nothing(tmp_path, kind):
    archive = tmp_path / "data.tar.gz"
    if kind == "truncated":
        make_canonical_python_archive(archive, n_train_per_class=30)
        truncate(archive, 0.5)
    elif kind == "traversal":
        make_traversal_tar(archive)
    else:
        make_symlink_tar(archive)
    wf = copy_workflow(tmp_path / "wf")
    proc = snakemake(wf, "--cores", "1", *SMOKE, *config_args(data_source=archive))
    _fails_cleanly(wf, proc, "Error in rule prepare_data")
    log = (wf / "results/logs/prepare_data.log").read_text()
    assert "ERROR:" in log and len(log.strip().splitlines()[-1]) < 400
    assert not (tmp_path / "evil.txt").exists()


def test_unknown_optimizer_stops_before_any_job(tmp_path):
    wf = copy_workflow(tmp_path)
    proc = snakemake(wf, "--cores", "1", "--config",
                     "grid=[{'optimizers': ['adagrad'], 'variants': ['initial']}]")
    assert proc.returncode != 0
    assert "unknown optimizer 'adagrad'" in proc.stdout, proc.stdout[-2000:]
    assert not (wf / "results").exists()


def test_real_mirror_decodes_whole_and_a_subset_learns(tmp_path, mirror):
    """The workflow decodes all 60,000 images of the mirror once (prepare_data), and a short
    run on a real slice of it scores far above chance."""
    wf = copy_workflow(tmp_path)
    target = "results/runs/adam-baseline-s0/evaluation.json"
    proc = snakemake(wf, target, "--cores", "2", *SMOKE, *config_args(
        data_source=mirror, max_train_images=10000, max_test_images=2000))
    assert proc.returncode == 0, proc.stdout[-3000:]
    result = json.loads((wf / target).read_text())
    assert result["test_accuracy"] > 0.35  # chance is 0.10
    assert sum(map(sum, result["confusion_matrix"])) == 2000

    start = time.perf_counter()
    arrays = data.load(wf / "results/data/cifar10.npz")
    loading = time.perf_counter() - start
    # a training job reads the cached arrays, not the archive: a fraction of the decoding job
    # (both measured in this run, so that a busy machine slows both alike; idle: 0.1 s / 7.5 s)
    decoding = pd.read_csv(wf / "results/benchmarks/prepare_data.tsv", sep="\t")["s"].iloc[0]
    assert loading < 0.25 * decoding, (loading, decoding)
    assert arrays["x_train"].shape == (50000, 32, 32, 3) and arrays["x_train"].dtype == np.uint8
    assert arrays["x_test"].shape == (10000, 32, 32, 3)
    assert arrays["y_train"].dtype == np.int64
    assert arrays["class_names"] == CLASS_NAMES
    assert np.bincount(arrays["y_train"]).tolist() == [5000] * 10
    assert np.bincount(arrays["y_test"]).tolist() == [1000] * 10
    means = arrays["x_train"].reshape(-1, 3).mean(axis=0) / 255
    np.testing.assert_allclose(means, [0.4913, 0.4821, 0.4465], atol=0.005)
    manifest = json.loads((wf / "results/data/manifest.json").read_text())
    assert manifest["format"] == "image-folder" and manifest["canonical"] is False
    assert manifest["name"] == (
        "image-folder archive cifar10-jpeg.tar.gz (not the canonical archive)")
    assert manifest["counts"]["test"] == {c: 1000 for c in CLASS_NAMES}


def planned(wf, args):
    """Jobs per rule that ``snakemake -n`` plans (empty when there is nothing to do)."""
    proc = snakemake(wf, "-n", "--quiet", "rules", *args)
    assert proc.returncode == 0, proc.stdout[-3000:]
    return {line.split()[0]: int(line.split()[1]) for line in proc.stdout.splitlines()
            if len(line.split()) == 2 and line.split()[1].isdigit()
            and line.split()[0] != "total"}


DOWNSTREAM = {"aggregate": 1, "calibrate": 1, "figures": 1, "report": 1, "all": 1}
SHARED_RUNS = 1  # tests/configs/diverge.yaml: adam-initial_again-s0 shares adam-initial-s0


def test_editing_one_hyperparameter_reruns_only_that_optimizers_runs(smoke_run):
    wf, args = smoke_run
    # rmsprop's final variant sets rho itself, so only the initial run is touched
    plan = planned(wf, [*args, "optimizers={rmsprop: {rho: 0.8}}"])
    assert plan == {"train": 1, "evaluate": 1, **DOWNSTREAM}
    # Snakemake 9.27's --list-changes params lists every output (its ParamsChange.__or__
    # keeps the files of unchanged jobs); --summary's status column is exact.
    proc = snakemake(wf, "--summary", *args, "optimizers={rmsprop: {rho: 0.8}}")
    changed = {line.split("\t")[0] for line in proc.stdout.splitlines()
               if "params changed" in line}
    assert "results/runs/rmsprop-initial-s0/model.keras" in changed
    runs = {path.split("/")[2] for path in changed if path.startswith("results/runs/")}
    assert runs == {"rmsprop-initial-s0"}
    assert changed - {p for p in changed if p.startswith("results/runs/")} <= {
        "results/report/report.html"}  # the report shows the whole config


def test_adding_a_seed_adds_only_the_new_runs(smoke_run):
    wf, args = smoke_run
    n_runs = len(pd.read_csv(wf / "results/tables/runs.csv"))
    plan = planned(wf, [*args, "seeds=[0,1]"])
    assert plan == {"train": n_runs - SHARED_RUNS, "share_run": SHARED_RUNS, "evaluate": n_runs,
                    **DOWNSTREAM}


@contextlib.contextmanager
def appended(path: Path, text: str):
    """``path`` with ``text`` appended for the duration of the block."""
    original = path.read_text()
    path.write_text(original + text)
    try:
        yield
    finally:
        path.write_text(original)


def test_a_training_code_change_reruns_training(smoke_run):
    wf, args = smoke_run
    with appended(wf / "workflow/lib/cnnopt/train/loop.py", "\n# changed\n"):
        plan = planned(wf, args)
    n_runs = len(pd.read_csv(wf / "results/tables/runs.csv"))
    assert plan == {"train": n_runs - SHARED_RUNS, "share_run": SHARED_RUNS, "evaluate": n_runs,
                    **DOWNSTREAM}


def test_a_template_change_reruns_only_the_report(smoke_run):
    wf, args = smoke_run
    with appended(wf / "workflow/lib/cnnopt/report/template.html.j2", "\n"):
        plan = planned(wf, args)
    assert plan == {"report": 1, "all": 1}


OWN_CLAIMS = documented_claims()  # config/README.md's example


def test_your_own_claims_are_judged_and_a_bad_file_stops_before_any_job(smoke_run, tmp_path):
    wf, args = smoke_run
    own = tmp_path / "own"
    shutil.copytree(wf, own, symlinks=True)  # the finished smoke study, judged again
    (own / "my_claims.yaml").write_text(OWN_CLAIMS)
    mine = [*args, "claims=my_claims.yaml"]
    plan = planned(own, mine)  # judged again, nothing trained or scored again
    assert {"aggregate", "calibrate", "report"} <= set(plan) <= {*DOWNSTREAM}, plan
    proc = snakemake(own, "--cores", "2", *mine)
    assert proc.returncode == 0, proc.stdout[-3000:]
    claims = pd.read_csv(own / "results/tables/claims.csv")
    assert list(claims["id"]) == ["adam_over_sgd", "adam_final_value", "sgd_faster"]
    assert set(claims["family"]) == {"accuracy", "speed"}
    calibrated = pd.read_csv(own / "results/tables/calibration.csv")
    assert set(calibrated.loc[calibrated["case"] != "power", "id"]) == {*claims["id"], "any false"}
    page = (own / "results/report/report.html").read_text()
    table = page[page.index('<table id="claims-table">'):]
    table = table[:table.index("</table>")]
    assert sorted(re.findall(r'<tr id="claim-([^"]+)"', table)) == sorted(claims["id"])
    assert "2. The claims, judged" in page
    table1 = page[page.index("4.3 Table 1"):page.index("4.4 Twins")]
    assert ">paper<" not in table1 and "beside the paper" not in table1
    # a bad claims file: one line naming it and the fault, and no job runs
    for text, fault in (
            (OWN_CLAIMS.replace("b: sgd/final", "b: nadam/final"), "reads 'nadam/final', which the grid does not run"),
            (OWN_CLAIMS.replace("family: speed,", "family: speedy,"), "family 'speedy' is not declared"),
            (OWN_CLAIMS.replace("epochs_to_target", "joules"), "metric must be one of")):
        (own / "my_claims.yaml").write_text(text)
        before = {p: p.stat().st_mtime for p in (own / "results/tables").iterdir()}
        proc = snakemake(own, "--cores", "2", *mine)
        assert proc.returncode != 0
        errors = [line for line in proc.stdout.splitlines() if "invalid claims" in line]
        assert len(errors) == 1 and fault in errors[0] and "my_claims.yaml" in errors[0], proc.stdout[-2000:]
        assert {p: p.stat().st_mtime for p in (own / "results/tables").iterdir()} == before


# Library files whose edits are replayed through Snakemake: the training code, a claim's
# wording, a module that every stage imports, one the figures alone run. Which rules import
# which file is pinned, for every file, by tests/test_codeversion.py; this test shows that the
# code versions reach Snakemake's params trigger.
EDITED = ("train/loop.py", "judge/claims.yaml", "common/files.py", "figures/names.py")


def test_editing_a_library_file_reruns_exactly_the_rules_that_run_it(smoke_run):
    from cnnopt.common import codeversion

    wf, args = smoke_run
    lib = wf / "workflow/lib/cnnopt"
    runs = {rule: set(codeversion.closure(script, lib)) for rule, script in rule_scripts(wf).items()}
    summary = [line.split("\t") for line in snakemake(wf, "--summary", *args).stdout.splitlines()
               if "\t" in line]
    in_dag = {row[summary[0].index("rule")] for row in summary[1:]}  # the smoke DAG's rules
    jobs_of = {}  # library file -> the rules planned again when it is edited
    for name in EDITED:
        path = lib / name
        with appended(path, "\n# edited\n"):
            proc = snakemake(wf, "--summary", *args)
        assert proc.returncode == 0, proc.stdout[-3000:]
        rows = [line.split("\t") for line in proc.stdout.splitlines() if "\t" in line]
        header = rows[0]
        jobs_of[name] = {row[header.index("rule")] for row in rows[1:]
                         if "params changed" in row[header.index("status")]}
        assert jobs_of[name] == {rule for rule, used in runs.items()
                                 if path in used and rule in in_dag}, name
    assert jobs_of["train/loop.py"] == {"train"} and jobs_of["judge/claims.yaml"] >= {"aggregate"}
    assert "figures" not in jobs_of["judge/claims.yaml"]  # rewording a claim redraws no figure
    assert jobs_of["common/files.py"] >= {"train", "evaluate", "aggregate", "report"}
    assert jobs_of["figures/names.py"] == {"figures", "report"}


def test_snakemake_report_holds_every_figure_and_table_with_its_caption(smoke_run):
    wf, args = smoke_run
    proc = snakemake(wf, "--report", "results/report.zip", *args)
    assert proc.returncode == 0, proc.stdout[-3000:]
    with zipfile.ZipFile(wf / "results/report.zip") as archive:
        names = {Path(n).name for n in archive.namelist()}
        page = archive.read("report/report.html").decode()
    captions = {}
    for match in re.finditer(r'"filename": "([^"]+)".{0,400}?"caption": ("(?:[^"\\]|\\.)*")', page):
        captions[match.group(1)] = re.sub(r"<[^>]+>", "", json.loads(match.group(2))).split()
    expected = {"report.html": "report", "claims.csv": "claims", "runs.csv": "runs",
                "table1.csv": "table1", "ablation.csv": "ablation", "manifest.json": "manifest",
                "strata.csv": "strata", "calibration.csv": "calibration",
                **{f"{name}.png": name for name in ("val_accuracy_vs_epoch", "val_accuracy_vs_seconds",
                                                    "final_accuracy", "lr_schedules", "confusion_best")},
                **{f"optimizer_{o}.png": "optimizer" for o in ("adam", "sgd", "rmsprop", "adamax")}}
    for filename, caption in expected.items():
        assert filename in names, filename
        text = (wf / f"report/captions/{caption}.rst").read_text().replace("``", "").split()
        assert captions.get(filename) == text, filename
    # grouped as the HTML report is, each item labelled
    categories = json.loads(re.search(r"var categories = (\{.*?\});\n", page, re.S).group(1))
    placed = {Path(path).name: (category, sub) for category, subs in categories.items()
              for sub, paths in subs.items() for path in paths}
    labels = {Path(path).name: result["labels"] for path, result in json.loads(
        re.search(r"var results = (\{.*?\});\n", page, re.S).group(1)).items()}
    assert set(placed) == set(expected) and all(labels[name] for name in expected)
    assert {placed[n][0] for n in ("claims.csv", "strata.csv", "calibration.csv")} == {"1. Claims"}
    assert {placed[n][0] for n in ("table1.csv", "ablation.csv", "runs.csv")} == {"2. Table 1"}
    for o in ("adam", "sgd", "rmsprop", "adamax"):
        assert placed[f"optimizer_{o}.png"] == ("3. Figures", "Per optimizer")
        assert labels[f"optimizer_{o}.png"] == {"optimizer": o}
    assert placed["final_accuracy.png"] == ("3. Figures", "Comparisons")
    assert [placed[n][0] for n in ("report.html", "manifest.json")] == ["5. The report", "6. Data"]
    # the workflow's own description, rendered with the config
    assert "The grid was 1 seed(s) per run" in page


#: Injected at the top of a copy of the report: records errors and, once the page has
#: loaded, writes what a reader would see into a <pre> that --dump-dom prints.
BROWSER_PROBE = """<script>
window.__errors = [];
window.addEventListener("error", e => window.__errors.push(String(e.message || (e.target && e.target.src) || e)), true);
const __error = console.error.bind(console);
console.error = (...a) => { window.__errors.push(a.join(" ")); __error(...a); };
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const scrolls = el => { for (; el; el = el.parentElement) {
    if (["auto", "scroll"].includes(getComputedStyle(el).overflowX)) return true; } return false; };
  const page = document.documentElement.clientWidth;
  const out = document.createElement("pre");
  out.id = "cnnopt-probe";
  out.textContent = JSON.stringify({
    images: images.length,
    broken: images.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt),
    cut_tables: Array.from(document.querySelectorAll("table"))
      .filter(t => t.getBoundingClientRect().right > page + 1 && !scrolls(t.parentElement))
      .map(t => t.id || t.rows[0].textContent.slice(0, 40)),
    errors: window.__errors});
  document.body.appendChild(out);
});
</script>"""


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("no Chromium on PATH (.ci/run installs Debian's chromium; see /tmp/cnnopt-apt-chromium.log)")


@pytest.mark.browser
def test_report_opens_in_a_browser_with_every_image_decoded(smoke_run, tmp_path):
    wf, _ = smoke_run
    browser = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,900"]
    report = wf / "results/report/report.html"
    shot = tmp_path / "report.png"
    proc = subprocess.run([*browser, f"--screenshot={shot}", report.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", proc.stderr[-2000:]
    probed = tmp_path / "probed.html"
    probed.write_text(report.read_text().replace("<head>", "<head>" + BROWSER_PROBE, 1))
    proc = subprocess.run([*browser, "--virtual-time-budget=10000", "--dump-dom", probed.as_uri()],
                          capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="cnnopt-probe">(.*?)</pre>', proc.stdout, re.S)
    assert found, proc.stderr[-2000:]
    seen = json.loads(html.unescape(found.group(1)))
    assert seen["images"] >= 9 and seen["broken"] == [], seen
    assert seen["errors"] == [] and seen["cut_tables"] == [], seen
