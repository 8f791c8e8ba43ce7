#!/usr/bin/env bash
# CI step (as root): a single-node SLURM cluster from Debian's packages runs the pipeline through
# profiles/slurm, and every table, figure and report must equal a local run's byte for byte.
# Usage: bash .ci/slurm.sh (from .ci/run, after the venv exists; makes one if not).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
RUN_TIMEOUT=${SLURM_RUN_TIMEOUT:-1500}

export DEBIAN_FRONTEND=noninteractive
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null || ! command -v sbatch >/dev/null; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
fi
if [ -z "${VIRTUAL_ENV:-}" ]; then
    [ -x .venv/bin/python ] || python3 -m venv .venv
    . .venv/bin/activate
fi
pip install -q -r requirements-slurm.txt

WORK=$(mktemp -d /tmp/slurm-ci.XXXXXX)
chmod 755 "$WORK"
PIDS=()
stop() {
    local rc=$?
    # daemons are stopped by the PIDs this script started, never by name
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$pid" 2>/dev/null || true
    done
    if [ -n "${MARK:-}" ] && [ -f /etc/slurm/slurm.conf ] && [ "$(head -1 /etc/slurm/slurm.conf)" = "$MARK" ]; then
        rm -f /etc/slurm/slurm.conf
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap stop EXIT

# munge: the packaged key; the socket directory /run/munge is not there without systemd
[ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key
chown munge:munge /etc/munge/munge.key && chmod 600 /etc/munge/munge.key
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged --foreground 2>"$WORK/munged.log" &
PIDS+=($!)

# One node named localhost (so the host name does not matter), its CPUs and memory as slurmd sees them;
# no cgroups (proctrack/linuxproc, task/none), no accounting, an impossible request fails at once
# (EnforcePartLimits=ALL), and a finished job stays visible to squeue for MinJobAge seconds.
NODE=$(slurmd -C | head -1 | sed 's/^NodeName=[^ ]*/NodeName=localhost/')
mkdir -p "$WORK/state" "$WORK/spool"
# At the default path: srun inside a job does not see a SLURM_CONF pointing elsewhere. A config this
# script did not write is never overwritten.
SLURM_CONF=/etc/slurm/slurm.conf
MARK="# Written by .ci/slurm.sh for a CI cluster; removed when it stops."
if [ -e "$SLURM_CONF" ] && [ "$(head -1 "$SLURM_CONF")" != "$MARK" ]; then
    echo "$SLURM_CONF exists and was not written by this script: not a CI machine, stopping."; exit 1
fi
mkdir -p /etc/slurm
cat > "$SLURM_CONF" <<EOF
$MARK
ClusterName=ci
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/slurmctld.log
SlurmdLogFile=$WORK/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
MinJobAge=600
EnforcePartLimits=ALL
$NODE State=UNKNOWN
PartitionName=ci Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
/usr/sbin/slurmctld -D 2>/dev/null &
PIDS+=($!)
/usr/sbin/slurmd -D -N localhost 2>/dev/null &
PIDS+=($!)
for i in $(seq 60); do
    state=$(sinfo -h -N -o %T 2>/dev/null || true)
    [ "$state" = idle ] && break
    [ "$i" = 60 ] && { echo "SLURM node not idle after 60 s (state '$state')"; cat "$WORK"/slurm*.log; exit 1; }
    sleep 1
done
echo "SLURM up after ${i} s: $(sinfo -h -N -o '%N %T %c CPUs %m MB')"

# The same project twice: once through the cluster, once locally.
for dest in local cluster; do
    mkdir "$WORK/$dest"
    cp -r Snakefile config.yaml workflow data envs profiles requirements.txt README.md "$WORK/$dest/"
done
(cd "$WORK/local" && timeout "$RUN_TIMEOUT" snakemake --cores 2 --quiet)
# pool and figures ask for 2 CPUs (threads: 2): a one-CPU node could never run them
THREADS=()
[ "$(sinfo -h -N -o '%c' | head -1)" -lt 2 ] && THREADS=(--set-threads pool=1 figures=1)
if ! (cd "$WORK/cluster" && timeout "$RUN_TIMEOUT" snakemake --profile profiles/slurm "${THREADS[@]}"); then
    echo "The run through SLURM failed (or passed ${RUN_TIMEOUT} s); squeue, the jobs' and the daemons' logs:"
    squeue || true
    find "$WORK/cluster/.snakemake/slurm_logs" -name '*.log' -exec tail -n 30 {} + || true
    tail -n 30 "$WORK"/slurm*.log
    exit 1
fi

# Every table, figure, report and the archive, byte for byte (logs differ by nature).
(cd "$WORK/local/results" && find . -type f -not -path './logs/*' | sort) > "$WORK/local.list"
(cd "$WORK/cluster/results" && find . -type f -not -path './logs/*' | sort) > "$WORK/cluster.list"
diff "$WORK/local.list" "$WORK/cluster.list"
while read -r f; do
    cmp "$WORK/local/results/$f" "$WORK/cluster/results/$f"
done < "$WORK/local.list"
echo "SLURM run identical to the local run: $(wc -l < "$WORK/local.list") files compared."
