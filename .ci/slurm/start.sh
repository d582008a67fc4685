#!/usr/bin/env bash
# Start a single-node Slurm cluster (munged, slurmctld, slurmd) for the Slurm test.
#
#   bash .ci/slurm/start.sh [STATE_DIR]      # default: $SLURM_STATE_DIR or /tmp/cellquery-slurm
#   export SLURM_CONF=STATE_DIR/slurm.conf   # so that sinfo, sbatch, squeue find the cluster
#
# Configuration, spool, state, logs and pid files live in STATE_DIR; nothing is
# written to /etc (slurmd links /run/slurm/conf to its config cache, and munged,
# unless one already runs, uses /run/munge). The node is "localhost" with this machine's CPUs, 90 % of its
# memory, one partition "debug" and a stand-in GPU (gres gpu:1 backed by
# /dev/null) so that jobs that request a GPU are schedulable. No accounting
# database: job states come from squeue (MinJobAge keeps finished jobs visible).
# Stop everything with .ci/slurm/stop.sh STATE_DIR.
set -euo pipefail
STATE_DIR=$(realpath -m "${1:-${SLURM_STATE_DIR:-/tmp/cellquery-slurm}}")
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
start=$(date +%s)

mkdir -p "$STATE_DIR"/{spool,state,log,run}
export SLURM_CONF="$STATE_DIR/slurm.conf"
cpus=$(nproc)
mem_mb=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 ))

cat > "$SLURM_CONF" <<CONF
ClusterName=cellquery
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
# Finished jobs stay visible to squeue for an hour: the plugin's squeue status
# query relies on that (it needs MinJobAge >= 3 x its first status wait), and
# the Slurm test reads every job's final state from squeue.
MinJobAge=3600
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
StateSaveLocation=$STATE_DIR/state
SlurmdSpoolDir=$STATE_DIR/spool
SlurmctldPidFile=$STATE_DIR/run/slurmctld.pid
SlurmdPidFile=$STATE_DIR/run/slurmd.pid
SlurmctldLogFile=$STATE_DIR/log/slurmctld.log
SlurmdLogFile=$STATE_DIR/log/slurmd.log
SlurmctldPort=6817
# Configless: slurmd fetches slurm.conf and gres.conf from slurmctld and caches
# them where client commands on the node (the srun inside every job) find them,
# /run/slurm/conf. The executor plugin strips SLURM_CONF from a job's
# environment before it calls srun, so that variable alone is not enough.
SlurmctldParameters=enable_configless
SlurmdPort=6818
GresTypes=gpu
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF

cat > "$STATE_DIR/gres.conf" <<CONF
AutoDetect=off
NodeName=localhost Name=gpu File=/dev/null Count=1
CONF

# munge: every Slurm daemon and client authenticates through it.
if ! munge -n </dev/null >/dev/null 2>&1; then
    $SUDO mkdir -p /run/munge /var/log/munge /var/lib/munge
    $SUDO chown munge:munge /run/munge /var/log/munge /var/lib/munge
    $SUDO chmod 755 /run/munge
    if [ "$(id -u)" = 0 ]; then
        runuser -u munge -- munged
    else
        sudo -u munge munged
    fi
    echo started > "$STATE_DIR/run/munged.started"
fi
for _ in $(seq 50); do munge -n </dev/null >/dev/null 2>&1 && break; sleep 0.1; done
munge -n </dev/null | unmunge >/dev/null

$SUDO env SLURM_CONF="$SLURM_CONF" slurmctld
for _ in $(seq 100); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.1; done
# The machine's hostname is not the node's name: force it.
$SUDO env -u SLURM_CONF slurmd -N localhost --conf-server 127.0.0.1:6817

state=""
for _ in $(seq 300); do
    state=$(sinfo -h -n localhost -o %T 2>/dev/null || true)
    if [ "$state" = idle ]; then break; fi
    sleep 0.1
done
if [ "$state" != idle ]; then
    echo "slurm node did not become idle (state: '${state}'); logs in $STATE_DIR/log" >&2
    tail -n 20 "$STATE_DIR"/log/*.log >&2 || true
    exit 1
fi
echo "slurm started in $(( $(date +%s) - start )) s: $(sinfo -h -o '%P %D %T %c CPUs %m MB %G')"
echo "export SLURM_CONF=$SLURM_CONF"
