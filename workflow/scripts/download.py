from pathlib import Path

from qatgrid.data.parameter_golf import download
from qatgrid.logs import setup_logging

setup_logging(snakemake.log[0])
download(snakemake.params.data, str(Path(snakemake.output[0]).parent))
