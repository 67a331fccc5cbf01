"""Simulate the decision rules' error rates and power on this study's claims (rule calibrate).

snakemake.input.runs      results/tables/runs.csv (the study's arms and their roles)
snakemake.output[0]       results/tables/calibration.csv
snakemake.params.verdicts the config's verdicts block (the rules and verdicts.calibration)
snakemake.log[0]          the rule log
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "lib"))  # noqa: F821

from cnnopt.common import logs  # noqa: E402
from cnnopt.judge.calibration import calibrate, read_runs_table  # noqa: E402
from cnnopt.judge.claims import load_claims  # noqa: E402
from cnnopt.judge.rules import Rules  # noqa: E402

log = logs.setup(snakemake.log[0])  # noqa: F821
table = calibrate(load_claims(), read_runs_table(snakemake.input.runs),  # noqa: F821
                  Rules.of(dict(snakemake.params.verdicts)), snakemake.output[0],  # noqa: F821
                  workers=snakemake.threads)  # noqa: F821
log.info("calibration: %d rows of operating characteristics", len(table))
