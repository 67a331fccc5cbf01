"""Validation accuracy against learning rate, one figure per search (rule tuning_figures).

snakemake.input.candidates  results/tables/tuning_candidates.csv
snakemake.output.tuning_<search>  results/figures/tuning_<search>.png, one per search
snakemake.params.searches   the searches
"""


from cnnopt.common import logs
from cnnopt.figures.draw import tuning_curves
from cnnopt.figures.names import tuning_figure_name

logs.setup(snakemake.log[0])
for search in snakemake.params.searches:
    tuning_curves(snakemake.input.candidates, search, getattr(snakemake.output, tuning_figure_name(search)))
