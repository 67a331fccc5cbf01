# Configuration: validated against workflow/schemas/config.schema.yaml (defaults filled in),
# then expanded into the run table that every other rule module reads.

import json
import os
import re
from pathlib import Path, PurePosixPath
from types import SimpleNamespace
from urllib.parse import urlparse

# The library is the installed cnnopt package (pip install . from a clone, or from the
# repository's address; requirements.txt installs it editable). Nothing is read from this
# repository's working tree: used as a module from github(...) or gitfile(...) (README, "Use it
# in your own project"), Snakemake serves the rule files, scripts and envs from its source
# cache, and outputs (results/) stay relative to the working directory.
try:
    import cnnopt
except ImportError:
    raise WorkflowError(
        "the cnnopt package is not installed in Snakemake's Python: pip install it from this "
        "repository (README: pip install -r requirements.txt, or pip install git+<address>@<tag>)"
    ) from None
# The workflow scripts, wherever Snakemake reads this workflow from (a folder, a git source).
SCRIPTS = workflow.current_basedir.join("../scripts")

from cnnopt.common import codeversion
from cnnopt.common.registry import RUN_DIR, RUN_FILES, TUNED
from cnnopt.config import grid, schema, searches
from cnnopt.figures.names import FIGURES as FIGURE_NAMES, optimizer_figure_name, tuning_figure_name
from cnnopt.data.cifar10 import is_url
from cnnopt.common.errors import CnnoptError, ConfigError
from cnnopt.judge.claims import check_arms, load_claims, read_claims

try:
    _validated = schema.validate(config)
except ConfigError as _error:
    raise WorkflowError(f"invalid configuration: {_error}") from None
config.clear()
config.update(_validated)

# The study's runs (the grid: what aggregate, figures and report read), then the tuning
# block's learning-rate candidates and tuned runs (workflow/rules/tuning.smk).
STUDY_RUNS = grid.expand_runs(config)
TUNING_RUNS = searches.expand_tuning(config)
RUNS = STUDY_RUNS | TUNING_RUNS
# A run whose spec equals an earlier run's but for its names is not trained again: rule
# share_run copies the trained run's folder under its name (cnnopt.config.grid.shared_runs).
SHARED = grid.shared_runs(RUNS)
TRAINED = [rid for rid in RUNS if rid not in SHARED]
# Candidates are chosen on validation accuracy and never scored on the test set.
EVALUATED = [rid for rid, spec in RUNS.items() if spec.get("score_test", True)]
# The claims the claims table judges: the paper's, or the user's own file (config `claims`),
# checked against the grid before any job runs.
CLAIMS_FILE = [config["claims"]] if config["claims"] else []  # an input of the judging rules
try:
    CLAIMS = read_claims(config["claims"]) if config["claims"] else load_claims()
    if config["claims"]:
        check_arms(
            CLAIMS,
            {f"{s['optimizer']}/{s['variant']}" for s in STUDY_RUNS.values()},
            config["claims"],
        )
except CnnoptError as _error:
    raise WorkflowError(f"invalid claims: {_error}") from None
OPTIMIZERS_WITH_FINAL = sorted(
    {s["optimizer"] for s in STUDY_RUNS.values() if s["role"] == "final"}
)
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


def tracking(wildcards):
    """The ``tracking`` config (MLflow) and the config files in the order they were layered,
    for cnnopt.common.tracking. An object, not a dict: Snakemake's params trigger compares
    builtin values only, so where the runs are tracked reruns nothing (like ``threads``)."""
    given = [str(f) for f in workflow.overwrite_configfiles]  # --configfile, layered last
    layered = [str(f) for f in workflow.configfiles if str(f) not in given] + given
    return SimpleNamespace(**config["tracking"], configfiles=[shown_path(f) for f in layered])


def code_version(script):
    """A hash of every file of the installed cnnopt package that workflow/scripts/``script``
    imports, directly or not, and of the script (read with ast: cnnopt.common.codeversion). As
    a param, editing any of them reruns the rule's jobs (params trigger). The script is read
    through Snakemake's source cache, so a module from a git source hashes the same way."""
    return codeversion.version(workflow.sourcecache.get_path(SCRIPTS.join(script)))


def shown_path(path):
    """``path`` relative to the working directory when it lies inside it, else absolute."""
    path = Path(path).resolve()
    return os.path.relpath(path) if path.is_relative_to(Path.cwd()) else str(path)


def run_files(name, runs=STUDY_RUNS):
    """``name`` (e.g. "metrics.json") of every run in ``runs`` (default: the grid's)."""
    return [f"{RUN_DIR.format(run=rid)}/{name}" for rid in runs]


def run_inputs(runs=STUDY_RUNS):
    """The files that cnnopt.common.runs.read_run reads from each run folder, as named inputs
    (specs, metrics, evaluations, histories): what a table, figure or report rule declares."""
    return {key: run_files(name, runs) for key, name in RUN_FILES.items()}


def download_name(url):
    """A safe local file name for the archive at ``url``."""
    name = PurePosixPath(urlparse(url).path).name or "dataset"
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


# The tuning block (config/future.yaml; rules in tuning.smk): searches, selection files, tables.
# Its helpers stay here: Snakemake's linter wants a rule module free of functions.
SEARCHES = config["tuning"]["searches"]
TUNING_CHOICE = "results/tuning/{search}/{optimizer}.json"
TUNING_TABLES = {
    name: f"results/tables/{name}.csv" for name in ("tuning_candidates", "tuned", "tuned_claims")
}
TUNING_FIGURES = {
    tuning_figure_name(search): f"results/figures/{tuning_figure_name(search)}.png"
    for search in SEARCHES
}
TUNED_RUNS = searches.tuned_runs(TUNING_RUNS)


def tuned_choice(wildcards):
    """The selection file a tuned run takes its learning rate from ([] for other runs)."""
    spec = RUNS.get(wildcards.run, {})
    if spec.get("role") != TUNED:
        return []
    return TUNING_CHOICE.format(search=spec["search"], optimizer=spec["optimizer"])


def search_candidates(wildcards):
    """Run id -> learning rate of the candidates of one optimizer in one search."""
    return searches.tuning_candidates(RUNS, wildcards.search, wildcards.optimizer)
