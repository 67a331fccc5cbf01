"""Aggregate every run into claims.csv, runs.csv, table1.csv, ablation.csv, strata.csv and
summary.json.

snakemake.input.metrics      list of results/runs/{run_id}/metrics.json (run folder = parent)
snakemake.input.evaluations  list of results/runs/{run_id}/evaluation.json (same runs)
snakemake.output.claims, .runs, .table1, .ablation, .summary, .strata   the aggregate files
snakemake.params.verdicts, .scale  the config's verdicts block and scale
snakemake.log[0]             the rule log
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "lib"))  # noqa: F821

from cnnopt.common import logs  # noqa: E402
from cnnopt.judge.aggregate import aggregate  # noqa: E402
from cnnopt.judge.rules import Rules  # noqa: E402

logs.setup(snakemake.log[0])  # noqa: F821
aggregate(
    [Path(p).parent for p in snakemake.input.metrics],  # noqa: F821
    snakemake.output.runs,  # noqa: F821
    snakemake.output.table1,  # noqa: F821
    snakemake.output.ablation,  # noqa: F821
    snakemake.output.summary,  # noqa: F821
    snakemake.output.claims,  # noqa: F821
    snakemake.output.strata,  # noqa: F821
    rules=Rules.of(dict(snakemake.params.verdicts)),  # noqa: F821
    scale=snakemake.params.scale,  # noqa: F821
)
