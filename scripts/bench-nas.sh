#!/usr/bin/env bash
# musicfs over SMB and NFS (no kernel mount) against the usual userspace clients, on real
# servers on 127.0.0.1, the bytes and requests on the wire counted by a proxy in between
# (scripts/countproxy.py --frames smb|rpc), not by the tools.
#
#   scripts/bench-nas.sh            (Debian 12, as root: smbd and ganesha.nfsd are started here)
#
# Servers: Samba's smbd (one share, one user; signing allowed, not required: rclone 1.60's SMB
# client fails its writes with "signing required" when the server requires signing, while
# musicfs signs every session signed in with an account either way) and nfs-ganesha with the VFS
# backend (NFSv3 over TCP, one export; rpcbind for its registration). A counting proxy sits in
# front of each server's data port: smbd's port, and the NFS port (the MOUNT protocol, a few
# hundred bytes once per run, goes to ganesha directly and is not counted).
# A generated library (scripts/genlib.py: MP3-like files with an ID3v2.4 tag and an album-wide
# picture) is pushed by each tool into a directory of its own on the server and pulled back
# into a local directory of its own.
#
# Scenarios, in order (after each pull, the pulled tree must equal the library: `diff -r`):
#   initial     push into an empty directory, then pull into an empty directory
#   no-change   push again, pull again                            (REPS runs, median and range)
#   retag       the title rewritten in 10 % of the tracks (genlib.py retag), push, pull
#   reorganise  every file moved to DIR/<Genre>/<Artist - Album>/ (genlib.py reorganise), push, pull
# The tools run interleaved: all pushes, then all pulls; their order rotates from one scenario
# run to the next. Tools that cannot tell what changed run the initial scenario only.
#
# Tools (TOOLS, default "musicfs-smb rclone-smb smbclient musicfs-nfs nfs-cp"):
#   musicfs-smb  `musicfs sync --delete LIB smb://USER@127.0.0.1:PORT/music/musicfs` and back
#                (password from MUSICFS_SMB_PASSWORD); a repository per side
#   rclone-smb   `rclone sync LIB nas:music/rclone` and back (rclone's SMB backend; size and
#                modification time compared, 4 transfers, 8 checkers)
#   smbclient    initial only: `smbclient -c 'recurse; prompt; mput *'` and `mget *`
#   musicfs-nfs  `musicfs sync --delete LIB nfs://127.0.0.1:PORT/EXPORT/musicfs?mountport=N` and
#                back; a repository per side
#   nfs-cp       initial only: libnfs's nfs-cp, once per file (it copies one file per run)
#
# Environment:
#   FILES=240       tracks in the library
#   MEAN_SIZE=2M    their mean size (±50 %)
#   REPS=3          runs of the no-change scenario
#   TOOLS=…         see above
#   MUSICFS=PATH    musicfs binary under test (default: `cargo build --release` here)
#   OUT=FILE        also write the Markdown report to FILE
#   KEEP=0          1: keep the work directory (its path is printed)
#
# Needs: python3 (with mutagen), smbd and smbpasswd (samba), smbclient, rclone, ganesha.nfsd
# (nfs-ganesha, nfs-ganesha-vfs), rpcbind, nfs-cp (libnfs-utils), diffutils; cargo unless
# MUSICFS is given. Nothing is installed: a missing tool is named and the script exits 1. The
# Markdown report goes to stdout (and OUT); progress to stderr.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
scripts="$repo_root/scripts"

cmdline=""
for v in FILES MEAN_SIZE REPS TOOLS MUSICFS OUT KEEP; do
    [[ -n ${!v:-} ]] || continue
    val=${!v}
    [[ $val =~ [[:space:]] ]] && val="\"$val\""
    cmdline+="$v=$val "
done
cmdline+="scripts/bench-nas.sh"

FILES=${FILES:-240}
MEAN_SIZE=${MEAN_SIZE:-2M}
REPS=${REPS:-3}
TOOLS=${TOOLS:-musicfs-smb rclone-smb smbclient musicfs-nfs nfs-cp}
OUT=${OUT:-}
KEEP=${KEEP:-0}

me=bench-nas
source "$scripts/bench-common.sh"

(($# == 0)) || die "no arguments: configure through the environment (see the head of $0)"
for n in "$FILES" "$REPS"; do
    [[ $n =~ ^[1-9][0-9]*$ ]] || die "not a positive integer: $n"
done
[[ $(id -u) -eq 0 ]] || die "run as root: smbd and ganesha.nfsd are started here"
need python3 python3
need diff diffutils
python3 -c 'import mutagen' 2>/dev/null || die "python module mutagen not found: pip install mutagen"

read -r -a tools <<<"$TOOLS"
((${#tools[@]} > 0)) || die "TOOLS is empty"
smb=0 nfs=0
for t in "${tools[@]}"; do
    case "$t" in
        musicfs-smb) smb=1 ;;
        rclone-smb) smb=1; need rclone rclone ;;
        smbclient) smb=1; need smbclient smbclient ;;
        musicfs-nfs) nfs=1 ;;
        nfs-cp) nfs=1; need nfs-cp libnfs-utils ;;
        *) die "unknown tool '$t' in TOOLS (musicfs-smb, rclone-smb, smbclient, musicfs-nfs, nfs-cp)" ;;
    esac
done
if ((smb)); then
    need smbd samba
    need smbpasswd samba
fi
if ((nfs)); then
    need ganesha.nfsd "nfs-ganesha nfs-ganesha-vfs"
    need rpcbind rpcbind
fi

musicfs_binary

work=$(mktemp -d /tmp/bench-nas.XXXXXX)
chmod 0755 "$work"
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    if ((KEEP)); then say "work directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT


# A counting proxy in front of PORT; sets ${NAME}_port and ${NAME}_ctl (an fd on its control
# port). MODE: smb or rpc.
start_proxy() { # NAME MODE PORT
    local name=$1 line
    python3 "$scripts/countproxy.py" --frames "$2" --target-port "$3" \
        >"$work/proxy-$name.port" 2>"$work/proxy-$name.log" &
    pids+=($!)
    for _ in $(seq 100); do [[ -s $work/proxy-$name.port ]] && break; sleep 0.1; done
    read -r line <"$work/proxy-$name.port" || die "the $name proxy did not start (see $work/proxy-$name.log)"
    read -r p c <<<"$line"
    printf -v "${name}_port" '%s' "$p"
    exec {fd}<>"/dev/tcp/127.0.0.1/$c"
    printf -v "${name}_ctl" '%s' "$fd"
}
# take: the traffic through proxy NAME since its last take, "UP DOWN REQS", once every
# connection has closed.
proxy_take() { # NAME WHAT
    local fd_var=${1}_ctl line up down conns open reqs
    printf 'take\n' >&"${!fd_var}"
    read -r line <&"${!fd_var}" || die "the $1 proxy stopped (see $work/proxy-$1.log)"
    read -r up down conns open reqs <<<"$line"
    [[ $open == 0 ]] || die "$open connection(s) still open 10 s after $2: the counts would be incomplete"
    printf '%s %s %s\n' "$up" "$down" "$reqs"
}

# --- the servers -----------------------------------------------------------------------------
smb_user=root
smb_password=bench-$(python3 -c 'import secrets; print(secrets.token_hex(8))')
if ((smb)); then
    s=$work/smb
    start_smbd "$s" "$smb_user" "$smb_password"
    start_proxy smbp smb "$smb_real_port"
    proxy_take smbp "the set-up" >/dev/null
fi
if ((nfs)); then
    n=$work/nfs
    mkdir -p "$n"/{export,recovery}
    rpcinfo -p 127.0.0.1 >/dev/null 2>&1 || { rpcbind -w && sleep 0.5; } || die "rpcbind did not start"
    nfs_real_port=$(free_port)
    nfs_mount_port=$(free_port)
    cat >"$n/ganesha.conf" <<EOF
NFS_CORE_PARAM {
  NFS_Port = $nfs_real_port;
  MNT_Port = $nfs_mount_port;
  Bind_Addr = 127.0.0.1;
  Protocols = 3;
  Enable_NLM = false;
  Enable_RQUOTA = false;
}
NFSV4 { Graceless = true; RecoveryBackend = fs; RecoveryRoot = $n/recovery; }
NFS_KRB5 { Active_krb5 = false; }
EXPORT {
  Export_Id = 1;
  Path = $n/export;
  Pseudo = /bench;
  Access_Type = RW;
  Squash = No_Root_Squash;
  SecType = sys;
  Protocols = 3;
  Transports = TCP;
  FSAL { Name = VFS; }
}
EOF
    setsid ganesha.nfsd -F -f "$n/ganesha.conf" -L "$n/ganesha.log" -p "$n/ganesha.pid" -N NIV_WARN &
    pids+=($!)
    wait_port "$nfs_real_port" ganesha.nfsd "$n/ganesha.log"
    start_proxy nfsp rpc "$nfs_real_port"
    proxy_take nfsp "the set-up" >/dev/null
fi

export MUSICFS_SMB_PASSWORD=$smb_password
export RCLONE_CONFIG=/dev/null
if ((smb)); then
    export RCLONE_CONFIG_NAS_TYPE=smb RCLONE_CONFIG_NAS_HOST=127.0.0.1
    export RCLONE_CONFIG_NAS_PORT=$smbp_port RCLONE_CONFIG_NAS_USER=$smb_user
    RCLONE_CONFIG_NAS_PASS=$(rclone obscure "$smb_password")
    export RCLONE_CONFIG_NAS_PASS
    printf 'username = %s\npassword = %s\n' "$smb_user" "$smb_password" >"$work/smb.auth"
    chmod 0600 "$work/smb.auth"
fi
smbclient_() { # DIR COMMANDS
    smbclient -s /dev/null -p "$smbp_port" -A "$work/smb.auth" -m SMB3 //127.0.0.1/music \
        -D "$1" -c "$2"
}
nfs_url() { # PATH (below the export), for libnfs
    printf 'nfs://127.0.0.1%s/%s?version=3&nfsport=%s&mountport=%s' "$n/export" "$1" "$nfsp_port" "$nfs_mount_port"
}

machine="$(nproc) CPUs, load average $(cut -d' ' -f1 /proc/loadavg) at the start; musicfs $("$musicfs" --version | cut -d' ' -f2)"
((smb)) && machine+=", $(smbd --version), $(rclone --version | sed -n 1p)"
((nfs)) && machine+=", nfs-ganesha $(dpkg-query -W -f '${Version}' nfs-ganesha 2>/dev/null || echo '?'), libnfs $(dpkg-query -W -f '${Version}' libnfs-utils 2>/dev/null || echo '?')"

# --- the library -------------------------------------------------------------------------------
lib=$work/lib
say "generating $FILES tracks of about $MEAN_SIZE (genlib.py)"
python3 "$scripts/genlib.py" create "$lib" --files "$FILES" --seed 7 --mean-size "$MEAN_SIZE" 2>/dev/null
lib_bytes=$(find "$lib" -type f -printf '%s\n' | awk '{ n += $1 } END { print n }')
lib_files=$(find "$lib" -type f | wc -l)
for t in musicfs-smb musicfs-nfs; do
    for side in push pull; do
        "$musicfs" init "$work/repo-$t-$side" >/dev/null
    done
done

proxy_of() { case "$1" in *smb*) echo smbp ;; *) echo nfsp ;; esac; }
push() {
    case "$1" in
        musicfs-smb) MUSICFS_REPO=$work/repo-$1-push "$musicfs" --json sync --delete "$lib" \
            "smb://$smb_user@127.0.0.1:$smbp_port/music/musicfs" ;;
        musicfs-nfs) MUSICFS_REPO=$work/repo-$1-push "$musicfs" --json sync --delete "$lib" \
            "nfs://127.0.0.1:$nfsp_port$n/export/musicfs?mountport=$nfs_mount_port" ;;
        rclone-smb) rclone sync "$lib" nas:music/rclone ;;
        smbclient)
            (cd "$lib" && find . -mindepth 1 -type d -printf '%P\n') | while read -r d; do
                mkdir -p "$s/share/smbclient/$d" # directories are not what is measured
            done
            smbclient_ smbclient "lcd $lib; recurse; prompt; mput *" ;;
        nfs-cp)
            (cd "$lib" && find . -mindepth 1 -type d -printf '%P\n') | while read -r d; do
                mkdir -p "$n/export/nfs-cp/$d"
            done
            (cd "$lib" && find . -type f -printf '%P\n') | while read -r f; do
                nfs-cp "$lib/$f" "$(nfs_url "nfs-cp/$f")" >/dev/null || exit 1
            done ;;
    esac
}
pull() {
    local dst=$work/pull-$1
    case "$1" in
        musicfs-smb) MUSICFS_REPO=$work/repo-$1-pull "$musicfs" --json sync --delete \
            "smb://$smb_user@127.0.0.1:$smbp_port/music/musicfs" "$dst" ;;
        musicfs-nfs) MUSICFS_REPO=$work/repo-$1-pull "$musicfs" --json sync --delete \
            "nfs://127.0.0.1:$nfsp_port$n/export/musicfs?mountport=$nfs_mount_port" "$dst" ;;
        rclone-smb) rclone sync nas:music/rclone "$dst" ;;
        smbclient) mkdir -p "$dst" && smbclient_ smbclient "lcd $dst; recurse; prompt; mget *" ;;
        nfs-cp)
            (cd "$n/export/nfs-cp" && find . -type f -printf '%P\n') | while read -r f; do
                mkdir -p "$(dirname "$dst/$f")"
                nfs-cp "$(nfs_url "nfs-cp/$f")" "$dst/$f" >/dev/null || exit 1
            done ;;
    esac
}

rows=$work/rows.tsv
: >"$rows"
# measure SCENARIO TOOL DIRECTION: runs the push or pull, records its wall time and the proxy's
# counts in rows.tsv; a pull's tree must then equal the library (the content; smbclient and
# nfs-cp keep no modification times).
measure() {
    local scenario=$1 tool=$2 dir=$3 start end up down reqs proxy log=$work/log/$1-$2-$3
    proxy=$(proxy_of "$tool")
    mkdir -p "$work/log"
    start=$(date +%s.%N)
    "$dir" "$tool" >"$log.out" 2>"$log.err" ||
        die "$scenario: $dir with $tool failed (see $log.err)"
    end=$(date +%s.%N)
    read -r up down reqs < <(proxy_take "$proxy" "$scenario: $dir with $tool")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$scenario" "$tool" "$dir" \
        "$(python3 -c "print(f'{$end - $start:.3f}')")" "$up" "$down" "$reqs" >>"$rows"
    say "  $dir $tool: $up B up, $down B down, $reqs requests"
    if [[ $dir == pull ]]; then
        diff -r "$lib" "$work/pull-$tool" >"$log.diff" 2>&1 ||
            die "$scenario: $tool's pulled tree differs from the library (see $log.diff)"
    fi
}
turn=0
scenario() {
    local name=$1 i t order=() all=()
    say "$name"
    for t in "${tools[@]}"; do
        case "$t" in smbclient|nfs-cp) [[ $name == initial ]] && all+=("$t") ;; *) all+=("$t") ;; esac
    done
    for i in "${!all[@]}"; do order+=("${all[(i + turn) % ${#all[@]}]}"); done
    turn=$((turn + 1))
    for t in "${order[@]}"; do measure "$name" "$t" push; done
    for t in "${order[@]}"; do measure "$name" "$t" pull; done
}

scenario initial
for r in $(seq "$REPS"); do scenario "no-change#$r"; done
touch "$work/before-retag"
sleep 0.01
retag_out=$(python3 "$scripts/genlib.py" retag "$lib" --fraction 0.1 --seed 11 2>&1)
retagged=$(sed -n 's/.*retagged \([0-9]*\) of.*/\1/p' <<<"$retag_out")
[[ -n $retagged ]] || die "genlib.py retag reported nothing"
retagged_bytes=$(cd "$lib" && find . -type f -newer "$work/before-retag" -printf '%s\n' 2>/dev/null |
    awk '{ n += $1 } END { print n + 0 }')
scenario retag
python3 "$scripts/genlib.py" reorganise "$lib" 2>/dev/null
scenario reorganise

# --- the report ------------------------------------------------------------------------------
report() {
    PYTHONPATH="$scripts" python3 - "$rows" "$lib_bytes" "$lib_files" "$REPS" "$retagged" "$retagged_bytes" \
        "$(date -u +%Y-%m-%d)" "$cmdline" "$machine" <<'EOF'
import sys
from benchtable import Runs
(rows_file, lib_bytes, files, reps, retagged, retagged_bytes, day, cmdline, machine) = sys.argv[1:]
lib_bytes, files, reps = int(lib_bytes), int(files), int(reps)
retagged, retagged_bytes = int(retagged), int(retagged_bytes)
runs = Runs(rows_file, 3)
print(f"### SMB and NFS: musicfs against rclone, smbclient and nfs-cp ({day})")
print()
print(f"`{cmdline}` — {files:,} tracks, {lib_bytes:,} bytes; smbd and nfs-ganesha (VFS) on 127.0.0.1;")
print("TCP payload and requests (SMB messages, RPC records) counted by scripts/countproxy.py --frames")
print(f"in front of each. No-change: median of {reps} run{'s' if reps > 1 else ''} (range in brackets). Up is client to")
print(f"server, down server to client. The retag rewrote {retagged} files holding {retagged_bytes:,} bytes.")
print(f"{machine}.")
print()
runs.transfer_table()
EOF
}
if [[ -n $OUT ]]; then report | tee "$OUT"; else report; fi
