#!/bin/sh
# Stops the private Slurm that tests/slurm/start.sh DIR started: cancels its
# jobs, shuts slurmctld and slurmd down, stops munged, and waits until every
# process it started is gone (by pid file, then any process still carrying
# CRLAB_TEST_SLURM=DIR in its environment, which start.sh gives the daemons
# and they pass to what they fork, slurmstepd). Leaves DIR and its logs in
# place; exit 1 if something survived.
set -u
dir=${1:?usage: stop.sh DIR}
[ -d "$dir" ] || exit 0
dir=$(cd "$dir" && pwd)
export SLURM_CONF="$dir/slurm.conf"

# a zombie is not alive: where PID 1 is slow to reap orphans (some
# containers), a daemon that has exited stays one for a while
alive() {
  [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 1
  [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)" != Z ]
}
pid_of() { [ -f "$1" ] && cat "$1" 2>/dev/null; }
wait_gone() {   # pid seconds
  i=0
  while alive "$1" && [ $i -lt $(($2 * 10)) ]; do sleep 0.1; i=$((i + 1)); done
  ! alive "$1"
}

# start.sh's watchdog and its sleep (a session and process group of their
# own), unless the watchdog is what runs this (it execs stop.sh)
wd=$(pid_of "$dir/watchdog.pid")
if alive "$wd" && [ "$wd" != "$$" ]; then
  kill -TERM "-$wd" 2>/dev/null
fi

ctld=$(pid_of "$dir/slurmctld.pid")
slurmd_pid=$(pid_of "$dir/slurmd.pid")
if [ -f "$SLURM_CONF" ] && alive "$ctld"; then
  scancel --partition=crlab 2>/dev/null
  i=0
  while [ -n "$(squeue -h -o %i 2>/dev/null)" ] && [ $i -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
  scontrol shutdown >/dev/null 2>&1
fi
for p in $ctld $slurmd_pid; do
  wait_gone "$p" 10 || kill -9 "$p" 2>/dev/null
done

# Anything else this cluster started (a slurmstepd), found by the marker it
# inherited; munged last.
munged_pid=$(pid_of "$dir/munge/munged.pid")
for e in /proc/[0-9]*/environ; do
  p=${e#/proc/}; p=${p%/environ}
  [ "$p" = "$$" ] || [ "$p" = "$munged_pid" ] && continue
  if { tr '\0' '\n' < "$e"; } 2>/dev/null | grep -qxF "CRLAB_TEST_SLURM=$dir"; then
    kill -TERM "$p" 2>/dev/null && { wait_gone "$p" 5 || kill -9 "$p" 2>/dev/null; }
  fi
done
if alive "$munged_pid"; then
  kill -TERM "$munged_pid" 2>/dev/null
  wait_gone "$munged_pid" 10 || kill -9 "$munged_pid" 2>/dev/null
fi

left=""
for p in $ctld $slurmd_pid $munged_pid; do alive "$p" && left="$left $p"; done
if [ -n "$left" ]; then
  echo "stop.sh: still running:$left" >&2
  exit 1
fi
exit 0
