"""Checks of the live-cluster test (tests/slurm/live_cluster.sh), each comparing a SLURM run
with a local run of the same config:

    python check_cluster_run.py grid SLURM_WORKDIR LOCAL_WORKDIR          # tests/slurm/cluster.yaml
    python check_cluster_run.py preempted SLURM_WORKDIR LOCAL_WORKDIR JOB # tests/slurm/preempt.yaml

Exits non-zero with the failed check's message; prints what it saw otherwise.
"""

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import yaml


def fail(message: str) -> None:
    sys.exit(f"live-cluster check failed: {message}")


def scontrol_job(job_id: str) -> dict:
    out = subprocess.run(
        ["scontrol", "show", "job", "-d", "-o", job_id], capture_output=True, text=True, check=True
    ).stdout
    first = out.splitlines()[0]  # an array job lists one line per task; the fields we read agree
    return dict(field.split("=", 1) for field in first.split() if "=" in field)


def submitted_slurm_jobs(snakemake_log: Path) -> set[str]:
    """SLURM job ids of the plugin's submission lines, plain and array jobs alike."""
    text = snakemake_log.read_text(errors="replace")
    return set(re.findall(r"submitted with SLURM jobid (\d+)", text)) | set(re.findall(r"SLURM job ID (\d+)\.", text))


def submitted_rules(snakemake_log: Path) -> list[str]:
    """The rule of every job block Snakemake ran on the cluster ("rule X:", not "localrule X:")."""
    return re.findall(r"^rule (\w+):", snakemake_log.read_text(errors="replace"), flags=re.M)


def same_table(slurm_dir: Path, local_dir: Path, name: str, cols: list[str] | None = None) -> None:
    """The cluster changes where runs execute, never what they compute: bitwise-equal tables."""

    def read(d: Path) -> pd.DataFrame:
        table = pd.read_csv(d / "results/tables" / name)
        return table[cols or list(table.columns)].sort_values("run_id").reset_index(drop=True)

    on_slurm, local = read(slurm_dir), read(local_dir)
    if not on_slurm.equals(local):
        fail(f"SLURM and local {name} differ:\n{on_slurm.compare(local)}")


def check_preempted(slurm_dir: Path, local_dir: Path, killed_job: str) -> None:
    """A run signalled mid-training (as SLURM does before a time limit or preemption) saved a
    checkpoint and exited; Snakemake resubmitted it; the new job resumed and ended where an
    uninterrupted run ends, bit for bit."""
    logs = "\n".join(
        p.read_text(errors="replace")
        for d in (slurm_dir / ".snakemake/slurm_logs", slurm_dir / "results/logs")
        for p in d.rglob("*.log")
    )
    stopped = re.search(r"(\S+): stopped by signal 12 at step (\d+); checkpoint saved", logs)
    if not stopped:
        fail(f"no run says it stopped on SIGUSR2 and saved a checkpoint (signalled job {killed_job})")
    m = json.loads((slurm_dir / "results/runs" / stopped[1] / "metrics.json").read_text())
    resumed = re.search(rf"resumed (?:trunk segment of )?{re.escape(m['run_id'])} from step (\d+)", logs)
    if not resumed:
        fail(f"{m['run_id']} stopped at step {stopped[2]} but no retry says it resumed")
    if m["scheduler"]["slurm_job_id"] == killed_job:
        fail(f"the run finished in the signalled job {killed_job}; it should have been retried")
    if m["steps_done"] != m["steps"] or int(resumed[1]) <= 0:
        fail(f"steps done {m['steps_done']} of {m['steps']}, resumed from step {resumed[1]}")
    local = json.loads((local_dir / "results/runs" / m["run_id"] / "metrics.json").read_text())
    if (m["final_val_loss"], m["curve"]) != (local["final_val_loss"], local["curve"]):
        fail(f"resumed run ends at {m['final_val_loss']!r}, the uninterrupted local run at {local['final_val_loss']!r}")
    print(
        f"SLURM job {killed_job} got SIGUSR2: {m['run_id']} stopped at step {stopped[2]} of {m['steps']}; job "
        f"{m['scheduler']['slurm_job_id']} resumed from step {resumed[1]}; final loss {m['final_val_loss']!r} "
        "and its loss curve equal the uninterrupted local run's"
    )


def check_grid(slurm_dir: Path, local_dir: Path) -> None:
    cfg = yaml.safe_load((slurm_dir / "test.yaml").read_text())
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

    # 2. Every run's job was submitted by Snakemake through sbatch: its id is in Snakemake's
    #    submission lines. (Not the plugin's log folder: it deletes the log of a job it sees
    #    COMPLETED unless --slurm-keep-successful-logs, so which logs remain depends on timing.)
    submitted = submitted_slurm_jobs(slurm_dir / "snakemake.log")
    for m in metrics:
        sched = m["scheduler"]
        job = sched.get("slurm_array_job_id", sched["slurm_job_id"])
        if job not in submitted:
            fail(f"job {job} of {m['run_id']} is not among the jobs Snakemake submitted: {sorted(submitted)}")

    # 3. Small sizes were packed (several runs per GPU job, no arrays): a shared trunk and its
    #    branches form one component of the group, and pack=2 puts two components in a job. The
    #    others ran as array tasks (one array per rule and batch of jobs ready together).
    small = [m for m in metrics if m["size"] in packed]
    large = [m for m in metrics if m["size"] not in packed]
    per_job = Counter(m["scheduler"]["slurm_job_id"] for m in small)
    if min(per_job.values()) < 2 or any("slurm_array_job_id" in m["scheduler"] for m in small):
        fail(f"packed runs should share GPU jobs: {dict(per_job)}")
    # With train.trunk_jobs: group, each unpacked group trains in a job of its own (no arrays:
    # profiles/slurm says why); otherwise the unpacked runs are array tasks.
    grouped = cfg["train"].get("trunk_jobs") == "group"
    arrays = {m["scheduler"].get("slurm_array_job_id") for m in large}
    plain = {m["scheduler"]["slurm_job_id"] for m in large} if grouped else set()
    if grouped and (arrays != {None} or len(plain) != len({m["trunk"] for m in large})):
        fail(f"unpacked groups should each have a job of their own: {[m['scheduler'] for m in large]}")
    if not grouped and None in arrays:
        fail(f"unpacked runs should be array tasks: {[m['scheduler'] for m in large]}")
    arrays.discard(None)

    # 3b. Every run branched off a shared trunk, trained in SLURM jobs of the config's layout:
    #     rule train_group (train.trunk_jobs: group), else trunk segments (rule trunk).
    unshared = [m["run_id"] for m in metrics if not m.get("trunk") or not m.get("trunk_seconds")]
    if unshared:
        fail(f"runs that did not branch off a shared trunk: {unshared}")
    trunk_rule = "train_group" if cfg["train"].get("trunk_jobs") == "group" else "trunk"
    trunk_jobs = submitted_rules(slurm_dir / "snakemake.log").count(trunk_rule)
    if not trunk_jobs:
        fail(f"Snakemake submitted no job of rule {trunk_rule} to SLURM")

    # 4. What SLURM says each job asked for (TresPerNode) and was given (JOB_GRES): one GPU per
    #    job, packed or not; a packed job holds one CPU per run it trains side by side.
    seen = {}
    for job in sorted(set(per_job) | arrays | plain, key=int):
        info = scontrol_job(job)
        asked, given, state = info.get("TresPerNode"), info.get("JOB_GRES"), info.get("JobState")
        if asked != "gres:gpu:1" or given != "gpu:1" or state != "COMPLETED":
            fail(f"SLURM job {job}: state {state}, asked {asked}, given {given}")
        if job in per_job and not 1 < int(info["NumCPUs"]) <= per_job[job]:
            fail(f"packed job {job} holds {info['NumCPUs']} CPUs for {per_job[job]} runs")
        seen[job] = f"{state}, GPU {given}, {info['NumCPUs']} CPU"

    # 5. Same results as the local run, probes included. (Wall time and device differ by design.)
    same_table(
        slurm_dir, local_dir, "runs.csv", ["run_id", "final_val_loss", "steps", "tokens", "n_params", "diverged"]
    )
    same_table(slurm_dir, local_dir, "probes.csv")

    print(f"{len(metrics)} runs trained through SLURM off {len({m['trunk'] for m in metrics})} shared trunks "
          f"({trunk_jobs} {trunk_rule} jobs), results identical to the local run")  # fmt: skip
    for job, summary in seen.items():
        runs = [m for m in metrics if job in (m["scheduler"]["slurm_job_id"], m["scheduler"].get("slurm_array_job_id"))]
        kind = "array" if job in arrays else "packed group" if job in per_job else "group"
        print(
            f"  {kind} job {job} ({summary}): "
            + ", ".join(
                m["run_id"] + (f" [task {m['scheduler']['slurm_array_task_id']}]" if kind == "array" else "")
                for m in runs
            )
        )


if __name__ == "__main__":
    if sys.argv[1] == "grid":
        check_grid(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        check_preempted(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4])
