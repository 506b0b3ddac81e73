from pathlib import Path

from qatgrid.grid import Run
from qatgrid.io import setup_logging
from qatgrid.train import clear_state, train_run

setup_logging(snakemake.log[0])
run = Run(**snakemake.params.run)
# The compile cache's folder comes from the config, not from params: where a cache lives
# never changes a result, and params are rerun triggers.
train_run(run, {"train": snakemake.params.train, "compile_cache": snakemake.config["compile_cache"]},
          str(Path(snakemake.input.meta).parent),
          str(Path(snakemake.output.metrics).parent), snakemake.params.state_dir, threads=snakemake.threads)
clear_state(snakemake.params.state_dir)
