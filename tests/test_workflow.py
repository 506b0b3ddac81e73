"""The workflow as users drive it: dry-runs, config errors, lint, and one full run on a tiny config."""

import re
import shutil

import pandas as pd
import pytest
import yaml
from conftest import REPO, load_default_config, merged_config, snakemake, workflow_copy

from qatgrid.plan import build_plan
from qatgrid.plots.registry import FIGURES
from qatgrid.runs import expand_runs


@pytest.fixture(scope="module")
def wf(tmp_path_factory):
    d = workflow_copy(tmp_path_factory.mktemp("wf"))
    shutil.copy(REPO / "tests" / "tiny.yaml", d / "tiny.yaml")
    return d


def planned_jobs(wf, *args) -> dict[str, int]:
    out = snakemake(wf, "-n", "--quiet", "rules", *args).stdout
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", out, re.M)}


def planned_outputs(wf, *args) -> set[str]:
    out = snakemake(wf, "-n", "--printshellcmds", *args).stdout
    return set(re.findall(r"output: (.+)", out))


def test_dry_run_plans_one_train_job_per_grid_run(wf):
    jobs = planned_jobs(wf)
    config = load_default_config()
    # train.trunk_jobs: group: a training job per shared trunk (or lone run), a local job per run
    assert jobs["run_outputs"] == len(expand_runs(config)) == 86 and jobs["train_group"] == 35
    assert "probe" not in jobs  # the training job writes each run's probe
    assert jobs["tokens"] == 1 and "tokenizer" not in jobs  # one pass over the corpus


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "benchmarks" / "configs").glob("*.yaml")))
def test_benchmark_grids_plan_the_runs_they_declare(wf, name):
    """benchmarks/configs/ times today's code on other grids: each must still pass the schema and the
    config checks on top of config/config.yaml, and plan exactly the runs its audit block declares."""
    override = yaml.safe_load((REPO / "benchmarks" / "configs" / name).read_text())
    jobs = planned_jobs(wf, "--configfile", str(REPO / "benchmarks" / "configs" / name))
    assert jobs["run_outputs"] == override["audit"]["expected_runs"]["total"]  # one per run (trunk_jobs: group)
    merged = merged_config(str(REPO / "benchmarks" / "configs" / name))
    assert len(expand_runs(merged)) == jobs["run_outputs"]


def test_one_figure_needs_a_strict_subset(wf):
    full = planned_outputs(wf)
    penalty = planned_outputs(wf, "results/figures/penalty_law.pdf")
    assert penalty < full
    assert not any("/int8/" in o or "/int4/" in o or "tables/probe" in o for o in penalty)
    assert any("/int6/" in o for o in penalty) and any("/fp16/" in o for o in penalty)


@pytest.mark.parametrize(
    "override, message",
    [
        ("train:\n  stepz: 5\n", r"Additional properties are not allowed \('stepz' was unexpected\)"),
        (
            "data:\n  vocab_size: 100\n",
            r"Failed validating 'minimum' in schema\['properties'\]\['data'\]\['properties'\]\['vocab_size'\]",
        ),
        (
            "train:\n  batches: shuffled\n",
            r"'shuffled' is not one of \['stream', 'random'\][\s\S]*"
            r"Failed validating 'enum' in schema\['properties'\]\['train'\]\['properties'\]\['batches'\]",
        ),
        (
            "outputs:\n  weights: all\n",
            r"'all' is not one of \['both', 'prewarmdown', 'final', 'none'\][\s\S]*"
            r"Failed validating 'enum' in schema\['properties'\]\['outputs'\]\['properties'\]\['weights'\]",
        ),
        (
            "outputs:\n  weights_dtype: int8\n",
            r"'int8' is not one of \['fp32', 'bf16', 'fp16'\][\s\S]*"
            r"Failed validating 'enum' in schema\['properties'\]\['outputs'\]\['properties'\]\['weights_dtype'\]",
        ),
        ("train:\n  stream_spans: 3\n", r"train.stream_spans \(3\) must divide every run's batch size; 4 sequences"),
        ("analysis:\n  heldout_sizes: ['350M']\n", r"analysis.heldout_sizes names '350M', which no sweep trains"),
        ("train:\n  warmup_steps: 500\n", r"train.warmup_steps \(500\) must be < train.steps \(100\)"),
        (
            "sweeps:\n  - {phase: p, bits: [16, int5], sizes: ['0.2M'], warmdown_fracs: [0.33], seeds: [0]}\n",
            r"sweeps\[0\]\.bits: unknown bit-width 'int5'",
        ),
        (
            "sweeps:\n  - {phase: p, bits: [16, 6], sizes: ['0.2M'], warmdown_fracs: [0.33], seeds: [0],"
            " data_seeds: [1]}\n",
            r"sweeps\[0\]\.data_seeds has 1 level\(s\) \[1\]; separating init-seed from data-order variance"
            r" needs at least two",
        ),
        (
            "sweeps:\n  - {phase: p, bits: [16, 6], sizes: ['0.2M'], warmdown_fracs: [0.33], seeds: [0],"
            " batch_sizes: [3]}\n",
            r"sweeps\[0\]\.batch_sizes: 3 does not divide the held token budget",
        ),
    ],
)
def test_bad_config_fails_before_any_job_naming_the_key(wf, override, message):
    (wf / "bad.yaml").write_text(override)
    proc = snakemake(wf, "-n", "--configfile", "bad.yaml", check=False)
    assert proc.returncode != 0
    assert re.search(message, proc.stdout + proc.stderr), proc.stderr[-2000:]
    assert not (wf / "results").exists()


def test_lint_is_clean(wf):
    proc = snakemake(wf, "--lint")
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout + proc.stderr


def test_end_to_end_tiny(wf):
    snakemake(wf, "--cores", "2", "--configfile", "tiny.yaml")
    tables, figures = wf / "results" / "tables", wf / "results" / "figures"
    runs = pd.read_parquet(tables / "runs.parquet")
    assert len(runs) == 16 + 4 + 4 + 2 + 4 + 1 and runs["run_id"].is_unique
    assert pd.read_csv(tables / "runs.csv").shape == runs.shape
    assert (~runs["diverged"]).all()
    assert runs["final_val_loss"].between(2.0, 5.8).all()  # below ln(300) = 5.70 plus noise: learned a little
    # the batch-2 ternary run holds the token budget: twice the steps
    assert (runs["steps"] == 12 * runs["length_mult"] * 4 // runs["batch_size"]).all()
    assert (runs["tokens"] == 12 * runs["length_mult"] * 4 * 32).all()
    assert runs.loc[runs["batch_size"] == 2, "run_id"].tolist() == [
        "phase6-lowbit/ternary/0.1M/wd33/lr1x/muon-linear-x1/seed0-bs2"
    ]
    assert set(runs["length_mult"]) == {1, 2}
    best = pd.read_csv(tables / "optimal_warmdown.csv")
    assert len(best) == 2 * 2 + 1 + 2 + 1 + 1 + 1  # (bits x size) cells of each phase
    assert best["best_warmdown"].isin([0.33, 0.5]).all()
    paired = pd.read_csv(tables / "paired_tests.csv")
    assert (paired["n_pairs"] == 2).all() and paired["p"].between(0, 1).all()
    fit = pd.read_csv(tables / "penalty_fit.csv")
    assert fit["heldout"].sum() == 1 and fit["n_fit_points"].iloc[0] == 4
    ratio = pd.read_csv(tables / "probe_ratio.csv")
    assert ratio["ratio"].between(0.5, 2.0).all() and ratio["qat_distance"].between(0, 0.5).all()
    foot = pd.read_csv(tables / "footprint.csv").set_index("scope")
    assert foot.loc["done on cpu", "runs"] == 31 and foot.loc["whole grid (projected)", "runs"] == 31
    assert foot.loc["done on cpu", "energy_kwh"] > 0
    var = pd.read_csv(tables / "variance_components.csv")
    assert var[["phase", "n_init_seeds", "n_data_seeds"]].values.tolist() == [["phase6-data", 2, 2]]
    assert var["var_residual"].item() > 0
    robust = pd.read_csv(tables / "robustness.csv")
    assert list(robust["arm"]) == ["adamw/cosine/x2"] and robust["base_phase"].item() == "phase2"
    assert len(FIGURES) == 7
    for name in FIGURES:  # every figure of the registry, as rule all asks for
        assert (figures / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"
        assert (figures / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    snakemake(wf, "--configfile", "tiny.yaml", "--report", "results/report.html")
    html = (wf / "results" / "report.html").read_text()
    assert "penalty_law.pdf" in html and "paired_tests.csv" in html
    # Nothing left to do afterwards, and no resumable state left behind.
    assert "Nothing to be done" in snakemake(wf, "-n", "--configfile", "tiny.yaml").stdout
    assert not list((wf / "results" / "state").rglob("last.pt"))


def test_slurm_profile_packs_small_runs_and_sizes_resources(wf):
    """The cluster plan of the paper grid: small sizes packed 8 to a group job, one GPU (gres)
    per training job, per-size time limits from config/paper.yaml."""
    out = snakemake(wf, "-n", "--profile", "profiles/slurm", "--configfile", "config/paper.yaml").stdout
    paper = merged_config("paper.yaml")
    packed = [r for r in expand_runs(paper) if r.size in paper["resources"]["pack_sizes"]]
    # pack=8 bundles 8 connected components: a shared trunk with its segments and branches is one
    branches = build_plan(paper).branches
    components = {branches[r.id].trunk if r.id in branches else r.id for r in packed}
    assert len(components) > 8 and out.count("Group job pack") == -(-len(components) // 8)
    train_jobs = re.findall(
        r"rule train:\n(?:\s+\w+: .*\n)*?\s+wildcards: run=(\S+)\n(?:\s+\w+: .*\n)*?\s+resources: (.*)", out
    )
    assert len(train_jobs) == 1345
    for run_id, resources in train_jobs:
        size = run_id.split("/")[2]
        assert "gres=gpu:1" in resources and "slurm_extra=--signal=USR2@120" in resources
        assert f"runtime={paper['resources']['sizes'][size]['runtime_min']}," in resources + ","


def test_the_gpu_memory_reaches_training_jobs_only_through_their_micro_batches():
    """Every training job of the default and the paper grid takes its runs' planned micro-batch
    count as a parameter (qatgrid.plan.job_train_section), not train.gpu_memory_gib: a GPU size
    that keeps every count changes no job's parameters, a fixed count changes every job's, and on
    the paper grid a 40 GiB GPU changes exactly the jobs whose count changes."""
    from qatgrid.config import load_config
    from qatgrid.plan import job_train_section

    def sections(plan, config):
        return [job_train_section(config, [task.run for task in job.tasks]) for job in plan.jobs]

    default = load_default_config()
    plan = build_plan(default)
    before = sections(plan, default)
    assert {s["micro_batches"] for s in before} == {1} and not {"gpu_memory_gib", "trunk_jobs"} & set(before[0])
    assert sections(plan, load_config(overrides={"train": {"gpu_memory_gib": 1000.0}})) == before
    two = sections(plan, load_config(overrides={"train": {"micro_batches": 2}}))
    assert all(a != b and b["micro_batches"] == 2 for a, b in zip(before, two))

    paper = merged_config("paper.yaml")
    plan = build_plan(paper)
    h100 = sections(plan, paper)
    a100 = sections(plan, load_config([REPO / "config" / "paper.yaml"], {"train": {"gpu_memory_gib": 39.5}}))
    changed = {job.tasks[0].run.size for job, a, b in zip(plan.jobs, h100, a100) if a != b}
    kept = {job.tasks[0].run.size for job, a, b in zip(plan.jobs, h100, a100) if a == b}
    assert changed and kept and not changed & kept  # a size's jobs change together, or not at all
    assert all((a == b) == (a["micro_batches"] == b["micro_batches"]) for a, b in zip(h100, a100))


def test_changing_the_gpu_memory_reruns_only_runs_whose_micro_batches_change(tmp_path):
    """Finished runs stay done when train.gpu_memory_gib changes but their micro-batch count does
    not (1000 GiB: every tiny step still in one piece), for both kinds of training job; a count
    that does change (train.micro_batches: 2) plans their training again, naming the params."""
    wf = workflow_copy(tmp_path)
    shutil.copy(REPO / "tests" / "tiny.yaml", wf / "tiny.yaml")
    (wf / "segments.yaml").write_text("train: {trunk_jobs: segments}\n")
    (wf / "gpu.yaml").write_text("train: {gpu_memory_gib: 1000}\n")
    (wf / "two.yaml").write_text("train: {micro_batches: 2}\n")
    grouped = "results/runs/phase6-lowbit/ternary/0.1M/wd33/lr1x/muon-linear-x1/seed0-bs2/probe.json"  # train_group
    alone = "results/runs/phase5-robust/int6/0.1M/wd33/lr1x/adamw-cosine-x2/seed0/probe.json"  # rule train
    for target, layers, rule in (
        (grouped, ["tiny.yaml"], "train_group"),
        (alone, ["tiny.yaml", "segments.yaml"], "train"),
    ):
        snakemake(wf, target, "--cores", "2", "--configfile", *layers)
        out = snakemake(wf, target, "-n", "--configfile", *layers, "gpu.yaml").stdout
        assert "Nothing to be done" in out, out
        out = snakemake(wf, target, "-n", "--configfile", *layers, "two.yaml").stdout
        assert out.count(f"rule {rule}:") == 1 and "Params have changed since last execution" in out, out


def test_pack_runs_must_match_the_profiles_group_components(wf):
    """The plan gives each packed run 1/resources.pack_runs of train.gpu_memory_gib: a profile that
    packs another number of runs stops the workflow before any job, naming both settings. Without
    packed sizes, or without a GPU memory to share, there is nothing to disagree on."""
    (wf / "packed.yaml").write_text('resources: {pack_sizes: ["0.1M"]}\ntrain: {gpu_memory_gib: 8}\n')
    proc = snakemake(wf, "-n", "--group-components", "pack=4", "--configfile", "packed.yaml", check=False)
    assert proc.returncode != 0
    assert "group-components: pack=4" in proc.stdout + proc.stderr
    assert "resources.pack_runs is 1" in proc.stdout + proc.stderr
    assert snakemake(wf, "-n", "--group-components", "pack=1", "--configfile", "packed.yaml").returncode == 0
    # the shipped profile's pack=8 over the default config (no packed sizes, no GPU memory)
    assert snakemake(wf, "-n", "--group-components", "pack=8").returncode == 0
    (wf / "nomem.yaml").write_text('resources: {pack_sizes: ["0.1M"]}\n')
    assert snakemake(wf, "-n", "--group-components", "pack=4", "--configfile", "nomem.yaml").returncode == 0
