#!/usr/bin/env bash
# A single-node SLURM cluster on localhost, for the live-cluster test (Debian 12, as root).
#   cluster.sh up DIR     install slurm-wlm + munge if missing, start munged, slurmctld, slurmd
#   cluster.sh down DIR   stop the daemons and remove every trace of the cluster's config
# Everything the cluster writes lives in DIR. Clients find its config through links in
# /etc/slurm (the SLURM plugin's job steps drop SLURM_* variables, SLURM_CONF included, before
# their nested srun); `up` refuses to touch a machine that already has a SLURM config.
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
  # Declare at least 4 CPUs (config_overrides lets slurmd accept more than it has) so a
  # packed group job fits on a 2-core machine; the runs are single-threaded and short.
  cpus=$(( $(nproc) > 4 ? $(nproc) : 4 ))
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
SlurmdParameters=config_overrides
MinJobAge=600
KillWait=10
NodeName=$host CPUs=$cpus RealMemory=8000 Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  echo "Name=gpu File=/dev/null" > "$dir/gres.conf"
  mkdir -p /etc/slurm
  for f in slurm.conf gres.conf; do
    if [ -e "/etc/slurm/$f" ] && [ "$(readlink "/etc/slurm/$f")" != "$dir/$f" ]; then
      echo "/etc/slurm/$f exists: this machine has a SLURM config of its own; not replacing it" >&2
      return 1
    fi
    ln -sfn "$dir/$f" "/etc/slurm/$f"
  done
  slurmctld -f "$dir/slurm.conf"
  slurmd -f "$dir/slurm.conf"
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
  for f in slurm.conf gres.conf; do
    [ "$(readlink "/etc/slurm/$f" 2>/dev/null)" = "$dir/$f" ] && rm -f "/etc/slurm/$f"
  done
  DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq slurm-wlm slurm-client slurmctld slurmd >/dev/null 2>&1 || true
  rm -rf "$dir"
}

"$cmd"
