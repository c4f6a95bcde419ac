#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for trying and testing the Slurm profiles.
#
#   bash scripts/slurm-local.sh start    install slurm-wlm + munge if missing, write the config,
#                                        start munged, slurmctld, slurmd; wait for an idle node
#   bash scripts/slurm-local.sh stop     stop the three daemons (running jobs are killed)
#   bash scripts/slurm-local.sh status   one line per daemon, then `sinfo`
#
# Needs root (the daemons and /etc/slurm) and, when Slurm is not installed, apt-get (Debian or
# Ubuntu). Idempotent: `start` on a running cluster only checks it; `stop` on a stopped one does
# nothing. No systemd and no cgroups needed (containers): the daemons are started directly and
# the plugins are proctrack/linuxproc + task/none. Accounting: a job completion log
# (jobcomp/filetxt, $SLURM_LOCAL_DIR/log/jobcomp.txt) — `sacct` itself needs slurmdbd and a
# database, which this cluster does not run, so `sacct` reports "accounting storage is disabled"
# and Parsl's SlurmProvider follows its jobs with `squeue` instead.
#
# Environment: SLURM_LOCAL_DIR (state, spool, logs; default /var/lib/mdxfer-slurm),
# SLURM_LOCAL_PARTITION (default "debug"), SLURM_LOCAL_TIMEOUT (seconds to wait for the node,
# default 60).
set -euo pipefail

DIR=${SLURM_LOCAL_DIR:-/var/lib/mdxfer-slurm}
PARTITION=${SLURM_LOCAL_PARTITION:-debug}
TIMEOUT=${SLURM_LOCAL_TIMEOUT:-60}
CONF=/etc/slurm/slurm.conf
MARK="# written by mdxfer scripts/slurm-local.sh"
HOST=$(hostname -s)

die() { echo "slurm-local: $*" >&2; exit 1; }
say() { echo "slurm-local: $*"; }

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

need_root() {
  [ "$(id -u)" = 0 ] || die "needs root (it starts slurmctld/slurmd and writes $CONF); run it with sudo, or as root in a container"
}

install_packages() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
     && command -v sbatch >/dev/null; then
    return
  fi
  command -v apt-get >/dev/null || die "Slurm is not installed and there is no apt-get: install slurm-wlm and munge with your package manager"
  say "installing slurm-wlm and munge (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || die "apt-get update failed"
  apt-get install -y -qq --no-install-recommends slurm-wlm slurm-client munge >/dev/null \
    || die "apt-get install slurm-wlm munge failed"
}

write_config() {
  if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    die "$CONF exists and was not written by this script: this machine has its own Slurm; not touching it"
  fi
  mkdir -p "$DIR/ctld" "$DIR/d" "$DIR/log" "$DIR/run" /etc/slurm
  # CPUs, sockets, cores and memory as slurmd sees them (one line: NodeName=... RealMemory=...)
  local node
  node=$(slurmd -C | head -n1 | sed "s/^NodeName=[^ ]*/NodeName=$HOST/")
  local tmp="$CONF.tmp.$$"
  cat >"$tmp" <<EOF
$MARK — a single-node cluster for tests; stop it with: bash scripts/slurm-local.sh stop
ClusterName=mdxfer-local
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/d
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups, no systemd: processes are tracked through /proc
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# srun starts MPI ranks with PMI-2 (the mpich wheel speaks it)
MpiDefault=pmi2
# accounting: a job completion log; sacct would need slurmdbd
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.txt
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
KillWait=5
MinJobAge=30
InactiveLimit=0
$node State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
  if [ -f "$CONF" ] && cmp -s "$tmp" "$CONF"; then
    rm -f "$tmp"
  else
    mv "$tmp" "$CONF"
  fi
}

start_munge() {
  if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    return
  fi
  [ -f /etc/munge/munge.key ] || { mkdir -p /etc/munge; dd if=/dev/urandom bs=1 count=1024 \
    of=/etc/munge/munge.key status=none; }
  chown munge:munge /etc/munge /etc/munge/munge.key 2>/dev/null || true
  chmod 0700 /etc/munge; chmod 0400 /etc/munge/munge.key
  mkdir -p /run/munge /var/lib/munge /var/log/munge
  chown munge:munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
  if id munge >/dev/null 2>&1; then
    runuser -u munge -- munged || die "munged did not start (see /var/log/munge/munged.log)"
  else
    munged --force || die "munged did not start"
  fi
  touch "$DIR/run/munged.ours"   # stop stops only a munged that start started
  for _ in $(seq 50); do
    munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && return
    sleep 0.1
  done
  die "munge does not answer (see /var/log/munge/munged.log)"
}

node_state() { sinfo -h -n "$HOST" -o '%t' 2>/dev/null | head -n1; }

start() {
  need_root
  install_packages
  write_config
  start_munge
  if ! pid_alive "$DIR/run/slurmctld.pid"; then
    slurmctld || die "slurmctld did not start (see $DIR/log/slurmctld.log)"
  fi
  for _ in $(seq 100); do scontrol ping >/dev/null 2>&1 && break; sleep 0.2; done
  scontrol ping >/dev/null 2>&1 || die "slurmctld does not answer (see $DIR/log/slurmctld.log)"
  if ! pid_alive "$DIR/run/slurmd.pid"; then
    slurmd || die "slurmd did not start (see $DIR/log/slurmd.log)"
  fi
  local state=""
  for _ in $(seq $((TIMEOUT * 5))); do
    state=$(node_state)
    case "$state" in
      idle|mix|alloc) say "node $HOST $state in partition $PARTITION (config $CONF, logs $DIR/log)"; return ;;
      down*|drain*) scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true ;;
    esac
    sleep 0.2
  done
  die "node $HOST is '${state:-unknown}' after ${TIMEOUT} s (see $DIR/log/slurmd.log)"
}

stop_pidfile() {  # stop_pidfile NAME PIDFILE: SIGTERM, wait up to 10 s, then SIGKILL
  local pidfile=$2 pid
  pid_alive "$pidfile" || { rm -f "$pidfile"; return 0; }
  pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

stop() {
  need_root
  if pid_alive "$DIR/run/slurmctld.pid"; then
    # running jobs end with the cluster (their processes are slurmstepd's children)
    scancel --full --quiet --state=RUNNING 2>/dev/null || true
    scancel --quiet 2>/dev/null || true
  fi
  stop_pidfile slurmd "$DIR/run/slurmd.pid"
  stop_pidfile slurmctld "$DIR/run/slurmctld.pid"
  if [ -f "$DIR/run/munged.ours" ]; then
    stop_pidfile munged /run/munge/munged.pid
    rm -f "$DIR/run/munged.ours"
  fi
  say "stopped"
}

status() {
  local rc=0
  for d in slurmctld slurmd; do
    if pid_alive "$DIR/run/$d.pid"; then echo "$d: running (pid $(cat "$DIR/run/$d.pid"))"
    else echo "$d: stopped"; rc=3; fi
  done
  if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then echo "munged: running"
  else echo "munged: stopped"; rc=3; fi
  [ $rc = 0 ] && sinfo
  return $rc
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
