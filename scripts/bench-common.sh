# Shared by the scripts/bench-*.sh that start servers: messages, required tools, ports.
# Source it after setting `me` (the script's name, as its messages begin).

say() { printf '%s: %s\n' "$me" "$*" >&2; }
die() { say "$*"; exit 1; }
# need PROGRAM PACKAGE: stop, naming the Debian package, when PROGRAM is not on the PATH.
need() { command -v "$1" >/dev/null || die "$1 not found: apt-get install $2"; }
# A TCP port on 127.0.0.1 that was free a moment ago.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# wait_port PORT WHAT LOG: wait up to 30 s for PORT on 127.0.0.1 to accept a connection.
wait_port() {
    local _
    for _ in $(seq 300); do
        python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), 0.2)" 2>/dev/null && return 0
        sleep 0.1
    done
    die "$2 did not open port $1 within 30 s (see $3)"
}

# The musicfs under test: MUSICFS, else this checkout's release build (built first).
# `musicfs_binary none` lets MUSICFS=none through (a run of the other tools only).
musicfs_binary() {
    local given=${MUSICFS:-}
    if [[ -z $given ]]; then
        need cargo "Rust (https://rustup.rs)"
        say "building musicfs (cargo build --release)"
        (cd "$repo_root" && cargo build --release --quiet --bin musicfs) || die "cargo build --release failed"
        given=$(cd "$repo_root" && cargo metadata --format-version 1 --no-deps |
            python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/release/musicfs
    fi
    [[ ${1:-} == none && $given == none ]] || [[ -x $given ]] || die "no musicfs binary at $given"
    musicfs=$given
}

# start_smbd DIR USER PASSWORD: a private smbd on a free port of 127.0.0.1 serving DIR/share
# as the share `music` to USER (signing offered, not required); sets smb_real_port and adds
# the server to `pids`.
start_smbd() {
    local s=$1
    mkdir -p "$s"/{share,private,lock,state,cache,pid,log}
    smb_real_port=$(free_port)
    cat >"$s/smb.conf" <<CONF
[global]
  smb ports = $smb_real_port
  interfaces = 127.0.0.1
  bind interfaces only = yes
  private dir = $s/private
  lock directory = $s/lock
  state directory = $s/state
  cache directory = $s/cache
  pid directory = $s/pid
  log file = $s/log/log.%m
  server role = standalone server
  passdb backend = tdbsam:$s/private/passdb.tdb
  disable netbios = yes
  server signing = auto
  load printers = no
  printing = bsd
  printcap name = /dev/null
  disable spoolss = yes
[music]
  path = $s/share
  read only = no
CONF
    printf '%s\n%s\n' "$3" "$3" |
        smbpasswd -c "$s/smb.conf" -a -s "$2" >/dev/null || die "smbpasswd failed"
    # In a session of its own: smbd signals its whole process group when it stops.
    setsid smbd --foreground --no-process-group -s "$s/smb.conf" --debug-stdout -d 0 >"$s/smbd.log" 2>&1 &
    pids+=($!)
    wait_port "$smb_real_port" smbd "$s/smbd.log"
}
# start_private_sshd WORK: a private sshd (Debian's openssh-server) on a free port of 127.0.0.1,
# logging in as root with a key made for it ($WORK/home/.ssh/id), whose sessions find $WORK/bin
# first on their PATH and keep the agent's repository in $WORK/remote-repo. Keys are made once
# per WORK. Needs $WORK/sshd, $WORK/home/.ssh and $WORK/logs; sets `sshd_port` and `sshd_pid`.
start_private_sshd() {
    local work=$1
    [[ -f $work/sshd/host ]] || ssh-keygen -q -t ed25519 -N '' -f "$work/sshd/host"
    [[ -f $work/home/.ssh/id ]] || ssh-keygen -q -t ed25519 -N '' -f "$work/home/.ssh/id"
    cp "$work/home/.ssh/id.pub" "$work/sshd/authorized_keys"
    sshd_port=$(free_port)
    cat >"$work/sshd/cfg" <<CFG
ListenAddress 127.0.0.1
Port $sshd_port
HostKey $work/sshd/host
AuthorizedKeysFile $work/sshd/authorized_keys
PidFile $work/sshd/pid
UsePAM no
StrictModes no
PasswordAuthentication no
PermitRootLogin yes
Subsystem sftp internal-sftp
LogLevel ERROR
SetEnv PATH=$work/bin:/usr/local/bin:/usr/bin:/bin MUSICFS_REPO=$work/remote-repo
CFG
    /usr/sbin/sshd -D -e -f "$work/sshd/cfg" 2>>"$work/logs/sshd.log" &
    sshd_pid=$!
}
