#!/usr/bin/env bash
# .ci/local-slurm.sh — a real one-node SLURM cluster on 127.0.0.1 for regbench's tests.
#
#   .ci/local-slurm.sh start           install (Debian 12, as root) / configure / start; returns
#                                      once `sinfo` shows the node idle (exit 1 on a timeout)
#   .ci/local-slurm.sh stop [--purge]  cancel jobs, stop every daemon by its pid file;
#                                      --purge also deletes the cluster directory
#   .ci/local-slurm.sh status          say which daemons run and show `sinfo`
#
# Both verbs are idempotent: `start` only starts what is not running (and restarts the slurm
# daemons when the generated config changed); `stop` on a stopped cluster does nothing.
#
# Everything lives in one directory: config, controller state, spool, logs, sockets, pid
# files, the munge key, the MariaDB data, the fake GPU device nodes and env.sh, which clients
# source (`. $REGBENCH_SLURM_DIR/env.sh` exports SLURM_CONF). No systemd and no cgroups.
# Accounting (slurmdbd on a private MariaDB) is always on: without sacct, submitit never
# learns that a job died without writing its result and waits for it forever.
#
# Knobs (environment):
#   REGBENCH_SLURM_DIR=/tmp/regbench-slurm   the cluster directory (absolute)
#   REGBENCH_SLURM_GPUS=2                    fake GPUs declared on the node (0: none); they are
#                                            character devices for scheduling only (nothing
#                                            opens them); jobs asking for one GPU each get a
#                                            distinct CUDA_VISIBLE_DEVICES from SLURM
#   REGBENCH_SLURM_PORT=16817                slurmctld; slurmd, slurmdbd use the next two
#   REGBENCH_SLURM_DB_PORT=13306             MariaDB on 127.0.0.1
#   REGBENCH_SLURM_WAIT=60                   seconds to wait for each daemon and for the node
set -euo pipefail
umask 022

DIR=${REGBENCH_SLURM_DIR:-/tmp/regbench-slurm}
GPUS=${REGBENCH_SLURM_GPUS:-2}
CTLD_PORT=${REGBENCH_SLURM_PORT:-16817}
SLURMD_PORT=$((CTLD_PORT + 1))
DBD_PORT=$((CTLD_PORT + 2))
DB_PORT=${REGBENCH_SLURM_DB_PORT:-13306}
WAIT=${REGBENCH_SLURM_WAIT:-60}
CLUSTER=regbench
PARTITION=debug
NODE=localhost
PACKAGES=(munge slurmctld slurmd slurm-client slurmdbd mariadb-server)
MUNGE_SOCKET=$DIR/munge/socket
DB_SOCKET=$DIR/db/mysqld.sock
T0=$EPOCHREALTIME

say() { printf '[local-slurm +%ss] %s\n' "$(elapsed)" "$*" >&2; }
fail() { say "error: $*"; exit 1; }
elapsed() { awk -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

# ----------------------------------------------------------------------------- processes
# is_running PID: the process exists and has not exited (an exited daemon whose parent has
# not reaped it yet is a zombie, state Z, and counts as stopped).
is_running() {
  local state
  state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n $state && $state != Z ]]
}

# pid_of PIDFILE NAME: print the pid in PIDFILE if it is a live process called NAME.
pid_of() {
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$2" ]] || return 1
  is_running "$pid" && echo "$pid"
}

# halt PIDFILE NAME: SIGTERM the daemon named in PIDFILE, SIGKILL it after 15 s.
halt() {
  local pid
  if pid=$(pid_of "$1" "$2"); then
    say "stopping $2 (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 150); do is_running "$pid" || break; sleep 0.1; done
    if is_running "$pid"; then
      say "$2 still running after 15 s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$1"
}

# poll WHAT COMMAND...: retry COMMAND every 0.2 s for up to $WAIT seconds.
poll() {
  local what=$1 deadline=$((SECONDS + WAIT))
  shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
  say "$what is up"
}

# ----------------------------------------------------------------------------- packages
install_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f '${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  say "installing ${missing[*]}"
  # A policy-rc.d that answers 101 keeps the packages' init scripts from starting the
  # system-wide daemons; remove it afterwards only if this script created it.
  local guard=/usr/sbin/policy-rc.d own_guard=0
  if [[ ! -e $guard ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$guard" && chmod 0755 "$guard" && own_guard=1
  fi
  local apt=(apt-get install -y -q --no-install-recommends -o Dpkg::Use-Pty=0 "${missing[@]}")
  local ok=1
  DEBIAN_FRONTEND=noninteractive "${apt[@]}" >&2 \
    || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive "${apt[@]}" >&2; } || ok=0
  ((own_guard)) && rm -f "$guard"
  ((ok)) || fail "apt-get install ${missing[*]} failed"
  say "packages installed"
}

# ----------------------------------------------------------------------------- config
# node_hardware: the node's CPUs, topology and memory as slurmd itself reports them.
node_hardware() {
  local line key value out=()
  line=$(slurmd -C 2>/dev/null | head -n 1) || true
  for key in CPUs Boards SocketsPerBoard CoresPerSocket ThreadsPerCore RealMemory; do
    value=$(grep -o "\b$key=[0-9]*" <<<"$line" | cut -d= -f2) || true
    [[ -n $value ]] && out+=("$key=$value")
  done
  ((${#out[@]})) || out=("CPUs=$(nproc)")
  echo "${out[*]}"
}

# fake_gpus: character devices with the NVIDIA major number, one per declared GPU.
fake_gpus() {
  mkdir -p "$DIR/gpu"
  local i
  for ((i = 0; i < GPUS; i++)); do
    [[ -c $DIR/gpu/nvidia$i ]] || { rm -f "$DIR/gpu/nvidia$i"; mknod "$DIR/gpu/nvidia$i" c 195 "$i"; }
  done
}

slurm_conf() {
  cat <<EOF
# written by regbench's .ci/local-slurm.sh: one node on loopback, for tests
ClusterName=$CLUSTER
SlurmctldHost=$NODE
SlurmUser=root
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/pid/slurmctld.pid
SlurmdPidFile=$DIR/pid/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
MailProg=/bin/true
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
InactiveLimit=0
KillWait=5
MinJobAge=300
SlurmdTimeout=60
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=$NODE
AccountingStoragePort=$DBD_PORT
# slurmctld finds the munge socket for slurmdbd here, not in AuthInfo
AccountingStoragePass=$MUNGE_SOCKET
EOF
  local gres=""
  if ((GPUS > 0)); then
    echo "GresTypes=gpu"
    echo "AccountingStorageTRES=gres/gpu"
    gres="Gres=gpu:$GPUS"
  fi
  echo "NodeName=$NODE NodeAddr=127.0.0.1 $(node_hardware) $gres State=UNKNOWN"
  echo "PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP"
}

gres_conf() {
  echo "AutoDetect=off"
  if ((GPUS == 1)); then
    echo "NodeName=$NODE Name=gpu File=$DIR/gpu/nvidia0"
  elif ((GPUS > 1)); then
    echo "NodeName=$NODE Name=gpu File=$DIR/gpu/nvidia[0-$((GPUS - 1))]"
  fi
}

slurmdbd_conf() {
  cat <<EOF
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
DbdHost=$NODE
DbdPort=$DBD_PORT
SlurmUser=root
LogFile=$DIR/log/slurmdbd.log
PidFile=$DIR/pid/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=regbench
StorageLoc=slurm_acct_db
EOF
}

# put FILE MODE: move stdin into FILE when its content differs; print "changed" if it did.
put() {
  local new
  new=$(mktemp "$1.XXXXXX")
  cat >"$new"
  chmod "$2" "$new"
  if cmp -s "$new" "$1"; then rm -f "$new"; else mv -f "$new" "$1" && echo changed; fi
}

write_configs() {
  local changed=""
  changed+=$(slurm_conf | put "$DIR/etc/slurm.conf" 0644)
  changed+=$(gres_conf | put "$DIR/etc/gres.conf" 0644)
  changed+=$(slurmdbd_conf | put "$DIR/etc/slurmdbd.conf" 0600)
  printf 'export SLURM_CONF=%q\n' "$DIR/etc/slurm.conf" >"$DIR/env.sh"
  if [[ -n $changed ]]; then
    say "config written to $DIR/etc (slurm daemons on an older config are restarted)"
    halt "$DIR/pid/slurmd.pid" slurmd
    halt "$DIR/pid/slurmctld.pid" slurmctld
    halt "$DIR/pid/slurmdbd.pid" slurmdbd
  fi
}

make_dirs() {
  mkdir -p "$DIR"/{etc,state,spool,log,pid,munge,db}
  touch "$DIR/.regbench-slurm"
  # munged wants its socket directory searchable by everyone; the key itself is 0400
  chown munge:munge "$DIR/munge" && chmod 0755 "$DIR/munge"
  chown mysql:mysql "$DIR/db" && chmod 0750 "$DIR/db"
}

# ----------------------------------------------------------------------------- daemons
munge_works() { munge -S "$MUNGE_SOCKET" -n | unmunge -S "$MUNGE_SOCKET"; }

start_munge() {
  local key=$DIR/munge/key
  [[ -s $key ]] || dd if=/dev/urandom of="$key" bs=1024 count=1 status=none
  chown munge:munge "$key" && chmod 0400 "$key"
  if ! pid_of "$DIR/munge/munged.pid" munged >/dev/null; then
    rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
    runuser -u munge -- /usr/sbin/munged --socket="$MUNGE_SOCKET" --key-file="$key" \
      --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/munge/munged.log" \
      --seed-file="$DIR/munge/seed"
  fi
  poll munged munge_works || fail "munged did not start; see $DIR/munge/munged.log"
}

db() { mariadb --no-defaults -S "$DB_SOCKET" "$@"; }

start_database() {
  if [[ ! -d $DIR/db/data/mysql ]]; then
    say "creating the accounting database"
    mariadb-install-db --no-defaults --user=mysql --datadir="$DIR/db/data" --skip-test-db \
      --auth-root-authentication-method=socket >"$DIR/log/mariadb-install.log" 2>&1 \
      || fail "mariadb-install-db failed; see $DIR/log/mariadb-install.log"
  fi
  if ! pid_of "$DIR/db/mariadbd.pid" mariadbd >/dev/null; then
    setsid /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$DIR/db/data" \
      --socket="$DB_SOCKET" --pid-file="$DIR/db/mariadbd.pid" --log-error="$DIR/log/mariadbd.log" \
      --bind-address=127.0.0.1 --port="$DB_PORT" --skip-name-resolve \
      --innodb-buffer-pool-size=32M </dev/null >/dev/null 2>&1 &
  fi
  poll mariadbd db -e 'SELECT 1' || fail "mariadbd did not start; see $DIR/log/mariadbd.log"
  local host
  for host in 127.0.0.1 localhost; do
    db -e "CREATE USER IF NOT EXISTS 'slurm'@'$host' IDENTIFIED BY 'regbench';
           GRANT ALL ON slurm_acct_db.* TO 'slurm'@'$host';"
  done
}

clusters() { sacctmgr -n -P list cluster format=cluster; }

start_slurmdbd() {
  pid_of "$DIR/pid/slurmdbd.pid" slurmdbd >/dev/null || slurmdbd
  poll slurmdbd clusters || fail "slurmdbd did not start; see $DIR/log/slurmdbd.log"
  clusters | grep -qx "$CLUSTER" || sacctmgr -i add cluster "$CLUSTER" >/dev/null
}

controller_up() { scontrol ping | grep -q 'is UP'; }
node_state() { sinfo -h -n "$NODE" -o %T; }
# idle, or busy with jobs when start runs again on a working cluster
node_ready() { [[ $(node_state) =~ ^(idle|mixed|allocated|completing)$ ]]; }

start_slurm() {
  pid_of "$DIR/pid/slurmctld.pid" slurmctld >/dev/null || slurmctld
  poll slurmctld controller_up || fail "slurmctld did not start; see $DIR/log/slurmctld.log"
  pid_of "$DIR/pid/slurmd.pid" slurmd >/dev/null || slurmd -N "$NODE"
  poll "node $NODE" node_ready && return 0
  say "node $NODE is '$(node_state)'; resuming it"
  scontrol update nodename="$NODE" state=resume 2>/dev/null || true
  poll "node $NODE" node_ready \
    || fail "node $NODE is '$(node_state)', not idle; see $DIR/log/slurmd.log, slurmctld.log"
}

# ----------------------------------------------------------------------------- verbs
check_dir() {
  [[ $DIR == /* && $DIR != / ]] || fail "REGBENCH_SLURM_DIR must be an absolute path, not '$DIR'"
}

start() {
  [[ $(id -u) == 0 ]] || fail "start needs root (it installs packages and runs slurmd)"
  check_dir
  install_packages
  make_dirs
  ((GPUS > 0)) && fake_gpus
  export SLURM_CONF=$DIR/etc/slurm.conf
  write_configs
  start_munge
  start_database
  start_slurmdbd
  start_slurm
  say "cluster up; clients run: . $DIR/env.sh"
  sinfo -o '%P %a %D %T %c %m %G' >&2
}

stop() {
  check_dir
  local purge=0
  case ${1:-} in --purge) purge=1 ;; "") ;; *) fail "usage: $0 stop [--purge]" ;; esac
  export SLURM_CONF=$DIR/etc/slurm.conf
  if pid_of "$DIR/pid/slurmctld.pid" slurmctld >/dev/null; then
    local jobs
    jobs=$(squeue -h -o %A 2>/dev/null | tr '\n' ' ') || true
    if [[ -n ${jobs// /} ]]; then
      say "cancelling jobs $jobs"
      # shellcheck disable=SC2086
      scancel $jobs 2>/dev/null || true
      for _ in $(seq 50); do [[ -z $(squeue -h 2>/dev/null) ]] && break; sleep 0.2; done
    fi
  fi
  halt "$DIR/pid/slurmd.pid" slurmd
  halt "$DIR/pid/slurmctld.pid" slurmctld
  halt "$DIR/pid/slurmdbd.pid" slurmdbd
  halt "$DIR/db/mariadbd.pid" mariadbd
  halt "$DIR/munge/munged.pid" munged
  if ((purge)) && [[ -e $DIR ]]; then
    [[ -e $DIR/.regbench-slurm ]] || fail "not deleting $DIR: this script did not create it"
    rm -rf -- "$DIR"
    say "deleted $DIR"
  fi
  say "stopped"
}

status() {
  local entry name
  for entry in munge/munged.pid:munged db/mariadbd.pid:mariadbd pid/slurmdbd.pid:slurmdbd \
    pid/slurmctld.pid:slurmctld pid/slurmd.pid:slurmd; do
    name=${entry#*:}
    if pid_of "$DIR/${entry%%:*}" "$name" >/dev/null; then echo "$name: running"; else echo "$name: stopped"; fi
  done
  [[ -f $DIR/etc/slurm.conf ]] && SLURM_CONF=$DIR/etc/slurm.conf sinfo 2>&1 || true
}

case ${1:-} in
  start) start ;;
  stop) stop "${@:2}" ;;
  status) status ;;
  *) echo "usage: $0 start | stop [--purge] | status" >&2; exit 2 ;;
esac
