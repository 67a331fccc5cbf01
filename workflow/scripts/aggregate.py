"""Aggregate every run into claims.csv, runs.csv, table1.csv, ablation.csv, strata.csv and
summary.json.

snakemake.input.metrics      list of results/runs/{run_id}/metrics.json (run folder = parent)
snakemake.input.evaluations  list of results/runs/{run_id}/evaluation.json (same runs)
snakemake.output.claims, .runs, .table1, .ablation, .summary, .strata   the aggregate files
snakemake.params.verdicts, .scale  the config's verdicts block and scale
snakemake.params.claims      the user's own claims file (None: the paper's claims)
snakemake.params.threads     each training's threads (the sequential design's CPU hours)
snakemake.input.look_plans, .look_claims   the sequential design's looks (empty when it is off)
snakemake.log[0]             the rule log
"""

from pathlib import Path

from cnnopt.common import logs
from cnnopt.judge.aggregate import aggregate
from cnnopt.judge.claims import load_claims, read_claims
from cnnopt.judge.rules import Rules

logs.setup(snakemake.log[0])
aggregate(
    [Path(p).parent for p in snakemake.input.metrics],
    snakemake.output.runs,
    snakemake.output.table1,
    snakemake.output.ablation,
    snakemake.output.summary,
    snakemake.output.claims,
    snakemake.output.strata,
    rules=Rules.of(dict(snakemake.params.verdicts)),
    scale=snakemake.params.scale,
    claims=read_claims(snakemake.params.claims) if snakemake.params.claims else load_claims(),
    looks=list(zip(snakemake.input.look_plans, snakemake.input.look_claims, strict=True)),
    threads=snakemake.params.threads,
)
