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
from cnnopt.common.registry import RUN_DIR, RUN_FILES, TUNED, run_id
from cnnopt.config import grid, schema, searches
from cnnopt.figures.names import (
    FIGURES as FIGURE_NAMES,
    PROFILE_FIGURE,
    optimizer_figure_name,
    tuning_figure_name,
)
from cnnopt.data.cifar10 import is_url
from cnnopt.common.errors import CnnoptError, ConfigError
from cnnopt.judge.claims import check_arms, load_claims, read_claims
from cnnopt.judge.rules import Rules
from cnnopt.judge.sequential import read_plan

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
# The sequential design (verdicts.sequential, workflow/rules/sequential.smk): the seeds its
# looks may add to the study's arms; which of them train, each look's plan decides.
try:
    SEQUENTIAL_RUNS = grid.sequential_runs(config, STUDY_RUNS)
    SEQUENTIAL = Rules.of(config["verdicts"]).sequential
except CnnoptError as _error:
    raise WorkflowError(f"invalid configuration: {_error}") from None
RUNS = STUDY_RUNS | TUNING_RUNS | SEQUENTIAL_RUNS
# A study of searches alone (an empty grid, config/future.yaml): no aggregate, calibration or
# study figures; the report describes the tuned runs and answers the future work.
GRID = bool(STUDY_RUNS)
# A run whose spec equals an earlier run's but for its names is not trained again: rule
# share_run copies the trained run's folder under its name (cnnopt.config.grid.shared_runs).
SHARED = grid.shared_runs(RUNS)
TRAINED = [rid for rid in RUNS if rid not in SHARED]
# What a training writes into its run folder (rule train; share_run and adopt copy them).
TRAIN_OUTPUTS = dict(
    model=f"{RUN_DIR}/model.keras",
    best_model=f"{RUN_DIR}/model_best.keras",  # the epoch of the best validation accuracy
    history=f"{RUN_DIR}/history.csv",
    metrics=f"{RUN_DIR}/metrics.json",
    spec=f"{RUN_DIR}/run.json",
)
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
    name: f"results/tables/{name}.csv"
    for name in ("tuning_candidates", "tuned", "tuned_claims", "time_to_target")
}
TUNING_FIGURES = {
    tuning_figure_name(search): f"results/figures/{tuning_figure_name(search)}.png"
    for search in SEARCHES
} | {PROFILE_FIGURE: f"results/figures/{PROFILE_FIGURE}.png"}
TUNED_RUNS = searches.tuned_runs(TUNING_RUNS)
# The study's runs that the tuned claims set the tuned runs against: each search's budget
# variant (the hand-tuned final recipes), for the optimizers it searches.
REFERENCE_RUNS = [
    rid
    for rid, spec in STUDY_RUNS.items()
    for name, search in SEARCHES.items()
    if spec["variant"] == search.get("budget") and spec["optimizer"] in search["optimizers"]
]
# Successive halving (cnnopt.tuning.halving): a rung's scores and promotions, each round of the
# choice at the final budget (a round after the first tries one rate beyond the edge), and the
# runs that keep their final state for the next rung or continue an earlier rung's.
TUNING_RUNG = "results/tuning/{search}/{optimizer}/rung{k}.json"
TUNING_ROUND = "results/tuning/{search}/{optimizer}/round{round}.json"
RUN_STATE = f"{RUN_DIR}/state"
KEEP_STATE = [rid for rid, spec in TUNING_RUNS.items() if spec.get("keep_state")]
# A tuned run on the candidates' seed is the winner's search run, copied (rule adopt).
ADOPTED = [rid for rid in TUNED_RUNS if RUNS[rid]["seed"] == config["tuning"]["seed"]]
TRAINED_PLAIN = [rid for rid in TRAINED if rid not in KEEP_STATE and rid not in ADOPTED]


def search_chains(search, optimizer, extensions=True):
    """Learning rate -> its runs, rung by rung, of ``optimizer`` in ``search``; without
    ``extensions``, only the declared candidates."""
    chains = searches.search_rates(RUNS, search, optimizer)
    if extensions:
        return chains
    return {rate: ids for rate, ids in chains.items() if not RUNS[ids[0]].get("extension")}


def search_rungs(search, optimizer):
    """How many rungs the candidates of ``optimizer`` in ``search`` train through."""
    return len(next(iter(search_chains(search, optimizer).values())))


def rung_inputs(wildcards):
    """A rung's inputs: the metrics of its entrants (every candidate at rung 0; later, those
    the previous rung promoted: read from its file, a checkpoint) and that file."""
    k = int(wildcards.k)
    chains = search_chains(wildcards.search, wildcards.optimizer, extensions=False)
    if k == 0:
        entrants = [ids[0] for ids in chains.values()]
        return {"metrics": run_files(RUN_FILES["metrics"], entrants)}
    previous = checkpoints.rung.get(
        search=wildcards.search, optimizer=wildcards.optimizer, k=k - 1
    ).output[0]
    with open(previous, encoding="utf-8") as fh:
        promoted = set(json.load(fh)["promoted"])
    entrants = [ids[k] for ids in chains.values() if ids[k - 1] in promoted]
    return {"metrics": run_files(RUN_FILES["metrics"], entrants), "previous": previous}


def round_inputs(wildcards):
    """A round's inputs: round 0, every rung's file; later, the previous round's file and the
    final-budget metrics of the extension it asked for."""
    r = int(wildcards.round)
    if r == 0:
        return {
            "rungs": [
                TUNING_RUNG.format(search=wildcards.search, optimizer=wildcards.optimizer, k=k)
                for k in range(search_rungs(wildcards.search, wildcards.optimizer))
            ]
        }
    previous = checkpoints.choose.get(
        search=wildcards.search, optimizer=wildcards.optimizer, round=r - 1
    ).output[0]
    with open(previous, encoding="utf-8") as fh:
        rate = json.load(fh)["extend_to"]
    chain = search_chains(wildcards.search, wildcards.optimizer)[rate]
    return {"previous": previous, "metrics": run_files(RUN_FILES["metrics"], chain[-1:])}


def last_round(wildcards):
    """The round file whose choice asks for no further extension (walking the rounds)."""
    r = 0
    while True:
        path = checkpoints.choose.get(
            search=wildcards.search, optimizer=wildcards.optimizer, round=r
        ).output[0]
        with open(path, encoding="utf-8") as fh:
            if json.load(fh)["extend_to"] is None:
                return path
        r += 1


def continued_state(wildcards):
    """The state a rung's run continues from: the previous rung's ([] for other runs)."""
    previous = RUNS.get(wildcards.run, {}).get("continues")
    return RUN_STATE.format(run=previous) if previous else []


def adopted_inputs(wildcards):
    """A tuned run on the candidates' seed: its selection file (a checkpoint) and the files of
    the winner's run at the final budget."""
    spec = RUNS[wildcards.run]
    choice = checkpoints.select.get(search=spec["search"], optimizer=spec["optimizer"]).output[0]
    with open(choice, encoding="utf-8") as fh:
        winner = json.load(fh)["run_id"]
    return {"choice": choice, **{k: p.format(run=winner) for k, p in TRAIN_OUTPUTS.items()}}


def tuned_choice(wildcards):
    """The selection file a tuned run takes its learning rate from ([] for other runs)."""
    spec = RUNS.get(wildcards.run, {})
    if spec.get("role") != TUNED:
        return []
    return TUNING_CHOICE.format(search=spec["search"], optimizer=spec["optimizer"])


# The sequential design (rules in sequential.smk): each look's plan and claims table; the runs
# the study's tables, figures and report read are the first look's seeds and what the looks
# added (without the design: the grid's).
LOOK_PLAN = "results/sequential/look{k}.json"
LOOK_CLAIMS = "results/sequential/look{k}_claims.csv"


def look_plan(k):
    """Look ``k``'s plan (a checkpoint: its file exists once this returns)."""
    return checkpoints.look.get(k=k).output.plan


def planned_runs(plan_path):
    """The run ids of every arm's seeds after the plan at ``plan_path``."""
    arms = read_plan(plan_path)["arms"]
    return [run_id(*arm.split("/", 1), seed) for arm, seeds in arms.items() for seed in seeds]


def look_inputs(wildcards):
    """Look k's inputs: the runs it judges (the grid's at the first look; later, the seeds
    look k - 1 planned, read from its plan: a checkpoint) and look k - 1's files."""
    k = int(wildcards.k)
    if k == 1:
        return run_inputs()
    previous = look_plan(k - 1)
    return {
        **run_inputs(planned_runs(previous)),
        "previous_plan": previous,
        "previous_claims": LOOK_CLAIMS.format(k=k - 1),
    }


def looks_done():
    """The looks of the sequential design up to the one that plans no further look."""
    done, k = [], 1
    while True:
        done.append(k)
        if read_plan(look_plan(k))["done"]:
            return done
        k += 1


def study_inputs(wildcards):
    """The run files of the study's tables, figures and report (``run_inputs``: the grid's,
    or the tuned runs in a study of searches alone), and with the sequential design on,
    every look's plan and claims table."""
    if not SEQUENTIAL.on:
        runs = STUDY_RUNS if GRID else TUNED_RUNS
        return {**run_inputs(runs), "look_plans": [], "look_claims": []}
    looks = looks_done()
    return {
        **run_inputs(planned_runs(LOOK_PLAN.format(k=looks[-1]))),
        "look_plans": [LOOK_PLAN.format(k=k) for k in looks],
        "look_claims": [LOOK_CLAIMS.format(k=k) for k in looks],
    }
