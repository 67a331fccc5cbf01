"""Download the data archive and verify its checksum (rule download_data)."""

from pathlib import Path

from cnnopt.common import logs
from cnnopt.data import cifar10 as data

logs.setup(snakemake.log[0])

data.fetch(snakemake.params.url, Path(snakemake.output[0]), snakemake.params.checksum,
           snakemake.params.retries)
