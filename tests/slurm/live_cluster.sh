#!/usr/bin/env bash
# Live-cluster test: start a one-node SLURM cluster on this machine, run the workflow on
# tests/slurm/cluster.yaml through `snakemake --profile profiles/slurm`, run the same config
# locally, and check (tests/slurm/check_cluster_run.py) that training went through sbatch as
# array jobs and packed group jobs, each with a GPU allocation, with the same results.
# Needs root and Debian's slurm-wlm/munge (installed if missing); tears the cluster down on exit.
#   usage: tests/slurm/live_cluster.sh [PYTHON]   (default: .venv/bin/python)
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
python=$(cd "$(dirname "${1:-$repo/.venv/bin/python}")" && pwd)/$(basename "${1:-$repo/.venv/bin/python}")  # keep the venv symlink: resolving it would leave the venv
work=$(mktemp -d -t qatgrid-slurm-XXXX)
cleanup() { bash "$repo/tests/slurm/cluster.sh" down "$work/cluster" || true; rm -rf "$work"; }
trap cleanup EXIT

copy_workflow() {  # the workflow's own files only, as a user's clone would have them
  mkdir -p "$1"
  (cd "$repo" && cp -r Snakefile rules workflow config envs profiles "$1/")
  cp "$repo/tests/slurm/cluster.yaml" "$1/cluster.yaml"
}
targets=(results/tables/runs.csv results/tables/probes.csv)

t0=$(date +%s)
bash "$repo/tests/slurm/cluster.sh" up "$work/cluster"
t_up=$(date +%s)

copy_workflow "$work/slurm"
# The test cluster has no accounting database (so no sacct) and no accounts: the first two
# overrides; pack=2 makes two group jobs of its four small runs; the last two poll a
# one-node cluster faster than a real one should be. Everything else is profiles/slurm as shipped.
(cd "$work/slurm" && "$python" -m snakemake --profile profiles/slurm --configfile cluster.yaml \
    --slurm-status-command squeue --slurm-no-account --group-components pack=2 \
    --slurm-init-seconds-before-status-checks 5 --latency-wait 5 "${targets[@]}" > snakemake.log 2>&1) \
  || { echo "cluster run failed; its log:"; tail -60 "$work/slurm/snakemake.log"
       find "$work/slurm/.snakemake/slurm_logs" "$work/slurm/results/logs" -name '*.log' -exec tail -n 30 -v {} + || true
       exit 1; }
t_slurm=$(date +%s)

copy_workflow "$work/local"
(cd "$work/local" && "$python" -m snakemake --configfile cluster.yaml --cores 2 "${targets[@]}" > snakemake.log 2>&1) \
  || { echo "local run failed; its log:"; tail -60 "$work/local/snakemake.log"; exit 1; }
t_local=$(date +%s)

"$python" "$repo/tests/slurm/check_cluster_run.py" "$work/slurm" "$work/local"
echo "live-cluster test passed: cluster up $((t_up - t0)) s, SLURM run $((t_slurm - t_up)) s," \
     "local run $((t_local - t_slurm)) s, total $(( $(date +%s) - t0 )) s"
