import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # training reads the data folder only, never the hub

from qatgrid.grid import Run
from qatgrid.io import setup_logging
from qatgrid.train import clear_state, train_run

setup_logging(snakemake.log[0])
run = Run(**snakemake.params.run)
train_run(run, {"train": snakemake.params.train}, str(Path(snakemake.input.meta).parent),
          str(Path(snakemake.output.metrics).parent), snakemake.params.state_dir, threads=snakemake.threads)
clear_state(snakemake.params.state_dir)
