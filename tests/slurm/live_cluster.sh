#!/usr/bin/env bash
# Live-cluster test: start a one-node SLURM cluster on this machine and drive the workflow
# through `snakemake --profile profiles/slurm`, checking each case against a local run of the
# same config (tests/slurm/check_cluster_run.py):
#   grid       tests/slurm/cluster.yaml: shared trunks trained one group per job
#              (train.trunk_jobs: group), as array jobs and a packed group job, each with a GPU
#              allocation, results bitwise equal to the local run;
#   preempted  tests/slurm/preempt.yaml: trunk segments and runs as their own jobs (the paper's
#              train.trunk_jobs: segments); a trunk segment gets SIGUSR2 mid-run (what SLURM sends
#              before a time limit or preemption), checkpoints, fails, is retried and resumes
#              to the same final loss as an uninterrupted run.
# Needs root and Debian's slurm-wlm/munge (installed if missing); tears the cluster down on exit.
#   usage: tests/slurm/live_cluster.sh [PYTHON]   (default: .venv/bin/python)
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
py=${1:-$repo/.venv/bin/python}
python=$(cd "$(dirname "$py")" && pwd)/$(basename "$py")  # keep the venv's symlink: resolving it leaves the venv
work=$(mktemp -d -t qatgrid-slurm-XXXX)
cleanup() { bash "$repo/tests/slurm/cluster.sh" down "$work/cluster" || true; rm -rf "$work"; }
trap cleanup EXIT

workflow_copy() {  # DIR CONFIG: the workflow's own files, as a user's clone has them, plus the config
  mkdir -p "$1"
  (cd "$repo" && cp -r Snakefile rules workflow config envs profiles "$1/")
  cp "$repo/tests/slurm/$2" "$1/test.yaml"
}
# The test cluster has no accounting database (so no sacct) and no accounts: the first two
# overrides; the third polls a one-node cluster faster than a real one should be.
# Everything else is profiles/slurm as shipped.
on_slurm() {  # DIR TARGETS... [OPTIONS...]  (targets first: list-valued options would swallow them)
  local dir=$1; shift
  (cd "$dir" && "$python" -m snakemake "$@" --profile profiles/slurm --configfile test.yaml \
      --slurm-status-command squeue --slurm-no-account --slurm-init-seconds-before-status-checks 5 \
      --latency-wait 5 > snakemake.log 2>&1)
}
locally() {  # DIR TARGETS...
  local dir=$1; shift
  (cd "$dir" && "$python" -m snakemake "$@" --configfile test.yaml --cores 2 > snakemake.log 2>&1)
}
show_logs() {  # DIR
  echo "--- $1/snakemake.log"; tail -60 "$1/snakemake.log"; cp -r "$1" /tmp/last-failed-cluster-case 2>/dev/null || true
  find "$1/.snakemake/slurm_logs" "$1/results/logs" -name '*.log' -exec tail -n 30 -v {} + 2>/dev/null || true
}

t0=$(date +%s)
bash "$repo/tests/slurm/cluster.sh" up "$work/cluster"
t_up=$(date +%s)

# Case 1, the grid. pack=2 puts the two small trunks (four runs) in one GPU job.
targets=(results/tables/runs.csv results/tables/probes.csv)
workflow_copy "$work/grid-slurm" cluster.yaml
on_slurm "$work/grid-slurm" "${targets[@]}" --group-components pack=2 || { show_logs "$work/grid-slurm"; exit 1; }
workflow_copy "$work/grid-local" cluster.yaml
locally "$work/grid-local" "${targets[@]}" || { show_logs "$work/grid-local"; exit 1; }
"$python" "$repo/tests/slurm/check_cluster_run.py" grid "$work/grid-slurm" "$work/grid-local" || { show_logs "$work/grid-slurm"; exit 1; }
t_grid=$(date +%s)

# Case 2, preemption: signal the training job once it has written a checkpoint. One run, so
# the plugin submits a plain job, whose srun step passes the signal on to training (the first
# task of an array runs in the batch step, which `--signal` without B: does not reach).
run_metrics=(results/runs/preempt/int6/0.16M/wd{33,50}/lr1x/muon-linear-x1/seed0/metrics.json)
workflow_copy "$work/preempt-slurm" preempt.yaml
on_slurm "$work/preempt-slurm" "${run_metrics[@]}" &
snakemake_pid=$!
for _ in $(seq 240); do
  [ -n "$(find "$work/preempt-slurm/results/state" -name last.pt 2>/dev/null)" ] && break
  sleep 0.5
done
job=$(squeue -h -t RUNNING -o %A | head -1)  # %A: the job id proper, also for an array task
[ -n "$job" ] || { echo "no running training job to signal"; show_logs "$work/preempt-slurm"; exit 1; }
scancel --signal=USR2 "$job"
wait "$snakemake_pid" || { show_logs "$work/preempt-slurm"; exit 1; }
workflow_copy "$work/preempt-local" preempt.yaml
locally "$work/preempt-local" "${run_metrics[@]}" || { show_logs "$work/preempt-local"; exit 1; }
"$python" "$repo/tests/slurm/check_cluster_run.py" preempted "$work/preempt-slurm" "$work/preempt-local" "$job" || { show_logs "$work/preempt-slurm"; exit 1; }
t_end=$(date +%s)

echo "live-cluster test passed in $((t_end - t0)) s: cluster up $((t_up - t0)) s," \
     "grid case $((t_grid - t_up)) s, preemption case $((t_end - t_grid)) s"
