import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # training reads the data folder only, never the hub

from qatgrid.logs import exit_without_teardown, setup_logging
from qatgrid.runfiles import GroupFiles
from qatgrid.runs import Run
from qatgrid.train import train_group
from qatgrid.trunks import plan_branches

setup_logging(snakemake.log[0])
members = [Run(**run) for run in snakemake.params.members]
cfg = {
    "train": snakemake.params.train,
    "logging": snakemake.params.logging,
    "compile_cache": snakemake.config["compile_cache"],
}
# The same branch points as the segment jobs of train.trunk_jobs: segments (qatgrid.trunks).
branches = plan_branches(members, snakemake.params.train)
group = GroupFiles(snakemake.wildcards.trunk)  # the rule's output is group.done (rules/train.smk)
# Which weight files a run keeps comes from the config, not from params: it changes no result,
# and params are rerun triggers (config/README.md, outputs.weights).
train_group(
    members, branches, cfg, str(Path(snakemake.input.meta).parent), group, threads=snakemake.threads,
    outputs=snakemake.config.get("outputs", {}),
)  # fmt: skip
exit_without_teardown()
