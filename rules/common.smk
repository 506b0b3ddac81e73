# Shared helpers: config validation, the grid (from qatgrid.runs.expand_runs, the
# one source of truth), and the input functions that say which runs each output needs.
# Kept cheap: every cluster job re-parses this file, so nothing here imports torch.
import functools
import math
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from qatgrid.data import data_files, data_key  # noqa: E402
from qatgrid.config import TrainConfig, load_layers  # noqa: E402
from qatgrid.resources import job_resources  # noqa: E402
from qatgrid.runs import RUN_ID_WILDCARD, expand_runs  # noqa: E402
from qatgrid.plots.registry import FIGURES as FIGURE_REGISTRY, FileText, penalty_runs, probed_runs  # noqa: E402
from qatgrid.plots.registry import settings as figure_settings  # noqa: E402
from qatgrid.runfiles import GroupFiles, RunFiles, TrunkFiles  # noqa: E402
from qatgrid.plan import build_plan, job_train_section  # noqa: E402
from qatgrid.trunks import TRUNK_NAME_WILDCARD  # noqa: E402


def config_layers():
    """What Snakemake merged into `config`, in order: the workflow's configfile (config/config.yaml),
    each --configfile, then --config; as (name, mapping) pairs."""
    from snakemake.common.configfile import load_configfile

    settings = workflow.config_settings
    overrides = [str(path) for path in workflow.overwrite_configfiles]
    files = [] if settings.replace_workflow_config else [
        str(f) for f in workflow.configfiles if str(Path(f).absolute()) not in overrides
    ]
    files += overrides
    layers = []
    for path in files:
        rel = os.path.relpath(path)
        layers.append((path if rel.startswith("..") else rel, load_configfile(path)))
    if settings.config:
        layers.append(("--config", dict(settings.config)))
    return layers


# The config as every entry point loads it (qatgrid.config.load_layers): Snakemake's merge but for
# the audit block, which is a config file's whole (merge_config_layers says why), the schema's
# defaults and its checks, then check_config's. CONFIG_SOURCES names the file each section came from.
_loaded, CONFIG_SOURCES = load_layers(config_layers(), Path(workflow.basedir) / "config" / "schema" / "config.schema.yaml")
config.clear()
config.update(_loaded)

# The runs and their training jobs, computed once (qatgrid.plan): the rules only look them up.
PLAN = build_plan(config)
RUNS = PLAN.by_id
FIGURES = list(FIGURE_REGISTRY)

wildcard_constraints:
    run=RUN_ID_WILDCARD,
    trunk=TRUNK_NAME_WILDCARD,


RUN_FILES = RunFiles("{run}")  # the training rule's file patterns
TRUNK_FILES = TrunkFiles("{run}")  # the trunk rule's: the segment that ends at run {run}'s branch step
GROUP_FILES = GroupFiles("{trunk}")  # train.trunk_jobs: group: the job that trains group {trunk}
# run id -> where it branches off its group's shared trunk (none with train.shared_trunk: false)
BRANCHES = PLAN.branches
# train.trunk_jobs: group: one job per group (trunk name -> its runs in order of branch step)
TRUNK_GROUP_JOBS = PLAN.layout == "group"
GROUPS = PLAN.groups
GROUP_OF = PLAN.group_of


def canonical(value):
    """A config (or part) with its mappings' keys sorted, for params: Snakemake compares params by
    their repr, and the key order of its merged config depends on which keys a --configfile sets."""
    if isinstance(value, dict):
        return {k: canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return value


# A training job's `train` parameters (its rerun trigger): the config's, less the keys that act
# only through what the plan makes of them (qatgrid.plan.job_train_section): switching trunk
# layouts reruns nothing, and a GPU of another size (train.gpu_memory_gib) only the runs whose
# micro-batch count changes. The count, decided here by TrainConfig.plan, is what training uses.
TRAIN_CONFIG = TrainConfig.from_config(config)


def train_params(wildcards):
    """The `train` section of a training job: of its run, or with train.trunk_jobs: group its group's."""
    runs = GROUPS[wildcards.trunk] if "trunk" in wildcards.keys() else [RUNS[wildcards.run]]
    return _job_train_section(tuple(run.id for run in runs))


@functools.cache
def _job_train_section(run_ids):
    return canonical(job_train_section(config, [RUNS[rid] for rid in run_ids], TRAIN_CONFIG))


DATA_KEY = data_key(config["data"])
DATA_DIR = f"results/data/{DATA_KEY}"


def data_outputs():
    """Every file of the configured data folder (shards, byte counts, tokenizer, meta)."""
    files = data_files(config["data"])
    names = files["train"] + files["val"] + [files["val_bytes"], files["tokenizer"], files["meta"]]
    return [f"{DATA_DIR}/{name}" for name in names]


def train_inputs(wildcards):
    """The data folder through its last-written file (meta.json appears only once every shard, the
    tokenizer and the byte counts are in place: one input per job keeps the DAG small; training
    validates the files it reads), and for a branching run its trunk's state at the branch step."""
    inputs = {"meta": f"{DATA_DIR}/meta.json"}
    if wildcards.run in BRANCHES:
        trunk = TrunkFiles(BRANCHES[wildcards.run].start[0])
        inputs.update(branch=str(trunk.branch_state), branch_checksum=str(trunk.branch_checksum))
    return inputs


def trunk_inputs(wildcards):
    """The data folder (as train_inputs), and the state where the segment starts: the previous
    member's branch step."""
    inputs = {"meta": f"{DATA_DIR}/meta.json"}
    previous = BRANCHES[wildcards.run].previous
    if previous is not None:
        trunk = TrunkFiles(previous)
        inputs.update(previous=str(trunk.branch_state), previous_checksum=str(trunk.branch_checksum))
    return inputs


def data_resources():
    return {"threads": 2, "mem_mb": 2000, "runtime_min": 60, **config["resources"].get("data", {})}


def run_ids(select=None):
    """Ids of the runs `select(runs, config)` picks (a selector of qatgrid.plots.registry), or all."""
    runs = list(RUNS.values())
    return [run.id for run in (select(runs, config) if select else runs)]


def metrics_files(select=None):
    return [str(RunFiles(rid).metrics) for rid in run_ids(select)]


def probe_files():
    return [str(RunFiles(rid).probe) for rid in run_ids(probed_runs)]


def figure_inputs(wildcards):
    """A figure reads the metrics (or probe files) of only the runs it draws, and its caption template."""
    figure = FIGURE_REGISTRY[wildcards.name]
    ids = [run.id for run in figure.runs(RUNS.values(), config)]
    kind = "probes" if figure.probes else "metrics"
    files = [str(getattr(RunFiles(rid), "probe" if figure.probes else "metrics")) for rid in ids]
    return {kind: files, "template": f"workflow/report/{wildcards.name}.rst"}


def job_run(wildcards):
    """The run whose size sets a training job's resources: the run itself, or a group's first."""
    return GROUPS[wildcards.trunk][0] if "trunk" in wildcards.keys() else RUNS[wildcards.run]


def train_resources(wildcards, attempt, key):
    value = job_resources(config, job_run(wildcards), attempt)[key]
    if key == "runtime" and "trunk" in wildcards.keys():  # a group's job trains several run-lengths
        value = math.ceil(value * PLAN.run_lengths(wildcards.trunk))
    return value


def train_threads(wildcards):
    return train_resources(wildcards, 1, "threads")


def _train_resource(key):
    return lambda wildcards, attempt: train_resources(wildcards, attempt, key)


# What every training rule (train, trunk, train_group) asks the scheduler for, written once.
TRAIN_RESOURCES = {"runtime": _train_resource("runtime"), "mem_mb": _train_resource("mem_mb")}


def job_tasks(rule, name):
    """The tasks of a training rule's job (qatgrid.plan), as plain values for params: they change
    only when what the job trains does (a run's axes, its steps, its branch points)."""
    return [task.as_dict() for task in PLAN.job[rule, name].tasks]


def group_done(wildcards):
    """train.trunk_jobs: group: a run's outputs wait for its group's job."""
    return str(GroupFiles(GROUP_OF[wildcards.run]).done)


def pack_group(wildcards):
    """Small runs share a GPU: on a cluster, `group-components: pack=K` (profiles/slurm) bundles
    K of them into one job that runs them side by side. Local runs ignore groups."""
    if job_run(wildcards).size not in config["resources"]["pack_sizes"]:
        return None
    check_pack_runs()
    return "pack"


def check_pack_runs():
    """The plan gives each packed run 1/resources.pack_runs of the GPU's memory, so that must be
    the K of the profile's `group-components: pack=K` when one is given. Checked here, as the DAG
    is built: Snakemake sets its group settings only after it has parsed the workflow."""
    given = workflow.group_settings.group_components.get("pack")
    # Without train.gpu_memory_gib no step is split, whatever shares the GPU: nothing to disagree on.
    if given is not None and given != config["resources"]["pack_runs"] and config["train"]["gpu_memory_gib"]:
        raise ValueError(
            f"group-components: pack={given} (the profile or --group-components) packs {given} runs to a GPU job, "
            f"but resources.pack_runs is {config['resources']['pack_runs']}: the runs' micro-batches are planned for "
            "1/resources.pack_runs of train.gpu_memory_gib; set the two equal"
        )


def table_report(path):
    """A table the HTML report (snakemake --report) shows under "Tables", with the tables' caption."""
    return report(path, caption="../workflow/report/table.rst", category="Tables")


def all_targets():
    """Every table the rules write (results/tables/, read from the rules themselves: rule all is
    defined after every include) and every figure of the registry."""
    tables = [str(f) for rule in workflow.rules for f in rule.output if str(f).startswith("results/tables/")]
    return tables + [f"results/figures/{f}.{ext}" for f in FIGURES for ext in ("pdf", "png")]
