# Configuration: validated against workflow/schemas/config.schema.yaml (defaults filled in),
# then expanded into the run table that every other rule module reads.

import hashlib
import json
import sys
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

LIB = Path(workflow.basedir) / "workflow" / "lib"
sys.path.insert(0, str(LIB))

from cnnopt import config as cnnconfig
from cnnopt.data import is_url
from cnnopt.errors import ConfigError

try:
    _validated = cnnconfig.validate(config)
except ConfigError as _error:
    raise WorkflowError(f"invalid configuration: {_error}") from None
config.clear()
config.update(_validated)

RUNS = cnnconfig.expand_runs(config)
OPTIMIZERS_WITH_FINAL = sorted({s["optimizer"] for s in RUNS.values() if s["role"] == "final"})
RUN_DIR = "results/runs/{optimizer}-{variant}-s{seed}"


wildcard_constraints:
    optimizer="[a-z][a-z0-9_]*",
    variant="[a-z][a-z0-9_]*",
    seed=r"\d+",


def run_spec(wildcards):
    """The resolved spec of the run named by the wildcards, as canonical JSON."""
    rid = cnnconfig.run_id(wildcards.optimizer, wildcards.variant, int(wildcards.seed))
    if rid not in RUNS:
        raise WorkflowError(f"run {rid} is not in the configured grid")
    return json.dumps(RUNS[rid], sort_keys=True)


def code_version(*modules):
    """A hash of library modules: editing one reruns the jobs that use it (params trigger)."""
    digest = hashlib.sha256()
    for name in modules:
        digest.update((LIB / "cnnopt" / f"{name}.py").read_bytes())
    return digest.hexdigest()[:16]


def file_version(name):
    """A hash of a data file of the library (e.g. claims.yaml), like code_version."""
    return hashlib.sha256((LIB / "cnnopt" / name).read_bytes()).hexdigest()[:16]


def run_files(name):
    """``name`` (e.g. "metrics.json") of every run in the grid."""
    return [f"results/runs/{rid}/{name}" for rid in RUNS]


def download_name(url):
    """A safe local file name for the archive at ``url``."""
    name = PurePosixPath(urlparse(url).path).name or "dataset"
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
