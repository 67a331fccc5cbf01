"""Validation accuracy against learning rate, one figure per search, and the performance
profile of the times to target (rule tuning_figures).

snakemake.input.candidates  results/tables/tuning_candidates.csv
snakemake.input.time        results/tables/time_to_target.csv
snakemake.output.tuning_<search>  results/figures/tuning_<search>.png, one per search
snakemake.output.performance_profile  the tuned runs' times to the validation target
snakemake.params.searches   the searches
"""


import math

import pandas as pd

from cnnopt.common import logs
from cnnopt.figures.draw import performance_profile, tuning_curves
from cnnopt.figures.names import PROFILE_FIGURE, tuning_figure_name
from cnnopt.tuning.profile import performance_profile as profile_of

logs.setup(snakemake.log[0])
for search in snakemake.params.searches:
    tuning_curves(snakemake.input.candidates, search, getattr(snakemake.output, tuning_figure_name(search)))
times = pd.read_csv(snakemake.input.time)
measure = "steps_to_target"
performance_profile(profile_of(times, measure) if len(times) else pd.DataFrame(),
                    float(times["target"].iloc[0]) if len(times) else math.nan, measure,
                    getattr(snakemake.output, PROFILE_FIGURE))
