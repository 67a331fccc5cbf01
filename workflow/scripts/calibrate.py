"""Simulate the decision rules' error rates and power (rule calibrate).

snakemake.input.strata   results/tables/strata.csv (each stratum's observed spread)
snakemake.output[0]      results/tables/calibration.csv
snakemake.params.verdicts   the config's verdicts block; .seeds the study's seed count
snakemake.log[0]         the rule log
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "lib"))  # noqa: F821

from cnnopt.common import logs  # noqa: E402
from cnnopt.judge.calibration import calibrate, read_strata  # noqa: E402
from cnnopt.judge.verdicts import merged  # noqa: E402

log = logs.setup(snakemake.log[0])  # noqa: F821
table = calibrate(read_strata(snakemake.input.strata), int(snakemake.params.seeds),  # noqa: F821
                  merged(dict(snakemake.params.verdicts)), snakemake.output[0])  # noqa: F821
log.info("calibration: %d rows of operating characteristics", len(table))
