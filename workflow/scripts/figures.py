"""Draw the report's figures.

snakemake.input.metrics            list of results/runs/{run_id}/metrics.json (run folder = parent;
                                   history.csv, run.json and evaluation.json are read beside it)
snakemake.input.table1             results/tables/table1.csv
snakemake.input.summary            results/tables/summary.json (names the best run)
snakemake.output.optimizer_<name>  results/figures/optimizer_<name>.png, one per optimizer
                                   (the named outputs that figure_optimizer reads an
                                   optimizer from)
snakemake.output.val_accuracy_vs_epoch, .val_accuracy_vs_seconds, .final_accuracy,
snakemake.output.lr_schedules, .confusion_best      one PNG each
snakemake.log[0]                   the rule log
"""

from pathlib import Path

from cnnopt.common import logs
from cnnopt.figures.draw import FIGURES, figure_optimizer, make_all

logs.setup(snakemake.log[0])
make_all(
    [Path(p).parent for p in snakemake.input.metrics],
    snakemake.input.table1,
    snakemake.input.summary,
    {name: getattr(snakemake.output, name) for name in FIGURES},
    {figure_optimizer(name): path for name, path in snakemake.output.items()
     if figure_optimizer(name)},
)
