import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # training reads the data folder only, never the hub

from qatgrid.logs import exit_without_teardown, setup_logging
from qatgrid.plan import Job, Task
from qatgrid.train import run_job

# The one training script: rules train, trunk and train_group each run their job of the plan.
setup_logging(snakemake.log[0])
# The job's tasks come from the plan the Snakefile built (params.tasks): nothing is planned here.
name = snakemake.wildcards.trunk if snakemake.rule == "train_group" else snakemake.wildcards.run
job = Job(snakemake.rule, name, tuple(Task.from_dict(task) for task in snakemake.params.tasks))
# The compile cache's folder and the weight files a run keeps (outputs.weights) come from the
# config, not from params: neither changes a result, and params are rerun triggers.
cfg = {
    "train": snakemake.params.train,
    "logging": snakemake.params.logging if "logging" in snakemake.params.keys() else {},
    "compile_cache": snakemake.config["compile_cache"],
}
run_job(job, cfg, str(Path(snakemake.input.meta).parent), threads=snakemake.threads,
        outputs=snakemake.config.get("outputs", {}))  # fmt: skip
exit_without_teardown()  # the outputs are written; torch's teardown would add ~0.45 s to every job
