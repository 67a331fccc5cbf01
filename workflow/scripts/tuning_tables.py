"""The tuning study's tables (rule tuning_tables): cnnopt.tuning.tables.tables.

snakemake.input.choices      results/tuning/{search}/{optimizer}.json, every selection
snakemake.input.metrics      the tuned and reference runs' results/runs/{run_id}/metrics.json (folder = parent)
snakemake.output.tuning_candidates, .tuned, .tuned_claims, .time_to_target   the CSV tables
snakemake.params.labels      search -> label; .budgets: search -> its budget variant (the reference
                             runs); .verdicts, .scale: the config's verdicts block, scale;
                             .metric: tuning.metric (which model of every run is read)
"""

from pathlib import Path

from cnnopt.common import logs
from cnnopt.judge.rules import Rules
from cnnopt.tuning.tables import tables

logs.setup(snakemake.log[0])
tables(
    list(snakemake.input.choices),
    [Path(p).parent for p in snakemake.input.metrics],
    dict(snakemake.params.labels),
    snakemake.output.tuning_candidates,
    snakemake.output.tuned,
    snakemake.output.tuned_claims,
    snakemake.output.time_to_target,
    rules=Rules.of(dict(snakemake.params.verdicts)),
    scale=snakemake.params.scale,
    budgets=dict(snakemake.params.budgets),
    metric=snakemake.params.metric,
)
