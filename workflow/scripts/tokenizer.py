from qatgrid.data import build_tokenizer
from qatgrid.io import setup_logging

setup_logging(snakemake.log[0])
build_tokenizer(snakemake.params.data, snakemake.output[0])
