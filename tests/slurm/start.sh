#!/bin/sh
# Starts a private single-node Slurm on this machine for the tests:
# munged, slurmctld and slurmd, all as the calling user (root), listening on
# localhost, with every file (munge key and socket, slurm.conf, state, spool,
# logs, pid files) under DIR. Nothing outside DIR is written or read besides
# the installed programs; clients find the cluster through SLURM_CONF.
#
#   tests/slurm/start.sh DIR [TTL] # DIR: an empty folder (created if missing)
#   export SLURM_CONF=DIR/slurm.conf
#   ... sbatch, squeue, scontrol ...
#   tests/slurm/stop.sh DIR
#
# With TTL (seconds), a watchdog runs stop.sh DIR after that long unless
# stop.sh ran first: a test killed half-way leaves no daemon for long.
# It returns once `sinfo` shows the node idle. On failure it prints why (the
# missing program, or the daemon's last log lines), stops what it started,
# and exits 1; exit 2 means a program is missing (the caller may skip).
# Needs: munge (munged, munge, unmunge), slurmctld, slurmd, slurm-client.
# No cgroups: process tracking by /proc (proctrack/linuxproc), no task
# plugin, no accounting database (squeue/scontrol only, no sacct).
set -u
dir=${1:?usage: start.sh DIR [TTL_SECONDS]}
ttl=${2:-}
case "$ttl" in
  ''|*[!0-9]*) [ -z "$ttl" ] || { echo "start.sh: TTL must be a number of seconds, got '$ttl'" >&2; exit 1; } ;;
esac
here=$(cd "$(dirname "$0")" && pwd)

for prog in munged munge unmunge slurmctld slurmd sinfo scontrol; do
  if ! command -v "$prog" >/dev/null 2>&1; then
    echo "start.sh: $prog is not installed (Debian packages: munge slurmctld slurmd slurm-client)" >&2
    exit 2
  fi
done
if [ "$(id -u)" != 0 ]; then
  echo "start.sh: must run as root (slurmd starts jobs as their owner; SlurmUser=root here)" >&2
  exit 2
fi

mkdir -p "$dir" || exit 1
dir=$(cd "$dir" && pwd)
# munged requires its socket's folder (and every folder above it) to be
# searchable by all, and its key readable by its owner only.
chmod 755 "$dir"
mkdir -p "$dir/munge" "$dir/state" "$dir/spool" "$dir/log" || exit 1
chmod 755 "$dir/munge"
up=$dir
while [ "$up" != / ]; do
  up=$(dirname "$up")
  # searchable by others: the mode's last digit is odd
  case $(stat -c %a "$up") in
    *[1357]) ;;
    *) echo "start.sh: $up is not searchable by all users (mode $(stat -c %a "$up")); munged requires every" \
            "folder above its socket to be (chmod o+x $up, or use a DIR elsewhere)" >&2
       exit 1 ;;
  esac
done

fail() {
  echo "start.sh: $1" >&2
  for f in $2; do
    [ -f "$dir/log/$f" ] && { echo "--- last lines of $dir/log/$f:" >&2; tail -n 20 "$dir/log/$f" >&2; }
  done
  "$here/stop.sh" "$dir" >/dev/null 2>&1
  exit 1
}

# --- munge: its own key and socket -----------------------------------------
key="$dir/munge/munge.key"
sock="$dir/munge/munge.socket"
if command -v mungekey >/dev/null 2>&1; then
  mungekey --create --keyfile="$key" || fail "mungekey could not create $key" none
else
  dd if=/dev/urandom of="$key" bs=1024 count=1 2>/dev/null || fail "could not write $key" none
fi
chmod 600 "$key"
CRLAB_TEST_SLURM="$dir" munged --socket="$sock" --key-file="$key" --pid-file="$dir/munge/munged.pid" \
  --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munged.seed" \
  || fail "munged did not start" munged.log
if ! munge -n -S "$sock" | unmunge -S "$sock" >/dev/null; then
  fail "munge credentials do not round-trip through $sock" munged.log
fi

# --- slurm.conf for this host ----------------------------------------------
# Two ports not in use: a fixed pair would clash with a system Slurm or a
# second test running at once (without ss, from iproute2, they are not
# checked).
in_use() { command -v ss >/dev/null 2>&1 && ss -Htan "( sport = :$1 )" | grep -q .; }
port=$(( 20000 + ($$ % 2000) * 4 ))
tries=0
while in_use "$port" || in_use $((port + 1)); do
  port=$((port + 4)); tries=$((tries + 1))
  [ "$tries" -gt 500 ] && fail "no free pair of TCP ports from 20000 on" none
done

# slurmd -C: NodeName=<hostname -s> CPUs=.. Boards=.. SocketsPerBoard=..
# CoresPerSocket=.. ThreadsPerCore=.. RealMemory=..
node_line=$(slurmd -C 2>/dev/null | grep '^NodeName=' | head -n 1)
[ -n "$node_line" ] || fail "slurmd -C printed no NodeName line" none
node=$(echo "$node_line" | sed 's/^NodeName=\([^ ]*\).*/\1/')
host=$(hostname -s)
partition=crlab
mkdir -p "$dir/spool/$node" || fail "cannot create $dir/spool/$node" none

cat > "$dir/slurm.conf.tmp" <<EOF
# written by tests/slurm/start.sh: a private single-node cluster on localhost
ClusterName=crlabtest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$sock,cred_expire=5
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# a requeued task waits cred_expire (above: 5 s, 120 s by default), then
# for the next scheduling pass: every second here (backfill: 30 s by default)
SchedulerParameters=bf_interval=1,sched_interval=1
ReturnToService=2
MinJobAge=600
MailProg=/bin/true
KillWait=5
$node_line NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=$partition Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
mv "$dir/slurm.conf.tmp" "$dir/slurm.conf"
export SLURM_CONF="$dir/slurm.conf"

# --- the daemons -----------------------------------------------------------
# -c: no state from an earlier cluster (the folder is new anyway).
# CRLAB_TEST_SLURM marks the daemons and what they fork (slurmstepd), so
# stop.sh finds exactly those.
export CRLAB_TEST_SLURM="$dir"
slurmctld -c -f "$SLURM_CONF" || fail "slurmctld did not start" slurmctld.log
slurmd -f "$SLURM_CONF" -N "$node" || fail "slurmd did not start" slurmd.log
unset CRLAB_TEST_SLURM

# the watchdog: its own session (setsid), so stop.sh ends it and its sleep
# together; no standard stream left open to the caller
if [ -n "$ttl" ]; then
  setsid sh -c 'sleep "$1"; exec "$2" "$3"' watchdog "$ttl" "$here/stop.sh" "$dir" \
    </dev/null >/dev/null 2>&1 &
  echo $! > "$dir/watchdog.pid"
fi

i=0
state=
while [ $i -lt 60 ]; do
  state=$(sinfo -h -n "$node" -o %T 2>/dev/null)
  case "$state" in idle) break ;; esac
  sleep 0.5; i=$((i + 1))
done
if [ "$state" != idle ]; then
  fail "node $node is '${state:-not reported}' after 30 s, not idle (logs in $dir/log)" "slurmctld.log slurmd.log"
fi
echo "start.sh: node $node idle in partition $partition (SLURM_CONF=$SLURM_CONF," \
     "ports $port/$((port + 1))${ttl:+, stopped after $ttl s at the latest})"
