from pathlib import Path

from qatgrid.grid import Run
from qatgrid.io import setup_logging
from qatgrid.train import clear_state, train_run

setup_logging(snakemake.log[0])
run = Run(**snakemake.params.run)
cfg = {"train": snakemake.params.train, "logging": snakemake.params.logging}
train_run(run, cfg, str(Path(snakemake.input.meta).parent), str(Path(snakemake.output.metrics).parent),
          snakemake.params.state_dir, threads=snakemake.threads)
clear_state(snakemake.params.state_dir)
