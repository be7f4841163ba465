#!/usr/bin/env bash
# tests/cluster/local_slurm.sh - a real single-node SLURM scheduler for scfactor's cluster tests.
#
#   tests/cluster/local_slurm.sh start    install (if missing) and start munge + slurmctld + slurmd
#   tests/cluster/local_slurm.sh stop     stop ONLY the daemons this script started (pid files)
#   tests/cluster/local_slurm.sh status   print what runs, exit 0 if the node answers
#
# Debian/Ubuntu, run as root; no systemd needed (daemons are started by hand). `start` is idempotent:
# packages are installed only when missing (apt-get, service start-up blocked by a policy-rc.d),
# the config is written to /etc/slurm (see SCFACTOR_SLURM_CONF_DIR), and a daemon already
# running from a previous `start` is reused. `start` prints `started=<list>` on its last line: the
# daemons that this call started, so a caller (tests/cluster/slurm.py) stops exactly those.
#
# Why /etc/slurm: the Snakemake SLURM plugin's job step removes every SLURM_* variable (SLURM_CONF
# included) before its `srun`, so inside a job only the default config path works. An existing
# /etc/slurm/slurm.conf that this script did not write is never overwritten (start fails instead).
#
# Settings (environment):
#   SCFACTOR_SLURM_STATE        state, logs, pid files              [/tmp/scfactor-slurm]
#   SCFACTOR_SLURM_CONF_DIR     where slurm.conf + gres.conf go     [/etc/slurm]
#   SCFACTOR_SLURM_MIN_JOB_AGE  MinJobAge (s): squeue keeps finished jobs this long; the Snakemake
#                               plugin needs >= 3 x slurm-init-seconds-before-status-checks      [600]
#   SCFACTOR_SLURM_FAKE_GPUS    fake gres/gpu devices on the node (0 = none)                    [1]
#   SCFACTOR_SLURM_WAIT         seconds to wait for the node to become idle                     [60]
#
# Partitions: cpu (default), gpu (the node's fake GPU gres), tpu (same node: placement only; there
# is no TPU here). No cgroups: SLURM does not enforce memory or CPU limits on this node.
set -euo pipefail

STATE=${SCFACTOR_SLURM_STATE:-/tmp/scfactor-slurm}
MIN_JOB_AGE=${SCFACTOR_SLURM_MIN_JOB_AGE:-600}
FAKE_GPUS=${SCFACTOR_SLURM_FAKE_GPUS:-1}
WAIT=${SCFACTOR_SLURM_WAIT:-60}
CONF_DIR=${SCFACTOR_SLURM_CONF_DIR:-/etc/slurm}
export SLURM_CONF="$CONF_DIR/slurm.conf"
HEADER="# written by scfactor tests/cluster/local_slurm.sh"
export DEBIAN_FRONTEND=noninteractive

say() { echo "[local-slurm] $*" >&2; }
fail() { echo "[local-slurm] error: $*" >&2; exit 1; }

pid_of() { { cat "$1" 2>/dev/null || true; } | tr -dc "0-9"; }
# is_running PIDFILE NAME: the recorded pid is alive (not a zombie) and its command name is NAME
is_running() {
    local pid st
    pid=$(pid_of "$1")
    [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] || return 1
    st=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
    [ "$st" != Z ]
}
# halt PIDFILE NAME: TERM the recorded process (KILL after 20 s) if it is still NAME
halt() {
    local pid i
    pid=$(pid_of "$1")
    if is_running "$1" "$2"; then
        say "stopping $2 (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for i in $(seq 100); do is_running "$1" "$2" || break; sleep 0.2; done
        if is_running "$1" "$2"; then kill -KILL "$pid" 2>/dev/null || true; sleep 0.5; fi
    fi
    rm -f "$1"
}
# retry_until SECONDS WHAT CMD...: poll CMD every 0.2 s
retry_until() {
    local secs=$1 what=$2 i
    shift 2
    for i in $(seq $((secs * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
    fail "timed out after ${secs}s waiting for $what"
}
listening() { ss -ltnH "sport = :$1" 2>/dev/null | grep -q .; }
munge_works() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

install_packages() {
    local missing=() made_policy=0
    command -v slurmctld >/dev/null || missing+=(slurmctld)
    command -v slurmd >/dev/null || missing+=(slurmd)
    command -v sbatch >/dev/null || missing+=(slurm-client)
    command -v munged >/dev/null || missing+=(munge)
    command -v ss >/dev/null || missing+=(iproute2)
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing ${missing[*]} (apt-get)"
    # packages must not start services themselves (no systemd here; we start the daemons below)
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    local rc=0
    { ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1 || apt-get update -qq; } &&
        { apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
          { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; } ||
        rc=$?
    [ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
    [ "$rc" = 0 ] || fail "apt-get install ${missing[*]} failed"
}

write_config() {
    local node hw cpus boards spb cps tpc mem realmem defmem gres_types="" gres_node="" gpu_file
    node=$(hostname -s)
    hw=$(slurmd -C | head -1)
    field() { tr ' ' '\n' <<< "$hw" | sed -n "s/^$1=//p"; }
    cpus=$(field CPUs); boards=$(field Boards); spb=$(field SocketsPerBoard)
    cps=$(field CoresPerSocket); tpc=$(field ThreadsPerCore); mem=$(field RealMemory)
    realmem=$((mem * 9 / 10))            # more than slurmd -C reports -> node INVAL
    defmem=$((realmem / cpus / 2)); [ "$defmem" -gt 1024 ] && defmem=1024
    mkdir -p "$STATE/etc"
    if [ "$FAKE_GPUS" -gt 0 ]; then
        # Slurm needs one device file per GPU; nothing opens it. (c 1 3 = /dev/null's numbers)
        mkdir -p "$STATE/dev"
        for i in $(seq 0 $((FAKE_GPUS - 1))); do
            [ -c "$STATE/dev/nvidia$i" ] || mknod "$STATE/dev/nvidia$i" c 1 3 2>/dev/null || true
        done
        if [ -c "$STATE/dev/nvidia0" ]; then
            gpu_file="$STATE/dev/nvidia[0-$((FAKE_GPUS - 1))]"
            [ "$FAKE_GPUS" = 1 ] && gpu_file="$STATE/dev/nvidia0"
        elif [ "$FAKE_GPUS" = 1 ]; then
            gpu_file=/dev/null
        else
            fail "mknod not permitted: use SCFACTOR_SLURM_FAKE_GPUS=1 or 0"
        fi
        gres_types="GresTypes=gpu"
        gres_node=" Gres=gpu:$FAKE_GPUS"
        echo "NodeName=$node Name=gpu File=$gpu_file" > "$STATE/etc/gres.conf.new"
    else
        : > "$STATE/etc/gres.conf.new"
    fi
    cat > "$STATE/etc/slurm.conf.new" <<EOF
$HEADER: one node, no cgroups, no accounting daemon
ClusterName=scfactor
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$defmem
ReturnToService=2
MinJobAge=$MIN_JOB_AGE
KillWait=5
MailProg=/bin/true
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
$gres_types
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus Boards=$boards SocketsPerBoard=$spb CoresPerSocket=$cps ThreadsPerCore=$tpc RealMemory=$realmem$gres_node State=UNKNOWN
PartitionName=cpu Nodes=$node Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$node Default=NO MaxTime=INFINITE State=UP
PartitionName=tpu Nodes=$node Default=NO MaxTime=INFINITE State=UP
EOF
    CONFIG_CHANGED=0
    if [ -s "$CONF_DIR/slurm.conf" ] && ! head -1 "$CONF_DIR/slurm.conf" | grep -qF "$HEADER"; then
        fail "$CONF_DIR/slurm.conf exists and was not written by this script: not touching it" \
             "(point SCFACTOR_SLURM_CONF_DIR elsewhere only if no job step needs srun)"
    fi
    mkdir -p "$CONF_DIR"
    for f in slurm.conf gres.conf; do
        if cmp -s "$STATE/etc/$f.new" "$CONF_DIR/$f"; then
            rm -f "$STATE/etc/$f.new"
        else
            mv "$STATE/etc/$f.new" "$CONF_DIR/$f"; chmod 644 "$CONF_DIR/$f"
            CONFIG_CHANGED=1
        fi
    done
    NODE=$node
}

start() {
    [ "$(id -u)" = 0 ] || fail "must run as root (it installs packages and starts daemons)"
    local started=() t0 st i
    t0=$(date +%s)
    install_packages
    mkdir -p "$STATE"/{run,log,slurmctld,slurmd,etc}
    chmod 755 "$STATE" "$STATE/run" "$STATE/log"
    install -d -o munge -g munge -m 0755 "$STATE/munge" /run/munge

    if munge_works; then
        say "munge already answers: reused"
    else
        if [ ! -s /etc/munge/munge.key ]; then mungekey --create --keyfile=/etc/munge/munge.key --force; fi
        chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key
        runuser -u munge -- /usr/sbin/munged --pid-file="$STATE/munge/munged.pid" \
            --log-file="$STATE/munge/munged.log" < /dev/null
        retry_until 10 munged munge_works
        started+=(munged)
    fi

    write_config
    if [ "$CONFIG_CHANGED" = 1 ]; then   # a daemon of ours running with an old config: restart it
        halt "$STATE/run/slurmd.pid" slurmd
        halt "$STATE/run/slurmctld.pid" slurmctld
    fi
    if is_running "$STATE/run/slurmctld.pid" slurmctld; then
        say "slurmctld already running from $STATE: reused"
    else
        listening 6817 && fail "port 6817 is taken by another slurmctld (not started from $STATE)"
        slurmctld -c < /dev/null
        retry_until 30 slurmctld scontrol ping
        started+=(slurmctld)
    fi
    if is_running "$STATE/run/slurmd.pid" slurmd; then
        say "slurmd already running from $STATE: reused"
    else
        listening 6818 && fail "port 6818 is taken by another slurmd (not started from $STATE)"
        slurmd -c < /dev/null
        started+=(slurmd)
    fi

    local resumed=0
    st=""
    for i in $(seq $((WAIT * 2))); do
        st=$(sinfo -h -N -n "$NODE" -o %T 2>/dev/null | head -1 || true)
        case "$st" in
            idle|mixed|allocated) break ;;
            *drain*|down*|inval*)
                if [ "$resumed" = 0 ]; then scontrol update nodename="$NODE" state=resume || true; resumed=1; fi ;;
        esac
        sleep 0.5
    done
    case "$st" in
        idle|mixed|allocated) ;;
        *) tail -n 20 "$STATE/log/slurmctld.log" "$STATE/log/slurmd.log" >&2 || true
           fail "node $NODE did not become idle (state '${st:-none}')" ;;
    esac
    timeout 60 srun -p cpu -t 1 -n 1 --mem=10 true < /dev/null || fail "smoke test 'srun true' failed"
    say "ready in $(($(date +%s) - t0))s: node=$NODE partitions=cpu,gpu,tpu gpus=$FAKE_GPUS conf=$SLURM_CONF"
    echo "started=$(IFS=,; echo "${started[*]}")"
}

# stop [DAEMONS]: stop the given comma-separated daemons (default: all with a pid file under $STATE)
stop() {
    local which=${1:-munged,slurmctld,slurmd} jobs
    if [[ ",$which," == *,slurmctld,* ]] && is_running "$STATE/run/slurmctld.pid" slurmctld; then
        jobs=$(timeout 10 squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ' || true)
        if [ -n "${jobs// /}" ]; then
            say "cancelling jobs left behind: $jobs"
            # shellcheck disable=SC2086
            timeout 10 scancel $jobs 2>/dev/null || true
            for _ in $(seq 50); do
                [ -z "$(timeout 5 squeue -h -o %A 2>/dev/null)" ] && break
                sleep 0.2
            done
        fi
    fi
    [[ ",$which," == *,slurmd,* ]] && halt "$STATE/run/slurmd.pid" slurmd
    [[ ",$which," == *,slurmctld,* ]] && halt "$STATE/run/slurmctld.pid" slurmctld
    [[ ",$which," == *,munged,* ]] && halt "$STATE/munge/munged.pid" munged
    return 0
}

status() {
    local d
    for d in slurmctld slurmd; do
        is_running "$STATE/run/$d.pid" "$d" && echo "$d: running (pid $(pid_of "$STATE/run/$d.pid"))" ||
            echo "$d: not running from $STATE"
    done
    is_running "$STATE/munge/munged.pid" munged && echo "munged: running (ours)" || echo "munged: not ours"
    [ -f "$SLURM_CONF" ] && timeout 10 sinfo -o '%P %a %D %T %N %G'
}

case "${1:-}" in
    start) start ;;
    stop) stop "${2:-}" ;;
    status) status ;;
    *) echo "usage: $0 start|stop [daemons]|status" >&2; exit 2 ;;
esac
