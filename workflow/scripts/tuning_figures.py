"""Validation accuracy against learning rate, one figure per search (rule tuning_figures).

snakemake.input.candidates  results/tables/tuning_candidates.csv
snakemake.output.figures    results/figures/tuning_{search}.png, one per search
snakemake.params.searches   the searches, in the order of the outputs
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "lib"))

from cnnopt import logs
from cnnopt.figures import tuning_curves

logs.setup(snakemake.log[0])
for search, out in zip(snakemake.params.searches, snakemake.output.figures, strict=True):
    tuning_curves(snakemake.input.candidates, search, out)
