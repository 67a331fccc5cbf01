"""Choose one optimizer's learning rate in one search (rule select): cnnopt.tuning.select.select.

snakemake.input.metrics    the candidates' results/runs/{run_id}/metrics.json
snakemake.params.rates     run id -> learning rate of each candidate
snakemake.params.metric    best_epoch | last_epoch (validation accuracy; never the test set)
snakemake.output[0]        results/tuning/{search}/{optimizer}.json
"""

from pathlib import Path

from cnnopt.common import logs
from cnnopt.tuning.select import select

logs.setup(snakemake.log[0])
select(
    snakemake.wildcards.search,
    snakemake.wildcards.optimizer,
    dict(snakemake.params.rates),
    {Path(p).parent.name: Path(p) for p in snakemake.input.metrics},
    snakemake.params.metric,
    snakemake.output[0],
)
