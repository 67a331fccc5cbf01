# Configuration: validated against workflow/schemas/config.schema.yaml (defaults filled in),
# then expanded into the run table that every other rule module reads.

import json
import re
import sys
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

LIB = Path(workflow.basedir) / "workflow" / "lib"
sys.path.insert(0, str(LIB))

from cnnopt import codeversion
from cnnopt import config as cnnconfig
from cnnopt.figure_names import FIGURES as FIGURE_NAMES, optimizer_figure_name, tuning_figure_name
from cnnopt.data import is_url
from cnnopt.errors import ConfigError

try:
    _validated = cnnconfig.validate(config)
except ConfigError as _error:
    raise WorkflowError(f"invalid configuration: {_error}") from None
config.clear()
config.update(_validated)

# The study's runs (the grid: what aggregate, figures and report read), then the tuning
# block's learning-rate candidates and tuned runs (workflow/rules/tuning.smk).
STUDY_RUNS = cnnconfig.expand_runs(config)
TUNING_RUNS = cnnconfig.expand_tuning(config)
RUNS = STUDY_RUNS | TUNING_RUNS
# A run whose spec equals an earlier run's but for its names is not trained again: rule
# share_run copies the trained run's folder under its name (cnnopt.config.shared_runs).
SHARED = cnnconfig.shared_runs(RUNS)
TRAINED = [rid for rid in RUNS if rid not in SHARED]
# Candidates are chosen on validation accuracy and never scored on the test set.
EVALUATED = [rid for rid, spec in RUNS.items() if spec.get("score_test", True)]
OPTIMIZERS_WITH_FINAL = sorted(
    {s["optimizer"] for s in STUDY_RUNS.values() if s["role"] == "final"}
)
RUN_DIR = "results/runs/{run}"
# The groups of `snakemake --report` (in the order of the HTML report's sections).
REPORT_CATEGORIES = {
    "claims": "1. Claims",
    "table1": "2. Table 1",
    "figures": "3. Figures",
    "tuning": "4. Tuning (future work)",
    "report": "5. The report",
    "data": "6. Data",
}


def one_of(names):
    """A wildcard constraint matching exactly ``names`` (nothing when it is empty)."""
    return "|".join(re.escape(n) for n in names) or "(?!)"


wildcard_constraints:
    run=one_of(RUNS),


def spec_json(wildcards):
    """The resolved spec of the run named by the wildcards, as canonical JSON."""
    if wildcards.run not in RUNS:
        raise WorkflowError(f"run {wildcards.run} is not in the configured grid")
    return json.dumps(RUNS[wildcards.run], sort_keys=True)


def code_version(script):
    """A hash of workflow/scripts/``script`` and of every library file it imports, directly
    or not (read with ast: cnnopt.codeversion). As a param, editing any of them reruns the
    rule's jobs (params trigger)."""
    return codeversion.version(Path(workflow.basedir) / "workflow" / "scripts" / script)


def run_files(name, runs=STUDY_RUNS):
    """``name`` (e.g. "metrics.json") of every run in ``runs`` (default: the grid's)."""
    return [f"results/runs/{rid}/{name}" for rid in runs]


def download_name(url):
    """A safe local file name for the archive at ``url``."""
    name = PurePosixPath(urlparse(url).path).name or "dataset"
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


# The tuning block (config/future.yaml; rules in tuning.smk): searches, selection files, tables.
SEARCHES = config["tuning"]["searches"]
TUNING_CHOICE = "results/tuning/{search}/{optimizer}.json"
TUNING_TABLES = {
    name: f"results/tables/{name}.csv" for name in ("tuning_candidates", "tuned", "tuned_claims")
}
TUNING_FIGURES = {
    tuning_figure_name(search): f"results/figures/{tuning_figure_name(search)}.png"
    for search in SEARCHES
}
TUNED_RUNS = cnnconfig.tuned_runs(TUNING_RUNS)
# What the report reads of the tuning study (nothing without searches).
TUNING_REPORT_TABLES = list(TUNING_TABLES.values()) if SEARCHES else []
# Every product of the tuning study (targets of rule all; nothing without searches).
TUNING_PRODUCTS = TUNING_REPORT_TABLES + list(TUNING_FIGURES.values())


def tuned_choice(wildcards):
    """The selection file a tuned run takes its learning rate from ([] for other runs)."""
    spec = RUNS.get(wildcards.run, {})
    if spec.get("role") != cnnconfig.TUNED:
        return []
    return TUNING_CHOICE.format(search=spec["search"], optimizer=spec["optimizer"])


def search_candidates(wildcards):
    """Run id -> learning rate of the candidates of one optimizer in one search."""
    return cnnconfig.tuning_candidates(RUNS, wildcards.search, wildcards.optimizer)
