import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # training reads the data folder only, never the hub

from qatgrid.checkpoint import clear_state
from qatgrid.io import write_json
from qatgrid.logs import exit_without_teardown, setup_logging
from qatgrid.probe import probe_checkpoint
from qatgrid.runfiles import RunFiles
from qatgrid.runs import Run
from qatgrid.storage import retain_weights
from qatgrid.train import train_run

setup_logging(snakemake.log[0])
run = Run(**snakemake.params.run)
files = RunFiles(run.id)  # the rule's outputs are these files (rules/train.smk)
# The compile cache's folder comes from the config, not from params: where a cache lives
# never changes a result, and params are rerun triggers.
cfg = {
    "train": snakemake.params.train,
    "logging": snakemake.params.logging,
    "compile_cache": snakemake.config["compile_cache"],
}
# A run that branches off a shared trunk starts from the trunk's state at its warmdown start.
branch = Path(snakemake.input.branch) if "branch" in snakemake.input.keys() else None
train_run(run, cfg, str(Path(snakemake.input.meta).parent), files, threads=snakemake.threads, branch=branch)
# The probe runs here rather than in a job of its own: one process start (and, on a cluster,
# one queued job) less per run, for a computation that takes milliseconds.
write_json(files.probe, probe_checkpoint(files.ckpt_prewarmdown))
# Then the weight files outputs.weights keeps, in its precision: read from the config, not params,
# so changing it reruns nothing (the weights are no declared output).
retain_weights(files, snakemake.config)
clear_state(files.state_dir)
exit_without_teardown()  # the outputs are written; torch's teardown would add ~0.45 s to every job
