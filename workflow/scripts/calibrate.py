"""Simulate the decision rules' error rates and power on this study's claims (rule calibrate).

snakemake.input.runs      results/tables/runs.csv (the study's arms and their roles)
snakemake.output[0]       results/tables/calibration.csv
snakemake.params.verdicts the config's verdicts block (the rules and verdicts.calibration)
snakemake.params.claims   the user's own claims file (None: the paper's claims)
snakemake.log[0]          the rule log
"""


from cnnopt.common import logs
from cnnopt.judge.calibration import calibrate, read_runs_table
from cnnopt.judge.claims import load_claims, read_claims
from cnnopt.judge.rules import Rules

log = logs.setup(snakemake.log[0])
claims = read_claims(snakemake.params.claims) if snakemake.params.claims else load_claims()
table = calibrate(claims, read_runs_table(snakemake.input.runs),
                  Rules.of(dict(snakemake.params.verdicts)), snakemake.output[0],
                  workers=snakemake.threads)
log.info("calibration: %d rows of operating characteristics", len(table))
