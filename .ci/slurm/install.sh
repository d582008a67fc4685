#!/usr/bin/env bash
# Install a single-node Slurm (Debian's slurm-wlm) and munge for the Slurm test.
# No accounting database: the profile asks the plugin to poll job states with squeue.
set -euo pipefail
start=$(date +%s)
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends slurm-wlm slurmctld slurmd slurm-client munge >/dev/null
# The munge package normally creates the key; make sure one exists.
if [ ! -s /etc/munge/munge.key ]; then
    $SUDO mungekey --create --keyfile=/etc/munge/munge.key
    $SUDO chown munge:munge /etc/munge/munge.key
    $SUDO chmod 600 /etc/munge/munge.key
fi
echo "slurm install took $(( $(date +%s) - start )) s ($(slurmctld -V))"
