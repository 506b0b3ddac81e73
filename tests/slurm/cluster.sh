#!/usr/bin/env bash
# A single-node SLURM cluster on localhost, for the live-cluster test (Debian 12, as root).
#   cluster.sh up DIR     install slurm-wlm + munge if missing, start munged, slurmctld, slurmd
#   cluster.sh down DIR   stop the daemons and remove every trace of the cluster's config
# Everything the cluster writes lives in DIR; clients find it through SLURM_CONF=DIR/slurm.conf.
# Slurm's client tools are removed again on `down`: with sinfo on PATH but no controller,
# the Snakemake SLURM plugin waits ~9 s at every start, which would slow every later run.
set -euo pipefail
cmd=${1:?usage: cluster.sh up|down DIR}
dir=$(realpath -m "${2:?usage: cluster.sh up|down DIR}")

up() {
  if ! command -v slurmctld >/dev/null; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
  fi
  mkdir -p "$dir"/{state,spool,log}
  mkdir -p /etc/munge /run/munge /var/log/munge /var/lib/munge
  [ -s /etc/munge/munge.key ] || mungekey -c -f
  pgrep -x munged >/dev/null || munged --force
  local host cpus
  host=$(hostname -s)
  cpus=$(nproc)
  cat > "$dir/slurm.conf" <<CONF
ClusterName=qatgrid-test
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
GresTypes=gpu
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
ReturnToService=2
MinJobAge=600
KillWait=10
NodeName=$host CPUs=$cpus RealMemory=8000 Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  echo "Name=gpu File=/dev/null" > "$dir/gres.conf"
  export SLURM_CONF="$dir/slurm.conf"
  slurmctld -f "$SLURM_CONF"
  slurmd -f "$SLURM_CONF"
  for _ in $(seq 60); do
    if sinfo -h -o %T 2>/dev/null | grep -qx idle; then echo "cluster up: $(sinfo -h -o '%N %T %G')"; return 0; fi
    sleep 1
  done
  echo "cluster did not come up; slurmctld log:" >&2
  tail -20 "$dir/log/slurmctld.log" >&2 || true
  tail -20 "$dir/log/slurmd.log" >&2 || true
  return 1
}

down() {
  for pidfile in "$dir/slurmd.pid" "$dir/slurmctld.pid"; do
    [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
  done
  pkill -x slurmd 2>/dev/null || true
  pkill -x slurmctld 2>/dev/null || true
  DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq slurm-wlm slurm-client slurmctld slurmd >/dev/null 2>&1 || true
  rm -rf "$dir"
}

"$cmd"
