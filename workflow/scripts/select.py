"""One optimizer's selection file in one search (rule select): the last round of its choice,
cnnopt.tuning.select.final_choice.

snakemake.input[0]     results/tuning/{search}/{optimizer}/round{round}.json, the last round
snakemake.output[0]    results/tuning/{search}/{optimizer}.json
"""

from cnnopt.common import logs
from cnnopt.tuning.select import final_choice

logs.setup(snakemake.log[0])
final_choice(snakemake.input[0], snakemake.output[0])
