#!/usr/bin/env bash
# Stop the daemons that .ci/slurm/start.sh started, by pid file, in reverse order.
#   bash .ci/slurm/stop.sh [STATE_DIR]
set -uo pipefail
STATE_DIR=$(realpath -m "${1:-${SLURM_STATE_DIR:-/tmp/cellquery-slurm}}")
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

stop_pid_file() {  # name, pid file
    local name=$1 file=$2 pid
    [ -s "$file" ] || return 0
    pid=$(cat "$file")
    if $SUDO kill -0 "$pid" 2>/dev/null; then
        $SUDO kill -TERM "$pid"
        for _ in $(seq 100); do $SUDO kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if $SUDO kill -0 "$pid" 2>/dev/null; then
            echo "$name ($pid) did not stop; sending KILL" >&2
            $SUDO kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    $SUDO rm -f "$file"
}

stop_pid_file slurmd "$STATE_DIR/run/slurmd.pid"
stop_pid_file slurmctld "$STATE_DIR/run/slurmctld.pid"
# munged only if start.sh started it (a system munged is left alone).
if [ -e "$STATE_DIR/run/munged.started" ]; then
    stop_pid_file munged /run/munge/munged.pid
    rm -f "$STATE_DIR/run/munged.started"
fi
# slurmd's link to its cached configuration (see start.sh), if it is ours.
if [ -L /run/slurm/conf ] && [ "$(readlink /run/slurm/conf)" = "$STATE_DIR/spool/conf-cache" ]; then
    $SUDO rm -f /run/slurm/conf
fi
echo "slurm stopped"
