#!/usr/bin/env bash
# musicfs against `rsync -a --delete -e ssh` over one real sshd on 127.0.0.1, the bytes on the
# wire counted by a proxy in between (scripts/countproxy.py), not by the tools themselves.
#
#   scripts/bench-ssh.sh            (as root on Debian 12; see the environment below)
#
# It starts a private sshd (Debian's openssh-server: `sshd -D -e -f <temp config>`) on a free
# port, and a counting TCP proxy on another free port in front of it. Every SSH connection of
# every tool goes through the proxy; the proxy's byte counts (SSH stream in both directions,
# TCP payload) are the figures reported. A library of real encoded audio
# (scripts/gen-audio-lib.sh, ffmpeg) lives on the "remote" side, a directory the sshd serves;
# each tool pulls it into its own local directory.
#
# Scenarios, in order (each tool's DST equals SRC before every scenario):
#   setup       `ssh -F CFG nas true`: the SSH session's own cost    (REPS runs, median)
#   initial     sync into an empty DST                                (once per tool)
#   no-change   sync again                                            (REPS runs, median)
#   retag       the title rewritten in 10 % of the tracks (id3v2, metaflac, kid3-cli, mutagen)
#   cover       the embedded picture replaced in every track of one album (metaflac, mutagen)
#   reorganise  every file moved from FMT/Artist/Album/ to "Album - Artist (FMT)/"
#   new-album   one more album added (in the new layout)
# The tools run interleaved, their order rotated from one run to the next. After every
# scenario each DST is compared with SRC (`diff -r`, and sizes, mtimes and modes): a
# difference stops the benchmark.
#
# Tools (TOOLS, default "musicfs musicfs-sftp rsync"):
#   musicfs        musicfs --json sync --delete nas:REMOTE DST   (remote `musicfs serve` agent)
#   musicfs-sftp   the same with --sftp (SFTP fallback, no remote agent)
#   musicfs-rsh    musicfs with --rsh "ssh -F CFG ..." (the system OpenSSH as the client)
#   musicfs-rsh-sftp  the same with --sftp
#   rsync          rsync -a --delete -e "ssh -F CFG ..." nas:REMOTE/ DST/
#   rsync-z        the same with -z (not in the default set)
#
# Environment:
#   ALBUMS=3         albums per format (one more album of the first format is kept aside
#                    for the new-album scenario)
#   TRACKS=8         tracks per album
#   SECONDS_PER_TRACK=60
#   FORMATS=mp3,flac gen-audio-lib.sh formats; default: 48 tracks, ~140 MB, 6 albums
#   REPS=5           runs of the setup and no-change scenarios
#   TOOLS="musicfs musicfs-sftp rsync"
#   MUSICFS=PATH     musicfs binary under test (default: `cargo build --release` here)
#   BWLIMIT=RATE     pass --bwlimit RATE to every tool (musicfs and rsync read it alike: 10M)
#   OUT=FILE         also write the Markdown report to FILE
#   SSHD_ADDR=127.0.0.1  the address sshd listens on (the proxy forwards to it)
#   SSHD_NETNS=NAME  run sshd in that network namespace (`ip netns exec`): scripts/bench-link.sh
#   KEEP=0           1: keep the work directory (its path is printed)
#
# Needs (Debian packages): openssh-server, openssh-client, rsync, ffmpeg, python3 with mutagen
# (pip install mutagen: covers and Ogg/Opus tag edits), id3v2 (mp3), flac (metaflac),
# kid3-cli (m4a, wav, aiff); cargo unless MUSICFS is given. Nothing is installed: a missing
# tool is named with its package and the script exits 1.
# The Markdown report goes to stdout (and OUT); progress to stderr.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
scripts="$repo_root/scripts"

# The command line, as the report prints it: the variables given, then the script.
cmdline=""
for v in ALBUMS TRACKS SECONDS_PER_TRACK FORMATS REPS TOOLS MUSICFS BWLIMIT OUT KEEP SSHD_ADDR SSHD_NETNS; do
    [[ -n ${!v:-} ]] || continue
    val=${!v}
    [[ $val =~ [[:space:]] ]] && val="\"$val\""
    cmdline+="$v=$val "
done
cmdline+="scripts/bench-ssh.sh"

ALBUMS=${ALBUMS:-3}
TRACKS=${TRACKS:-8}
SECONDS_PER_TRACK=${SECONDS_PER_TRACK:-60}
FORMATS=${FORMATS:-mp3,flac}
REPS=${REPS:-5}
TOOLS=${TOOLS:-musicfs musicfs-sftp rsync}
OUT=${OUT:-}
KEEP=${KEEP:-0}
BWLIMIT=${BWLIMIT:-}
SSHD_ADDR=${SSHD_ADDR:-127.0.0.1}
SSHD_NETNS=${SSHD_NETNS:-}
sshd_wrap=()
[[ -z $SSHD_NETNS ]] || sshd_wrap=(ip netns exec "$SSHD_NETNS")

me=bench-ssh
source "$scripts/bench-common.sh"
notes=()
note() { notes+=("$*"); say "note: $*"; }

(($# == 0)) || { sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//' >&2; die "no arguments: configure through the environment"; }
for n in "$ALBUMS" "$TRACKS" "$SECONDS_PER_TRACK" "$REPS"; do
    [[ $n =~ ^[1-9][0-9]*$ ]] || die "not a positive integer: $n"
done
((EUID == 0)) || die "run as root (sshd must run as root to log in as root)"

# --- tools ------------------------------------------------------------------------------
[[ -x /usr/sbin/sshd ]] || die "/usr/sbin/sshd not found: apt-get install openssh-server"
need ssh openssh-client
need ssh-keygen openssh-client
need sftp openssh-client
need rsync rsync
need python3 python3
need ffmpeg ffmpeg
need diff diffutils
need sha256sum coreutils
python3 -c 'import mutagen' 2>/dev/null || die "python module mutagen not found: pip install mutagen"
IFS=, read -r -a fmts <<<"$FORMATS"
for f in "${fmts[@]}"; do
    case "$f" in
        mp3) need id3v2 id3v2 ;;
        flac) need metaflac flac ;;
        m4a|wav|aiff) need kid3-cli kid3-cli ;;
        ogg|opus) ;;
        oggenc) need oggenc vorbis-tools ;;
        *) die "unknown format '$f' (mp3,flac,ogg,oggenc,opus,m4a,wav,aiff)" ;;
    esac
done

read -r -a tools <<<"$TOOLS"
((${#tools[@]} > 0)) || die "TOOLS is empty"
want_musicfs=0
for t in "${tools[@]}"; do
    case "$t" in
        musicfs|musicfs-sftp|musicfs-rsh|musicfs-rsh-sftp) want_musicfs=1 ;;
        rsync|rsync-z) ;;
        *) die "unknown tool '$t' (musicfs, musicfs-sftp, musicfs-rsh, musicfs-rsh-sftp, rsync, rsync-z)" ;;
    esac
done

musicfs=""
if ((want_musicfs)); then
    if [[ -n ${MUSICFS:-} ]]; then
        musicfs=$MUSICFS
    else
        need cargo "Rust (https://rustup.rs)"
        say "building musicfs (cargo build --release)"
        (cd "$repo_root" && cargo build --release --quiet --bin musicfs) || die "cargo build --release failed"
        target_dir=$(cd "$repo_root" && cargo metadata --format-version 1 --no-deps |
            python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
        musicfs="$target_dir/release/musicfs"
    fi
    [[ -x $musicfs ]] || die "no musicfs binary at $musicfs"
    if ! "$musicfs" sync --help 2>&1 | grep -q -- '--sftp'; then
        note "musicfs tools skipped: \`$musicfs sync --help\` has no --sftp: this build has no SSH support yet"
        kept=()
        for t in "${tools[@]}"; do [[ $t == musicfs* ]] || kept+=("$t"); done
        tools=("${kept[@]}")
        ((${#tools[@]} > 0)) || die "no tool left to run"
        musicfs=""
    fi
fi

# --- work directory, cleanup ----------------------------------------------------------------
work=$(mktemp -d -t musicfs-bench-ssh.XXXXXX)
sshd_pid=""
proxy_pid=""
cleanup() {
    local rc=$?
    [[ -n $proxy_pid ]] && kill "$proxy_pid" 2>/dev/null && wait "$proxy_pid" 2>/dev/null
    [[ -n $sshd_pid ]] && kill "$sshd_pid" 2>/dev/null && wait "$sshd_pid" 2>/dev/null
    if ((KEEP)); then
        say "work directory kept: $work"
    else
        rm -rf "$work"
    fi
    return "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bin="$work/bin"            # the musicfs under test, first on the remote PATH
sshdir="$work/sshd"        # host key, authorized_keys, sshd_config, pid file
home="$work/home"          # HOME of every client command (.ssh/config, known_hosts, key)
remote="$work/remote/music"
spare="$work/spare"        # the album kept aside for the new-album scenario
logs="$work/logs"
results="$work/runs.tsv"
mkdir -p "$bin" "$sshdir" "$home/.ssh" "$remote" "$spare" "$logs" "$work/local"
chmod 700 "$home/.ssh"
: >"$results"

if ((want_musicfs)) && [[ -n $musicfs ]]; then
    cp "$musicfs" "$bin/musicfs"
    musicfs="$bin/musicfs"
fi

# --- sshd and the proxy ----------------------------------------------------------------------
port_open() { (exec 3<>"/dev/tcp/$SSHD_ADDR/$1") 2>/dev/null; }

ssh-keygen -q -t ed25519 -N '' -C musicfs-bench-host -f "$sshdir/host_ed25519"
ssh-keygen -q -t ed25519 -N '' -C musicfs-bench-client -f "$home/.ssh/id_ed25519"
cp "$home/.ssh/id_ed25519.pub" "$sshdir/authorized_keys"
mkdir -p /run/sshd

start_sshd() {
    local port=$1
    cat >"$sshdir/sshd_config" <<EOF
ListenAddress $SSHD_ADDR
Port $port
HostKey $sshdir/host_ed25519
AuthorizedKeysFile $sshdir/authorized_keys
PidFile $sshdir/sshd.pid
UsePAM no
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin yes
Subsystem sftp internal-sftp
LogLevel ERROR
SetEnv PATH=$bin:/usr/local/bin:/usr/bin:/bin MUSICFS_REPO=$work/remote-repo
EOF
    /usr/sbin/sshd -t -f "$sshdir/sshd_config" || die "sshd rejects its configuration ($sshdir/sshd_config)"
    "${sshd_wrap[@]}" /usr/sbin/sshd -D -e -f "$sshdir/sshd_config" 2>>"$logs/sshd.log" &
    sshd_pid=$!
    local i
    for ((i = 0; i < 100; i++)); do
        port_open "$port" && return 0
        kill -0 "$sshd_pid" 2>/dev/null || break
        sleep 0.05
    done
    kill "$sshd_pid" 2>/dev/null || true
    wait "$sshd_pid" 2>/dev/null || true
    sshd_pid=""
    return 1
}
# A free port can be taken by someone else before sshd binds it: try a few.
for attempt in 1 2 3 4 5; do
    sshd_port=$(free_port)
    start_sshd "$sshd_port" && break
    say "sshd did not start on port $sshd_port (attempt $attempt)"
    sshd_port=""
done
[[ -n $sshd_port ]] || { cat "$logs/sshd.log" >&2; die "sshd would not start"; }

coproc PROXY { exec python3 "$scripts/countproxy.py" --target-host "$SSHD_ADDR" --target-port "$sshd_port" 2>>"$logs/proxy.log"; }
# shellcheck disable=SC2153  # PROXY_PID is set by coproc
proxy_pid=$PROXY_PID
read -r -t 10 proxy_port ctl_port <&"${PROXY[0]}" || die "countproxy.py printed no port"
[[ $proxy_port =~ ^[0-9]+$ && $ctl_port =~ ^[0-9]+$ ]] || die "countproxy.py printed '$proxy_port $ctl_port'"

# The proxy's counts since the previous take, once every connection is closed:
# "UP DOWN CONNS OPEN".
proxy_take() {
    local fd line
    exec {fd}<>"/dev/tcp/127.0.0.1/$ctl_port"
    printf 'take\n' >&"$fd"
    read -r -t 15 line <&"$fd" || line=""
    exec {fd}>&-
    [[ $line =~ ^[0-9]+\ [0-9]+\ [0-9]+\ [0-9]+$ ]] || die "bad answer from the proxy's control port: '$line'"
    echo "$line"
}

cfg="$home/.ssh/config"
cat >"$cfg" <<EOF
Host nas
    HostName 127.0.0.1
    Port $proxy_port
    User root
    IdentityFile $home/.ssh/id_ed25519
    IdentitiesOnly yes
    UserKnownHostsFile $home/.ssh/known_hosts
    StrictHostKeyChecking yes
    BatchMode yes
EOF
printf '[127.0.0.1]:%s %s\n' "$proxy_port" "$(cut -d' ' -f1,2 "$sshdir/host_ed25519.pub")" >"$home/.ssh/known_hosts"

# Every client command runs with this HOME, without an agent: the same key for every tool.
export HOME="$home"
unset SSH_AUTH_SOCK SSH_AGENT_PID
ssh_cmd=(ssh -F "$cfg" -o "UserKnownHostsFile=$home/.ssh/known_hosts")
rsh="ssh -F $cfg -o UserKnownHostsFile=$home/.ssh/known_hosts"

# shellcheck disable=SC2016  # expanded by the remote shell
remote_path=$("${ssh_cmd[@]}" nas 'echo "$PATH"') || { cat "$logs/sshd.log" >&2; die "ssh nas failed"; }
[[ $remote_path == "$bin:"* ]] ||
    note "the remote login shell rewrites PATH set by sshd's SetEnv (to '${remote_path//"$work"/\$W}'); the remote musicfs is still the one under test: checked with \`command -v musicfs\`"
if [[ -n $musicfs ]]; then
    remote_musicfs=$("${ssh_cmd[@]}" nas 'command -v musicfs' || true)
    [[ $remote_musicfs == "$bin/musicfs" ]] || die "remote 'command -v musicfs' gives '$remote_musicfs', not $bin/musicfs"
fi
proxy_take >/dev/null
say "sshd pid $sshd_pid on $SSHD_ADDR:$sshd_port, proxy on 127.0.0.1:$proxy_port (control $ctl_port)"

# --- library ----------------------------------------------------------------------------------
first=${fmts[0]}
rest=("${fmts[@]:1}")
gen_log="$logs/gen-audio-lib.log"
say "generating $((ALBUMS + 1)) album(s) of $first and $ALBUMS of each other format, $TRACKS tracks of ${SECONDS_PER_TRACK} s (gen-audio-lib.sh)"
"$scripts/gen-audio-lib.sh" "$remote" --albums "$((ALBUMS + 1))" --tracks "$TRACKS" \
    --seconds "$SECONDS_PER_TRACK" --formats "$first" 2>>"$gen_log" || { cat "$gen_log" >&2; die "gen-audio-lib.sh failed"; }
if ((${#rest[@]})); then
    rest_csv=$(IFS=,; echo "${rest[*]}")
    "$scripts/gen-audio-lib.sh" "$remote" --albums "$ALBUMS" --tracks "$TRACKS" \
        --seconds "$SECONDS_PER_TRACK" --formats "$rest_csv" 2>>"$gen_log" || { cat "$gen_log" >&2; die "gen-audio-lib.sh failed"; }
fi
new_artist=$(printf 'Synth Ensemble %02d' "$((ALBUMS + 1))")
new_album=$(printf 'Album %02d' "$((ALBUMS + 1))")
mv "$remote/$first/$new_artist/$new_album" "$spare/album"
rmdir "$remote/$first/$new_artist"

alt_cover="$work/alt-cover.jpg"
ffmpeg -hide_banner -nostdin -loglevel error -y -f lavfi -i "testsrc2=size=600x600:rate=25" \
    -ss 7.77 -frames:v 1 -vf "noise=alls=12:allf=u:all_seed=4242" -q:v 3 \
    -fflags +bitexact -flags:v +bitexact "$alt_cover"

lib_bytes() { find "$1" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }'; }
lib_files() { find "$1" -type f | wc -l; }
lib_initial_files=$(lib_files "$remote")
say "library: $lib_initial_files files, $(lib_bytes "$remote") bytes"

# --- measuring ---------------------------------------------------------------------------------
dst_of() { echo "$work/local/lib-$1"; }
repo_of() { echo "$work/local-repo-$1"; }

# Print the command tool $1 runs (an array in $cmd).
tool_cmd() {
    local dst
    dst=$(dst_of "$1")
    case "$1" in
        musicfs) cmd=("$musicfs" --json sync --delete ${BWLIMIT:+--bwlimit "$BWLIMIT"} "nas:$remote" "$dst") ;;
        musicfs-sftp) cmd=("$musicfs" --json sync --delete --sftp ${BWLIMIT:+--bwlimit "$BWLIMIT"} "nas:$remote" "$dst") ;;
        musicfs-rsh) cmd=("$musicfs" --json sync --delete --rsh "$rsh" ${BWLIMIT:+--bwlimit "$BWLIMIT"} "nas:$remote" "$dst") ;;
        musicfs-rsh-sftp) cmd=("$musicfs" --json sync --delete --sftp --rsh "$rsh" ${BWLIMIT:+--bwlimit "$BWLIMIT"} "nas:$remote" "$dst") ;;
        rsync) cmd=(rsync -a --delete ${BWLIMIT:+--bwlimit="$BWLIMIT"} -e "$rsh" "nas:$remote/" "$dst/") ;;
        rsync-z) cmd=(rsync -a -z --delete ${BWLIMIT:+--bwlimit="$BWLIMIT"} -e "$rsh" "nas:$remote/" "$dst/") ;;
        ssh) cmd=("${ssh_cmd[@]}" nas true) ;;
        sftp) cmd=(sftp -F "$cfg" -o "UserKnownHostsFile=$home/.ssh/known_hosts" -b /dev/null nas) ;;
    esac
}

# musicfs's own bytes_transferred from the summary line of its JSON output, or "-".
own_bytes() {
    python3 - "$1" <<'EOF' 2>/dev/null || echo "-"
import json, sys
last = None
for line in open(sys.argv[1]):
    line = line.strip()
    if line.startswith("{"):
        try:
            j = json.loads(line)
        except ValueError:
            continue
        if j.get("type") == "summary":
            last = j
print(last["bytes_transferred"] if last and "bytes_transferred" in last else "-")
EOF
}

# measure SCENARIO TOOL RUN: run the tool once through the proxy, append a row to $results.
measure() {
    local scen=$1 tool=$2 run=$3 log t0 t1 counts up down conns open own=-
    log="$logs/$scen-$tool-$run"
    tool_cmd "$tool"
    # A repository named by MUSICFS_REPO must exist (the remote end makes its own).
    [[ $tool != musicfs* ]] || "$musicfs" -q init "$(repo_of "$tool")"
    proxy_take >/dev/null
    t0=$EPOCHREALTIME
    if ! env MUSICFS_REPO="$(repo_of "$tool")" "${cmd[@]}" </dev/null >"$log.out" 2>"$log.err"; then
        say "FAILED: ${cmd[*]}"
        tail -n 20 "$log.err" >&2
        die "$scen: $tool failed (logs: $log.out, $log.err)"
    fi
    t1=$EPOCHREALTIME
    counts=$(proxy_take)
    read -r up down conns open <<<"$counts"
    ((open == 0)) || note "$scen $tool run $run: $open connection(s) still open 10 s after the command ended"
    [[ $tool == musicfs* ]] && own=$(own_bytes "$log.out")
    local wall
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$scen" "$tool" "$run" "$up" "$down" "$conns" "$wall" "$own" >>"$results"
    say "$scen $tool #$run: $((up + down)) B on the wire ($conns conn), ${wall} s"
}

# Run scenario $1 (run $2, default 1) once per tool, in an order rotated at every call so
# that no tool always runs first.
turn=0
each_tool() {
    local scen=$1 run=${2:-1} n=${#tools[@]} i
    for ((i = 0; i < n; i++)); do
        measure "$scen" "${tools[$(((i + turn) % n))]}" "$run"
    done
    turn=$((turn + 1))
}

# Listing of a tree: path, size, mtime, mode of every file; path of every directory. The
# mtime in whole seconds with $2 = s, to the nanosecond with $2 = ns (SFTP version 3, which
# OpenSSH speaks, carries whole seconds only, so a copy made through it cannot match to the ns).
listing() {
    local t='%Ts'
    [[ $2 == ns ]] && t='%T@'
    (cd "$1" && find . -mindepth 1 \( -type f -printf "f %P %s $t %m\\n" \) -o \( -type d -printf 'd %P\n' \) | LC_ALL=C sort)
}
check_all() {
    local scen=$1 tool dst
    listing "$remote" s >"$work/src.list"
    listing "$remote" ns >"$work/src.list-ns"
    for tool in "${tools[@]}"; do
        dst=$(dst_of "$tool")
        diff -r "$remote" "$dst" >"$logs/diff-$scen-$tool" 2>&1 ||
            { head -n 20 "$logs/diff-$scen-$tool" >&2; die "$scen: $tool's copy differs from the source (diff -r $remote $dst)"; }
        listing "$dst" s >"$work/dst.list"
        diff "$work/src.list" "$work/dst.list" >"$logs/list-$scen-$tool" 2>&1 ||
            { head -n 20 "$logs/list-$scen-$tool" >&2; die "$scen: $tool's copy has the same bytes but not the same sizes, mtimes (s), modes or directories"; }
        listing "$dst" ns >"$work/dst.list-ns"
        diff "$work/src.list-ns" "$work/dst.list-ns" >"$logs/list-ns-$scen-$tool" 2>&1 ||
            note "$scen: $tool's copy has mtimes equal to the second but not to the nanosecond ($(grep -c '^>' "$logs/list-ns-$scen-$tool") files)"
    done
    say "$scen: every copy equals the source"
}

declare -A scen_lib scen_extra
record_lib() { scen_lib[$1]=$(lib_bytes "$remote"); }

# --- scenarios ---------------------------------------------------------------------------------
for ((r = 1; r <= REPS; r++)); do
    measure setup ssh "$r"
    measure setup sftp "$r"
done

record_lib initial
for t in "${tools[@]}"; do mkdir -p "$(dst_of "$t")"; done
each_tool initial
check_all initial

record_lib no-change
for ((r = 1; r <= REPS; r++)); do each_tool no-change "$r"; done
check_all no-change

# retag: every tenth track (at least one) in sorted order, title upper-cased, with the tag
# editor a user of that format would reach for.
title_of() { local b; b=$(basename "$1"); b=${b#* }; echo "${b%.*}"; }
retag() {
    local f=$1 new
    new=$(title_of "$f" | tr '[:lower:]' '[:upper:]')
    case "$f" in
        *.mp3) id3v2 --id3v2-only --song "$new" "$f" ;;
        *.flac) metaflac --remove-tag=TITLE "--set-tag=TITLE=$new" "$f" ;;
        *.m4a) kid3-cli -c "set title '$new' 2" "$f" ;;
        *.aiff) kid3-cli -c "set title '$new' 2" "$f" ;;
        *.wav) kid3-cli -c "set title '$new' 3" "$f" ;;
        *) python3 "$scripts/tagbench.py" set-title "$f" "$new" ;;
    esac >/dev/null
}
mapfile -t all < <(cd "$remote" && find . -type f | LC_ALL=C sort)
edited=0
for ((i = 0; i < ${#all[@]}; i += 10)); do
    f="$remote/${all[$i]#./}"
    sum=$(sha256sum <"$f")
    retag "$f"
    [[ $(sha256sum <"$f") != "$sum" ]] || die "retag: the editor left ${all[$i]} unchanged"
    edited=$((edited + 1))
done
scen_extra[retag]=$edited
say "retag: $edited of ${#all[@]} tracks edited"
record_lib retag
each_tool retag
check_all retag

# cover: the picture of every track of the first album of the first format replaced.
cover_dir="$remote/$first/$(printf 'Synth Ensemble %02d' 1)/$(printf 'Album %02d' 1)"
n=0
while IFS= read -r -d '' f; do
    case "$f" in
        *.flac) metaflac --remove --block-type=PICTURE "$f"
                metaflac "--import-picture-from=3|image/jpeg|Cover (front)||$alt_cover" "$f" ;;
        *) python3 "$scripts/tagbench.py" set-cover "$f" "$alt_cover" ;;
    esac
    n=$((n + 1))
done < <(find "$cover_dir" -type f -print0)
((n > 0)) || die "cover: no track in $cover_dir"
scen_extra[cover]="$n $(stat -c %s "$alt_cover")"
say "cover: replaced in $n tracks"
record_lib cover
each_tool cover
check_all cover

# reorganise: FMT/Artist/Album/track -> "Album - Artist (FMT)/track", every file moved.
for fd in "$remote"/*/; do
    fmt=$(basename "$fd")
    for ad in "$fd"*/*/; do
        album=$(basename "$ad"); artist=$(basename "$(dirname "$ad")")
        mkdir -p "$remote/$album - $artist ($fmt)"
        mv "$ad"* "$remote/$album - $artist ($fmt)/"
    done
    find "$fd" -depth -type d -empty -delete
done
[[ -z $(find "$remote" -mindepth 3 -type f -print -quit) ]] || die "reorganise: files left at depth 3"
record_lib reorganise
each_tool reorganise
check_all reorganise

# new-album: the album kept aside, in the new layout.
new_dir="$remote/$new_album - $new_artist ($first)"
cp -a "$spare/album" "$new_dir"
scen_extra[new-album]=$(lib_bytes "$new_dir")
record_lib new-album
each_tool new-album
check_all new-album

# --- report ---------------------------------------------------------------------------------
tool_lines=()
for t in "${tools[@]}" ssh sftp; do
    tool_cmd "$t"
    line=""
    for a in "${cmd[@]}"; do
        a=${a//"$work"/\$W}
        [[ $a =~ [[:space:]] ]] && a="\"$a\""
        line+="$a "
    done
    tool_lines+=("$t	${line% }")
done
{
    printf 'cmdline\t%s\n' "$cmdline"
    printf 'date\t%s\n' "$(date -u +%Y-%m-%dT%H:%MZ)"
    printf 'machine\t%s CPUs, Linux %s\n' "$(nproc)" "$(uname -r)"
    printf 'versions\t%s; %s; %s\n' "$(rsync --version | head -n1 | tr -s ' ')" \
        "$(ssh -V 2>&1)" "$( [[ -n $musicfs ]] && "$musicfs" --version || echo 'musicfs: not run')"
    printf 'library\t%s files in %s albums (formats %s; %s tracks per album, %s s each; one more album for new-album)\n' \
        "$lib_initial_files" "$((ALBUMS * ${#fmts[@]}))" "$FORMATS" "$TRACKS" "$SECONDS_PER_TRACK"
    printf 'reps\t%s\n' "$REPS"
    for s in "${!scen_lib[@]}"; do printf 'lib\t%s\t%s\n' "$s" "${scen_lib[$s]}"; done
    for s in "${!scen_extra[@]}"; do printf 'extra\t%s\t%s\n' "$s" "${scen_extra[$s]}"; done
    for l in "${tool_lines[@]}"; do printf 'tool\t%s\n' "$l"; done
    for n in "${notes[@]}"; do printf 'note\t%s\n' "$n"; done
} >"$work/meta.tsv"

report=$(python3 - "$work/meta.tsv" "$results" <<'EOF'
import statistics, sys
from collections import defaultdict

meta = defaultdict(list)
lib, extra, tools_cmd = {}, {}, {}
for line in open(sys.argv[1]):
    k, _, v = line.rstrip("\n").partition("\t")
    if k == "lib":
        s, b = v.split("\t"); lib[s] = int(b)
    elif k == "extra":
        s, x = v.split("\t"); extra[s] = x
    elif k == "tool":
        t, c = v.split("\t", 1); tools_cmd[t] = c
    else:
        meta[k].append(v)
runs = defaultdict(list)
order = []
for line in open(sys.argv[2]):
    scen, tool, run, up, down, conns, wall, own = line.rstrip("\n").split("\t")
    if tool not in order and scen != "setup":
        order.append(tool)
    runs[(scen, tool)].append(dict(up=int(up), down=int(down), conns=int(conns), wall=float(wall), own=own))

def human(n):
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024

def med(rs, key):
    return statistics.median(r[key] for r in rs)

def total(r):
    return r["up"] + r["down"]

def summary(scen, tool):
    rs = runs.get((scen, tool))
    if not rs:
        return None
    tot = [total(r) for r in rs]
    return dict(n=len(rs), bytes=statistics.median(tot), lo=min(tot), hi=max(tot),
                up=med(rs, "up"), down=med(rs, "down"), conns=med(rs, "conns"),
                wall=med(rs, "wall"), wlo=min(r["wall"] for r in rs), whi=max(r["wall"] for r in rs),
                own=rs[-1]["own"])

setup = summary("setup", "ssh")
setup_b = setup["bytes"] if setup else 0
out = []
p = out.append
p("## musicfs vs `rsync -a --delete` over SSH, bytes counted by a proxy")
p("")
p("```sh")
p(meta["cmdline"][0])
p("```")
p("")
p(f"- date: {meta['date'][0]}; machine: {meta['machine'][0]}")
p(f"- versions: {meta['versions'][0]}")
p(f"- library: {meta['library'][0]}; {lib['initial']:,} bytes at the initial sync")
p("- bytes: TCP payload through scripts/countproxy.py between the client and sshd on 127.0.0.1 "
  "(the SSH stream, both directions; IP/TCP headers not counted), summed over every SSH "
  "connection the command opened; wall: the command's elapsed time")
p(f"- setup and no-change: median of {meta['reps'][0]} runs (range in brackets), tools interleaved; "
  "other scenarios: one run per tool")
p("- wall times of `ssh`, rsync and the musicfs agent include the remote login shell's start-up "
  "(sshd runs the command through root's shell, which reads its startup files); the SFTP subsystem "
  "(internal-sftp) starts no shell")
p("- after every scenario each copy was checked: `diff -r` against the source, plus every file's "
  "size, mtime (to the second) and mode and the directory tree: all equal (mtimes that differ "
  "below the second are listed in the notes)")
p("- commands ($W is the work directory):")
for t, c in tools_cmd.items():
    if t in order or t in ("ssh", "sftp"):
        p(f"  - {t}: `{c}`")
for n in meta.get("note", []):
    p(f"- note: {n}")
p("")

p("SSH set-up alone, the baseline of the no-change goal (`ssh nas true`), and the same for the "
  "SFTP subsystem (`sftp -b /dev/null nas`):")
p("")
p("| command | runs | bytes on the wire | up / down | wall |")
p("|---|---:|---:|---:|---:|")
for t in ("ssh", "sftp"):
    s = summary("setup", t)
    if s:
        rng = f" ({s['lo']:,.0f}–{s['hi']:,.0f})" if s["lo"] != s["hi"] else ""
        wr = f" ({s['wlo']:.3f}–{s['whi']:.3f})" if s["n"] > 1 else ""
        p(f"| {tools_cmd[t].split(' -F ')[0]} {'nas true' if t == 'ssh' else '-b /dev/null nas'} | {s['n']} "
          f"| {s['bytes']:,.0f} B{rng} | {human(s['up'])} / {human(s['down'])} | {s['wall']:.3f} s{wr} |")
p("")

titles = {
    "initial": "Initial sync (empty destination)",
    "no-change": "No-change sync",
    "retag": "Tags edited on 10 % of the tracks",
    "cover": "New cover on one album",
    "reorganise": "Every file moved to a new layout",
    "new-album": "One new album added",
}

def goal(scen, tool, s):
    b = s["bytes"]
    if scen == "initial":
        lim = 1.01 * lib["initial"]
        return f"{'ok' if b <= lim else 'FAIL'} (≤ 1.01 × library = {human(lim)})"
    if scen == "no-change":
        lim = setup_b + 4096
        return f"{'ok' if b <= lim else 'FAIL'} (≤ set-up + 4 KiB = {lim:,.0f} B; +{b - setup_b:,.0f} B over set-up)"
    if scen == "retag":
        n = int(extra["retag"])
        per = (b - setup_b) / n
        parts = [f"{human(per)}/file beyond set-up ({human(b / n)} with it)"]
        ok = per < 10240
        rs = summary(scen, "rsync")
        if rs:
            ok = ok and b <= rs["bytes"] / 2
            parts.append(f"{b / rs['bytes']:.3f} × rsync")
        return f"{'ok' if ok else 'FAIL'} (< 10 KiB/file and ≤ ½ rsync: " + ", ".join(parts) + ")"
    if scen == "reorganise":
        lim = 0.01 * lib["reorganise"]
        return f"{'ok' if b < lim else 'FAIL'} (< 1 % of library = {human(lim)}; {100 * b / lib['reorganise']:.3f} %)"
    if scen == "new-album":
        ab = int(extra["new-album"])
        return f"{'ok' if b <= 1.01 * ab else 'FAIL'} (≤ 1.01 × album = {human(1.01 * ab)}; {b / ab:.4f} × album)"
    if scen == "cover":
        n, cb = (int(x) for x in extra["cover"].split())
        return f"— ({b / cb:.2f} × the new JPEG of {human(cb)}, embedded in {n} tracks)"
    return "—"

overview = []
for scen in ("initial", "no-change", "retag", "cover", "reorganise", "new-album"):
    if not any((scen, t) in runs for t in order):
        continue
    p(f"### {titles[scen]}")
    p("")
    if scen == "retag":
        p(f"{extra['retag']} track(s) edited; library {lib[scen]:,} B.")
    elif scen == "cover":
        n, cb = extra["cover"].split()
        p(f"{n} tracks of one album given a new {int(cb):,}-byte JPEG; library {lib[scen]:,} B.")
    elif scen == "new-album":
        p(f"Album of {int(extra['new-album']):,} B added; library {lib[scen]:,} B.")
    else:
        p(f"Library {lib[scen]:,} B.")
    p("")
    p("| tool | runs | bytes on the wire | up / down | SSH conns | wall | vs rsync | musicfs's own count | goal |")
    p("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    rs = summary(scen, "rsync")
    row = [scen]
    for t in order:
        s = summary(scen, t)
        if not s:
            row.append(None)
            continue
        rng = f" ({s['lo']:,.0f}–{s['hi']:,.0f})" if s["lo"] != s["hi"] else ""
        wr = f" ({s['wlo']:.3f}–{s['whi']:.3f})" if s["n"] > 1 else ""
        vs = f"{s['bytes'] / rs['bytes']:.3f}" if rs and t != "rsync" and rs["bytes"] else "—"
        own = s["own"] if t.startswith("musicfs") else "—"
        g = goal(scen, t, s) if t.startswith("musicfs") else "—"
        p(f"| {t} | {s['n']} | {s['bytes']:,.0f} B = {human(s['bytes'])}{rng} | {human(s['up'])} / {human(s['down'])} "
          f"| {s['conns']:.0f} | {s['wall']:.3f} s{wr} | {vs} | {own} | {g} |")
        row.append(s)
    p("")
    overview.append(row)

p("### Overview (bytes on the wire; wall time)")
p("")
p("| scenario | " + " | ".join(order) + " |")
p("|---|" + "---:|" * len(order))
for row in overview:
    cells = [f"{human(s['bytes'])}; {s['wall']:.2f} s" if s else "—" for s in row[1:]]
    p(f"| {row[0]} | " + " | ".join(cells) + " |")
print("\n".join(out))
EOF
)
printf '%s\n' "$report"
[[ -z $OUT ]] || printf '%s\n' "$report" >"$OUT"
