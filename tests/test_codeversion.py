"""Code versions from the imports of a script (ast), and runs shared by equal specs."""

from __future__ import annotations

import json
import modulefinder
from pathlib import Path

import pytest
from workflow_helpers import ROOT, rule_scripts

from cnnopt.common import codeversion
from cnnopt.common.errors import CnnoptError
from cnnopt.config import grid
from cnnopt.train.share import share


def _package(tmp_path, modules: dict[str, str], data: dict[str, str] | None = None):
    pkg = tmp_path / "cnnopt"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for name, text in {**modules, **(data or {})}.items():
        (pkg / name).write_text(text)
    return pkg


def test_closure_follows_absolute_relative_and_late_imports(tmp_path):
    pkg = _package(tmp_path, {
        "a.py": "from . import b\nfrom .c import thing\n",
        "b.py": "import json\n",
        "c.py": "def f():\n    from cnnopt import d  # imported inside a function\nthing = 1\n",
        "d.py": "NAME = 'claims.yaml'\n",
        "unused.py": "from . import a\n",
    }, {"claims.yaml": "- id: x\n", "other.yaml": ""})
    script = tmp_path / "script.py"
    script.write_text("import sys\nfrom cnnopt.a import thing as t\nfrom cnnopt import errors_missing\n")
    names = [p.name for p in codeversion.closure(script, pkg)]
    assert names == ["__init__.py", "a.py", "b.py", "c.py", "claims.yaml", "d.py"]


def test_closure_follows_subpackages_their_relative_imports_and_data(tmp_path):
    pkg = _package(tmp_path, {"errors.py": "", "io.py": "", "unused.py": ""})
    sub = pkg / "judge"
    sub.mkdir()
    (sub / "__init__.py").write_text('"""imports nothing"""\n')
    (sub / "decide.py").write_text("from .. import errors\nfrom . import model\nfrom .rules import X\n")
    (sub / "model.py").write_text("from ..io import read\n")
    (sub / "rules.py").write_text("X = 'claims.yaml'\n")
    (sub / "claims.yaml").write_text("- id: x\n")
    (sub / "power.py").write_text("")
    (pkg / "claims.yaml").write_text("")  # same name, other folder: not named by the package root
    script = tmp_path / "script.py"
    script.write_text("from cnnopt.judge import decide\n")
    names = [p.relative_to(pkg).as_posix() for p in codeversion.closure(script, pkg)]
    assert names == ["__init__.py", "errors.py", "io.py", "judge/__init__.py",
                     "judge/claims.yaml", "judge/decide.py", "judge/model.py", "judge/rules.py"]
    only_rules = tmp_path / "rules_only.py"
    only_rules.write_text("from cnnopt.judge.rules import X\n")
    assert [p.relative_to(pkg).as_posix() for p in codeversion.closure(only_rules, pkg)] == [
        "__init__.py", "judge/__init__.py", "judge/claims.yaml", "judge/rules.py"]
    before = codeversion.version(script, pkg)
    (sub / "power.py").write_text("# not imported\n")
    assert codeversion.version(script, pkg) == before
    (sub / "claims.yaml").write_text("- id: y\n")
    assert codeversion.version(script, pkg) != before


def test_version_changes_with_any_file_it_runs_and_only_those(tmp_path):
    pkg = _package(tmp_path, {"a.py": "from . import b\n", "b.py": "", "c.py": ""})
    script = tmp_path / "script.py"
    script.write_text("from cnnopt import a\n")
    before = codeversion.version(script, pkg)
    (pkg / "c.py").write_text("# not imported by the script\n")
    assert codeversion.version(script, pkg) == before
    (pkg / "b.py").write_text("# imported through a\n")
    assert codeversion.version(script, pkg) != before


def test_an_edit_to_a_neutral_module_reruns_nothing_but_importing_it_does(tmp_path):
    pkg = _package(tmp_path, {"a.py": "from .common import gpus\n"})
    (pkg / "common").mkdir()
    (pkg / "common" / "__init__.py").write_text("")
    (pkg / "common" / "gpus.py").write_text("SLOTS = 1\n")
    (pkg / "common" / "models.py").write_text("")
    script = tmp_path / "script.py"
    script.write_text("from cnnopt import a\n")
    before = codeversion.version(script, pkg)
    assert "common/gpus.py" in codeversion.NEUTRAL
    (pkg / "common" / "gpus.py").write_text("SLOTS = 2  # where the job runs, not what it computes\n")
    assert codeversion.version(script, pkg) == before
    (pkg / "a.py").write_text("from .common import gpus, models\n")  # a new import counts
    assert codeversion.version(script, pkg) != before


LIB = ROOT / "workflow" / "lib"

# Each rule script's import closure in the library (package __init__ files left out). A new
# import widens what reruns the script's jobs: pin it here on purpose, or drop the import.
_BASE = {"common/errors.py", "common/files.py", "common/logs.py"}
_NAMES = {"common/paper.py", "common/registry.py"}
_RUNS = _NAMES | {"common/runs.py"}  # the reader knows no decision rules (no judge/ file)
_JUDGE = _NAMES | {"judge/claims.py", "judge/claims.yaml", "judge/decide.py", "judge/metrics.py",
                   "judge/model.py", "judge/power.py", "judge/rules.py", "judge/verdicts.py"}
_CONFIG = {"config/grid.py", "config/schemafile.py", "config/searches.py"}
_TRACKING = {"common/provenance.py", "common/tracking.py"}  # optional MLflow (config tracking)
_DATA = {"data/cifar10.py", "data/splits.py"}
_SEARCH = {"tuning/halving.py", "tuning/select.py"}  # the rungs and rounds of a search
_SEQUENTIAL = {"judge/sequential.py", "config/grid.py", "config/schemafile.py"}
PINNED = {
    "download_data.py": _BASE | {"data/cifar10.py"},
    "prepare_data.py": _BASE | {"data/cifar10.py"},
    "train.py": _BASE | _TRACKING | _DATA | {
        "common/gpus.py", "common/registry.py", "common/runtime.py", "train/batches.py",
        "train/callbacks.py", "train/checkpoint.py", "train/loop.py", "train/models.py",
        "train/optimizers.py", "train/store.py", "train/tensorboard.py", "tuning/choice.py"},
    "share_run.py": _BASE | _TRACKING | {"common/registry.py", "train/share.py",
                                         "train/tensorboard.py", "tuning/choice.py"},
    "evaluate.py": _BASE | _TRACKING | _DATA | {"common/gpus.py", "common/runtime.py",
                                                "evaluate/scoring.py"},
    "select.py": _BASE | _SEARCH,
    "rung.py": _BASE | _SEARCH,
    "choose.py": _BASE | _SEARCH,
    # the sequential design's seeds follow the grid's order (config/grid.py: seed_order)
    "aggregate.py": _BASE | _RUNS | _JUDGE | _SEQUENTIAL | {"judge/aggregate.py"},
    "look.py": _BASE | _RUNS | _JUDGE | _SEQUENTIAL | {"judge/aggregate.py"},
    "calibrate.py": _BASE | _JUDGE | _SEQUENTIAL | {"judge/calibration.py"},
    "calibrate_sequential.py": _BASE | _JUDGE | _SEQUENTIAL | {"judge/calibration.py"},
    "figures.py": _BASE | _RUNS | {"figures/draw.py", "figures/names.py"},
    "tuning_figures.py": _BASE | _RUNS | {"figures/draw.py", "figures/names.py", "tuning/profile.py"},
    "tuning_tables.py": _BASE | _RUNS | _JUDGE | _CONFIG | _SEARCH | {"tuning/profile.py",
                                                                      "tuning/tables.py"},
    "report.py": _BASE | _RUNS | _JUDGE | _CONFIG | {"tuning/halving.py",
        "common/provenance.py", "figures/names.py", "judge/calibration.py", "judge/sequential.py",
        "report/deviations.yaml", "report/template.html.j2",
        "report/formatting.py", "report/future.py", "report/html.py", "report/tables.py",
        "report/text.py"},
}


def _found_by_modulefinder(script: Path) -> set[Path]:
    """The cnnopt files ``script`` runs, found by the standard library's modulefinder (not by
    codeversion's own reader), plus the data files that those modules name in their folder."""
    finder = modulefinder.ModuleFinder(path=[str(LIB)])
    finder.run_script(str(script))
    found = {Path(m.__file__) for name, m in finder.modules.items()
             if name.split(".")[0] == "cnnopt" and m.__file__}
    data = [p for p in (LIB / "cnnopt").rglob("*") if p.suffix in (".yaml", ".json", ".j2")]
    return found | {d for d in data for f in list(found)
                    if f.parent == d.parent and f'"{d.name}"' in f.read_text()}


@pytest.mark.parametrize("rule", sorted(rule_scripts()))
def test_each_rule_scripts_code_version_covers_exactly_its_import_closure(rule):
    script = rule_scripts()[rule]
    closure = set(codeversion.closure(script))
    assert closure == _found_by_modulefinder(script)  # two readers agree
    pinned = {p.relative_to(LIB / "cnnopt").as_posix() for p in closure if p.name != "__init__.py"}
    assert pinned == PINNED[script.name]


def test_every_rule_script_is_pinned_and_rewording_a_claim_redraws_no_figure():
    assert {s.name for s in rule_scripts().values()} == set(PINNED)
    assert "judge/claims.yaml" not in PINNED["figures.py"]


def _spec(**changes):
    return {"run_id": "adam-initial-s0", "optimizer": "adam", "variant": "initial", "seed": 0,
            "role": "initial", "label": "initial", "key_adjustments": "", "epochs": 8} | changes


def test_shared_runs_pair_each_copy_with_the_first_equal_spec():
    runs = {"adam-initial-s0": _spec(),
            "adam-copy-s0": _spec(run_id="adam-copy-s0", variant="copy", role="extra", label="x"),
            "adam-longer-s0": _spec(run_id="adam-longer-s0", variant="longer", epochs=9),
            "adam-copy2-s0": _spec(run_id="adam-copy2-s0", variant="copy2")}
    assert grid.shared_runs(runs) == {"adam-copy-s0": "adam-initial-s0",
                                           "adam-copy2-s0": "adam-initial-s0"}


def _trained(tmp_path, spec):
    src = {"model": tmp_path / "src/model.keras", "history": tmp_path / "src/history.csv",
           "metrics": tmp_path / "src/metrics.json", "spec": tmp_path / "src/run.json"}
    src["model"].parent.mkdir()
    src["model"].write_bytes(b"\x00weights\xff")
    src["history"].write_text("epoch,val_accuracy\n1,0.5\n")
    src["metrics"].write_text(json.dumps({"run_id": spec["run_id"], "variant": spec["variant"],
                                          "test_accuracy": 0.61}))
    src["spec"].write_text(json.dumps(spec))
    return src


def test_share_copies_the_training_under_the_runs_own_names(tmp_path):
    src = _trained(tmp_path, _spec())
    out = {k: tmp_path / "dst" / p.name for k, p in src.items()}
    share(src, _spec(run_id="adam-copy-s0", variant="copy", role="extra"), out)
    assert out["model"].read_bytes() == src["model"].read_bytes()
    metrics = json.loads(out["metrics"].read_text())
    assert metrics == {"run_id": "adam-copy-s0", "variant": "copy", "test_accuracy": 0.61,
                       "shared_with": "adam-initial-s0"}
    assert json.loads(out["spec"].read_text())["role"] == "extra"


def test_share_refuses_a_run_that_trains_differently_and_writes_nothing(tmp_path):
    src = _trained(tmp_path, _spec())
    out = {k: tmp_path / "dst" / p.name for k, p in src.items()}
    with pytest.raises(CnnoptError, match="differ in epochs"):
        share(src, _spec(run_id="adam-copy-s0", variant="copy", epochs=9), out)
    assert not (tmp_path / "dst").exists() or not any((tmp_path / "dst").iterdir())
