"""Score one rung of one optimizer's search and promote the best (rule rung):
cnnopt.tuning.select.rung.

snakemake.input.metrics     the entrants' results/runs/{run_id}/metrics.json
snakemake.input.previous    the previous rung's file (rungs after the first)
snakemake.params.chains     learning rate -> its run ids, rung by rung (the declared candidates)
snakemake.params.keep       the fraction a rung promotes
snakemake.params.metric     best_epoch | last_epoch (validation accuracy; never the test set)
snakemake.output[0]         results/tuning/{search}/{optimizer}/rung{k}.json
"""

from pathlib import Path

from cnnopt.common import logs
from cnnopt.tuning.select import rung

logs.setup(snakemake.log[0])
rung(
    snakemake.wildcards.search,
    snakemake.wildcards.optimizer,
    int(snakemake.wildcards.k),
    snakemake.params.chains,
    snakemake.input.get("previous"),
    {Path(p).parent.name: Path(p) for p in snakemake.input.metrics},
    snakemake.params.metric,
    float(snakemake.params.keep),
    snakemake.output[0],
)
