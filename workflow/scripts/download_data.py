"""Download the data archive and verify its checksum (rule download_data)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "lib"))

from cnnopt.data import cifar10 as data
from cnnopt.common import logs

logs.setup(snakemake.log[0])

data.fetch(snakemake.params.url, Path(snakemake.output[0]), snakemake.params.checksum,
           snakemake.params.retries)
