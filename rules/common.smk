# Shared helpers: config validation, the grid (from qatgrid.grid.expand_runs, the
# one source of truth), and the input functions that say which runs each output needs.
# Kept cheap: every cluster job re-parses this file, so nothing here imports torch.
import sys
from pathlib import Path

from snakemake.utils import validate

sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from qatgrid.data import data_files, data_key  # noqa: E402
from qatgrid.grid import RUN_ID_WILDCARD, check_config, job_resources  # noqa: E402
from qatgrid.plots.registry import FIGURES as FIGURE_REGISTRY, FileText, settings as figure_settings  # noqa: E402

validate(config, Path(workflow.basedir) / "config" / "schema" / "config.schema.yaml")

RUNS = {run.id: run for run in check_config(config)}
FIGURES = list(FIGURE_REGISTRY)
TABLES = ["runs.parquet", "runs.csv", "loss_by_warmdown.csv", "optimal_warmdown.csv", "paired_tests.csv",
          "regimes.csv", "robustness.csv", "penalty.csv", "penalty_fit.csv", "probes.csv", "probe_ratio.csv",
          "footprint.csv", "boundary_map.csv", "variance_components.csv"]
BASE_ARM = {"optimizer": "muon", "schedule": "linear", "length_mult": 1}

wildcard_constraints:
    run=RUN_ID_WILDCARD,


DATA_KEY = data_key(config["data"])
DATA_DIR = f"results/data/{DATA_KEY}"


def data_outputs():
    """Every file of the configured data folder (shards, byte counts, tokenizer, meta)."""
    files = data_files(config["data"])
    names = files["train"] + files["val"] + [files["val_bytes"], files["tokenizer"], files["meta"]]
    return [f"{DATA_DIR}/{name}" for name in names]


def data_resources():
    return {"threads": 2, "mem_mb": 2000, "runtime_min": 60, **config["resources"].get("data", {})}


def run_ids(predicate=lambda run: True):
    return [rid for rid, run in RUNS.items() if predicate(run)]


def metrics_files(predicate=lambda run: True):
    return [f"results/runs/{rid}/metrics.json" for rid in run_ids(predicate)]


def is_base_arm(run):
    return all(getattr(run, k) == v for k, v in BASE_ARM.items())


def penalty_runs(run):
    return is_base_arm(run) and run.bits in (16, config["analysis"]["penalty_bits"])


def probed_runs(run):
    return run.bits in (16, config["probe"]["grid_bits"])


def probe_files():
    return [f"results/runs/{rid}/probe.json" for rid in run_ids(probed_runs)]


def figure_inputs(wildcards):
    """A figure reads the metrics (or probe files) of only the runs it draws, and its caption template."""
    figure = FIGURE_REGISTRY[wildcards.name]
    ids = [run.id for run in figure.runs(RUNS.values(), config)]
    kind = "probes" if figure.probes else "metrics"
    name = "probe.json" if figure.probes else "metrics.json"
    return {kind: [f"results/runs/{rid}/{name}" for rid in ids], "template": f"workflow/report/{wildcards.name}.rst"}


def train_resources(wildcards, attempt, key):
    return job_resources(config, RUNS[wildcards.run], attempt)[key]


def pack_group(wildcards):
    """Small runs share a GPU: on a cluster, `group-components: pack=K` (profiles/slurm) bundles
    K of them into one job that runs them side by side. Local runs ignore groups."""
    return "pack" if RUNS[wildcards.run].size in config["resources"]["pack_sizes"] else None


def all_targets():
    return ([f"results/tables/{t}" for t in TABLES]
            + [f"results/figures/{f}.{ext}" for f in FIGURES for ext in ("pdf", "png")])
