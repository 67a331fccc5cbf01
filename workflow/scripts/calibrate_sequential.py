"""Simulate the sequential design's error rates and power against fixed seeds on this study's
claims (rule calibrate_sequential).

snakemake.input.runs        results/tables/runs.csv (the study's arms and their roles)
snakemake.output.errors     results/tables/sequential_calibration.csv
snakemake.output.power      results/tables/sequential_power.csv
snakemake.params.verdicts   the config's verdicts block (the rules, the looks, verdicts.calibration)
snakemake.params.claims     the user's own claims file (None: the paper's claims)
snakemake.log[0]            the rule log
"""

from cnnopt.common import logs
from cnnopt.judge.calibration import calibrate_sequential, read_runs_table
from cnnopt.judge.claims import load_claims, read_claims
from cnnopt.judge.rules import Rules

log = logs.setup(snakemake.log[0])
claims = read_claims(snakemake.params.claims) if snakemake.params.claims else load_claims()
errors, power = calibrate_sequential(
    claims, read_runs_table(snakemake.input.runs), Rules.of(dict(snakemake.params.verdicts)),
    snakemake.output.errors, snakemake.output.power, workers=snakemake.threads)
log.info("sequential calibration: %d error rows, %d power rows", len(errors), len(power))
