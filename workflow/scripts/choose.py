"""One round of one optimizer's choice at the final budget (rule choose):
cnnopt.tuning.select.choose.

snakemake.input.rungs       round 0: every rung's file, in order
snakemake.input.previous    later rounds: the previous round's file
snakemake.input.metrics     later rounds: the extension's metrics.json at the final budget
snakemake.params.chains     learning rate -> its run ids, rung by rung (extensions too)
snakemake.params.extensions how many extensions the search allows
snakemake.params.metric     best_epoch | last_epoch (validation accuracy; never the test set)
snakemake.output[0]         results/tuning/{search}/{optimizer}/round{round}.json
"""

from pathlib import Path

from cnnopt.common import logs
from cnnopt.tuning.select import choose

logs.setup(snakemake.log[0])
choose(
    snakemake.wildcards.search,
    snakemake.wildcards.optimizer,
    int(snakemake.wildcards.round),
    list(snakemake.input.get("rungs", [])),
    snakemake.input.get("previous"),
    {Path(p).parent.name: Path(p) for p in snakemake.input.get("metrics", [])},
    snakemake.params.chains,
    snakemake.params.metric,
    int(snakemake.params.extensions),
    snakemake.output[0],
)
