"""Decode the data source into cached arrays and a manifest (rule prepare_data)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "lib"))

from cnnopt.data import cifar10 as data
from cnnopt.common import logs

logs.setup(snakemake.log[0])

data.prepare(Path(snakemake.input.source), Path(snakemake.output.arrays),
             Path(snakemake.output.manifest), snakemake.params.checksum,
             snakemake.params.source_label)
