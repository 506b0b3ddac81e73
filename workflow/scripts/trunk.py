import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # training reads the data folder only, never the hub

from qatgrid.checkpoint import clear_state
from qatgrid.logs import exit_without_teardown, setup_logging
from qatgrid.runfiles import TrunkFiles
from qatgrid.runs import Run
from qatgrid.train import train_trunk

setup_logging(snakemake.log[0])
run = Run(**snakemake.params.run)
trunk = TrunkFiles(run.id)  # the rule's outputs are its files (rules/train.smk)
cfg = {"train": snakemake.params.train, "compile_cache": snakemake.config["compile_cache"]}
previous = Path(snakemake.input.previous) if "previous" in snakemake.input.keys() else None
train_trunk(run, cfg, str(Path(snakemake.input.meta).parent), trunk, snakemake.params.step, previous,
            threads=snakemake.threads)  # fmt: skip
clear_state(trunk.state_dir)
exit_without_teardown()
