"""Checks of the live-cluster test (tests/slurm/live_cluster.sh): the SLURM run of
tests/slurm/cluster.yaml against a local run of the same config.

    python check_cluster_run.py SLURM_WORKDIR LOCAL_WORKDIR

Exits non-zero with the failed check's message; prints what it saw otherwise.
"""
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import yaml


def fail(message: str) -> None:
    sys.exit(f"live-cluster check failed: {message}")


def scontrol_job(job_id: str) -> dict:
    out = subprocess.run(["scontrol", "show", "job", "-d", "-o", job_id], capture_output=True, text=True, check=True).stdout
    first = out.splitlines()[0]  # an array job lists one line per task; the fields we read agree
    return dict(field.split("=", 1) for field in first.split() if "=" in field)


def main(slurm_dir: Path, local_dir: Path) -> None:
    cfg = yaml.safe_load((slurm_dir / "cluster.yaml").read_text())
    packed = set(cfg["resources"]["pack_sizes"])
    metrics = [json.loads(p.read_text()) for p in sorted((slurm_dir / "results/runs").rglob("metrics.json"))]
    if len(metrics) != 8:
        fail(f"expected 8 training runs, found {len(metrics)}")

    # 1. Every run was trained inside a SLURM job that held a GPU.
    for m in metrics:
        sched = m.get("scheduler", {})
        if "slurm_job_id" not in sched:
            fail(f"{m['run_id']} did not run inside a SLURM job (no SLURM_JOB_ID): {sched}")
        if sched.get("cuda_visible_devices") != "0":
            fail(f"{m['run_id']} saw no GPU (CUDA_VISIBLE_DEVICES): {sched}")

    # 2. Job ids are in the plugin's logs: the jobs were submitted by snakemake through sbatch.
    log_paths = [str(p.relative_to(slurm_dir)) for p in (slurm_dir / ".snakemake/slurm_logs").rglob("*.log")]
    for m in metrics:
        sched = m["scheduler"]
        job = sched.get("slurm_array_job_id", sched["slurm_job_id"])
        if not any(job in p for p in log_paths):
            fail(f"job {job} of {m['run_id']} is not in the SLURM plugin's logs: {log_paths}")

    # 3. Small sizes were packed (two runs per GPU job, no arrays); the others ran as one array.
    small = [m for m in metrics if m["size"] in packed]
    large = [m for m in metrics if m["size"] not in packed]
    per_job = Counter(m["scheduler"]["slurm_job_id"] for m in small)
    if sorted(per_job.values()) != [2, 2] or any("slurm_array_job_id" in m["scheduler"] for m in small):
        fail(f"packed runs should share GPU jobs two by two: {dict(per_job)}")
    arrays = {m["scheduler"].get("slurm_array_job_id") for m in large}
    tasks = sorted(int(m["scheduler"].get("slurm_array_task_id", -1)) for m in large)
    if len(arrays) != 1 or None in arrays or len(set(tasks)) != len(large):
        fail(f"unpacked runs should be the tasks of one array job: arrays {arrays}, tasks {tasks}")

    # 4. What SLURM says each job asked for (TresPerNode) and was given (JOB_GRES): one GPU per
    #    job, packed or not; a packed job holds one CPU per run it trains side by side.
    seen = {}
    for job in sorted(set(per_job) | arrays, key=int):
        info = scontrol_job(job)
        asked, given, state = info.get("TresPerNode"), info.get("JOB_GRES"), info.get("JobState")
        if asked != "gres:gpu:1" or given != "gpu:1" or state != "COMPLETED":
            fail(f"SLURM job {job}: state {state}, asked {asked}, given {given}")
        if job in per_job and int(info["NumCPUs"]) != per_job[job]:
            fail(f"packed job {job} holds {info['NumCPUs']} CPUs for {per_job[job]} runs")
        seen[job] = f"{state}, GPU {given}, {info['NumCPUs']} CPU"

    # 5. The cluster changes where runs execute, never what they compute: bitwise-equal results.
    cols = ["run_id", "final_val_loss", "steps", "tokens", "n_params", "diverged"]
    on_slurm = pd.read_csv(slurm_dir / "results/tables/runs.csv")[cols].sort_values("run_id").reset_index(drop=True)
    local = pd.read_csv(local_dir / "results/tables/runs.csv")[cols].sort_values("run_id").reset_index(drop=True)
    if not on_slurm.equals(local):
        fail(f"SLURM and local results differ:\n{on_slurm.compare(local)}")
    probes_slurm = pd.read_csv(slurm_dir / "results/tables/probes.csv").sort_values("run_id").reset_index(drop=True)
    probes_local = pd.read_csv(local_dir / "results/tables/probes.csv").sort_values("run_id").reset_index(drop=True)
    if not probes_slurm.equals(probes_local):
        fail("SLURM and local probe tables differ")

    print(f"{len(metrics)} runs trained through SLURM, results identical to the local run")
    for job, summary in seen.items():
        runs = [m for m in metrics if job in (m["scheduler"]["slurm_job_id"], m["scheduler"].get("slurm_array_job_id"))]
        kind = "array" if "slurm_array_job_id" in runs[0]["scheduler"] else "packed group"
        print(f"  {kind} job {job} ({summary}): " + ", ".join(
            m["run_id"] + (f" [task {m['scheduler']['slurm_array_task_id']}]" if kind == "array" else "") for m in runs))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
