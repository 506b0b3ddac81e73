import logging

from qatgrid.data import build_token_files
from qatgrid.io import setup_logging

setup_logging(snakemake.log[0])
meta = build_token_files(snakemake.params.data, snakemake.input.tokenizer, snakemake.output.train,
                         snakemake.output.val, snakemake.output.meta)
logging.getLogger("qatgrid.data").info("tokens: %s", {k: v["tokens"] for k, v in meta["splits"].items()})
