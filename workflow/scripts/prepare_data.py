"""Decode the data source into cached arrays and a manifest (rule prepare_data)."""

from pathlib import Path

from cnnopt.common import logs
from cnnopt.data import cifar10 as data

logs.setup(snakemake.log[0])

data.prepare(Path(snakemake.input.source), Path(snakemake.output.arrays),
             Path(snakemake.output.manifest), snakemake.params.checksum,
             snakemake.params.source_label)
