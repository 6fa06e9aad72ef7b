#!/usr/bin/env bash
# The initial pull over SSH, many times on one library: musicfs binaries (the remote agent,
# `musicfs sync nas:SRC DST`) against `rsync -a -e ssh`, through one private sshd on 127.0.0.1
# behind the counting proxy (scripts/countproxy.py), without generating anything.
#
#   SRC=DIR MUSICFS="name=BINARY ..." scripts/bench-ssh-initial.sh     (as root)
#
# Every pull starts cold: a new empty destination, a new local repository, and the remote
# agent's repository removed, so the agent scans (reads and hashes) every file again, as on a
# first sync. The tools run interleaved, their order rotated from one round to the next. Per
# pull: the wall; the client's CPU (user + system, children included: rsync's local ssh) and
# peak RSS from /usr/bin/time; the remote command's CPU (`rsync --server` or `musicfs serve`,
# run through /usr/bin/time by a wrapper first on the remote PATH; sshd's own share, the
# server's side of the SSH encryption, is not in it); the load average before it; and the
# bytes on the wire, both directions, counted by the proxy. The copies are checked
# against SRC after the last round (`diff -r` of one copy per tool) and then removed.
#
# Environment:
#   SRC=DIR        the library the "remote" side serves (e.g. scripts/gen-audio-lib.sh, or
#                  scripts/genlib.py create DIR --files 100000 --seed 3 --mean-size 8K)
#   MUSICFS="..."  name=path pairs of musicfs binaries (default: now=target/release/musicfs);
#                  each is the client and, on the remote PATH for its own runs, the agent
#   REPS=3         rounds
#   RSYNC=1        also run rsync -a -e ssh in every round (0: musicfs only)
#   SSH_OPTS=""    extra options for the rsync's ssh and the musicfs client's config (one
#                  `-o Key=Value` per word, e.g. "Ciphers=aes128-gcm@openssh.com")
#   WORK=DIR       keys, sshd configuration and the copies (default: a new directory in /tmp)
#   FRESH_FS=SIZE  each pull writes its copy (and musicfs its repository) into a new ext4 file
#                  system of SIZE (e.g. 12G), as scripts/bench-initial.sh does: a loop device
#                  over a sparse file in WORK, unmounted and removed after the pull (its copy
#                  checked against SRC first, in the first round). Needs root.
# Prints one tab-separated line per pull on stdout, then a Markdown table of the medians.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
me=bench-ssh-initial
source "$repo_root/scripts/bench-common.sh"
: "${SRC:?SRC=DIR names the library}"
SRC=$(cd "$SRC" && pwd)
MUSICFS=${MUSICFS:-now=$repo_root/target/release/musicfs}
REPS=${REPS:-3}
RSYNC=${RSYNC:-1}
SSH_OPTS=${SSH_OPTS:-}
WORK=${WORK:-$(mktemp -d /tmp/bench-ssh-initial.XXXXXX)}
((EUID == 0)) || { echo "bench-ssh-initial: run as root (sshd logs in as root)" >&2; exit 1; }
[[ -x /usr/sbin/sshd ]] || { echo "bench-ssh-initial: apt-get install openssh-server" >&2; exit 1; }
for tool in rsync python3 ssh; do
    command -v "$tool" >/dev/null || { echo "bench-ssh-initial: $tool is missing" >&2; exit 1; }
done

tools=()
declare -A binary
for pair in $MUSICFS; do
    name=${pair%%=*}
    binary[$name]=${pair#*=}
    [[ -x ${binary[$name]} ]] || { echo "bench-ssh-initial: ${binary[$name]} is not executable" >&2; exit 1; }
    tools+=("musicfs-$name")
done
((RSYNC == 0)) || tools+=(rsync)

mkdir -p "$WORK/bin" "$WORK/client" "$WORK/sshd" "$WORK/home/.ssh" "$WORK/logs" "$WORK/copies" /run/sshd
# The remote commands, timed: each run appends "USER SYSTEM" to remote-time.
for cmd in musicfs rsync; do
    printf '#!/bin/sh\nexec /usr/bin/time -a -o %s -f "%%U %%S" %s "$@"\n' \
        "$WORK/logs/remote-time" "$WORK/client/$cmd" >"$WORK/bin/$cmd"
    chmod +x "$WORK/bin/$cmd"
done
ln -sf "$(command -v rsync)" "$WORK/client/rsync"
start_private_sshd "$WORK"
coproc PROXY { exec python3 "$repo_root/scripts/countproxy.py" --target-host 127.0.0.1 --target-port "$sshd_port" 2>>"$WORK/logs/proxy.log"; }
read -r -t 10 proxy_port ctl_port <&"${PROXY[0]}"
trap 'kill "$sshd_pid" "$PROXY_PID" 2>/dev/null || true' EXIT
{
    echo "Host nas"
    echo "    HostName 127.0.0.1"
    echo "    Port $proxy_port"
    echo "    User root"
    echo "    IdentityFile $WORK/home/.ssh/id"
    echo "    IdentitiesOnly yes"
    echo "    StrictHostKeyChecking no"
    echo "    UserKnownHostsFile $WORK/home/.ssh/known_hosts"
    echo "    BatchMode yes"
    for o in $SSH_OPTS; do echo "    ${o%%=*} ${o#*=}"; done
} >"$WORK/home/.ssh/config"
export HOME=$WORK/home
unset SSH_AUTH_SOCK SSH_AGENT_PID
rsh="ssh -F $WORK/home/.ssh/config"

# The proxy's counts since the last take, once every connection has closed.
take() {
    local fd line
    exec {fd}<>"/dev/tcp/127.0.0.1/$ctl_port"
    printf 'take\n' >&"$fd"
    read -r -t 30 line <&"$fd" || line="?"
    exec {fd}>&-
    echo "$line"
}
# CPU (s) of the remote commands timed since the last call, once no session is left (a
# session's process can outlive its TCP connection).
remote_cpu() {
    local i
    for ((i = 0; i < 100; i++)); do
        pgrep -P "$sshd_pid" >/dev/null || break
        sleep 0.1
    done
    awk '{ s += $1 + $2 } END { printf "%.2f", s }' "$WORK/logs/remote-time" 2>/dev/null || echo 0
    : >"$WORK/logs/remote-time"
}

for _ in 1 2 3 4 5; do ssh -F "$WORK/home/.ssh/config" nas true 2>/dev/null && break; sleep 1; done
take >/dev/null

files=$(find "$SRC" -type f | wc -l)
bytes=$(find "$SRC" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%.0f", s }')
results=$WORK/runs.tsv
: >"$results"
n=0

# run TOOL ROUND: one cold pull into a new directory; appends a line to $results.
run() {
    local tool=$1 round=$2 dst load counts timing rcpu
    n=$((n + 1))
    dst=$WORK/copies/$n-$tool
    local repo=$WORK/copies/$n-repo fs=$WORK/copies/fs-$n
    if [[ -n ${FRESH_FS:-} ]]; then
        truncate -s "$FRESH_FS" "$fs.img"
        mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$fs.img"
        mkdir -p "$fs"
        mount -o loop "$fs.img" "$fs"
        dst=$fs/$tool repo=$fs/repo
        sync
    fi
    load=$(cut -d' ' -f1 /proc/loadavg)
    rm -rf "$WORK/remote-repo"
    if [[ $tool == musicfs-* ]]; then
        cp "${binary[${tool#musicfs-}]}" "$WORK/client/musicfs"
        "$WORK/client/musicfs" -q init "$repo" >/dev/null
    fi
    take >/dev/null
    remote_cpu >/dev/null
    if [[ $tool == rsync ]]; then
        /usr/bin/time -o "$WORK/logs/time" -f "%e %U %S %M" rsync -a -e "$rsh" "nas:$SRC/" "$dst/"
    else
        /usr/bin/time -o "$WORK/logs/time" -f "%e %U %S %M" \
            "$WORK/client/musicfs" -q --repo "$repo" sync "nas:$SRC" "$dst"
    fi
    if [[ -n ${FRESH_FS:-} ]]; then
        if [[ $round == 1 ]]; then
            diff -r "$SRC" "$dst" >/dev/null || { echo "bench-ssh-initial: $dst differs from $SRC" >&2; exit 1; }
        fi
        umount "$fs"
        rm -f "$fs.img"
    fi
    counts=$(take)
    rcpu=$(remote_cpu)
    timing=$(tail -n 1 "$WORK/logs/time")
    read -r wall user sys rss <<<"$timing"
    read -r up down _ <<<"$counts"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$round" "$wall" \
        "$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')" "$rss" \
        "$rcpu" \
        "$load" "$up" "$down" | tee -a "$results"
}

printf 'tool\tround\twall_s\tclient_cpu_s\tclient_rss_kib\tremote_cpu_s\tload\tup_B\tdown_B\n'
for ((r = 0; r < REPS; r++)); do
    for ((i = 0; i < ${#tools[@]}; i++)); do
        run "${tools[$(((i + r) % ${#tools[@]}))]}" "$((r + 1))"
    done
done

# One copy of each tool against SRC; then the copies go.
for tool in "${tools[@]}"; do
    [[ -z ${FRESH_FS:-} ]] || break
    copy=$(ls -d "$WORK"/copies/*-"$tool" | head -n 1)
    diff -r "$SRC" "$copy" >/dev/null || { echo "bench-ssh-initial: $copy differs from $SRC" >&2; exit 1; }
done
rm -rf "$WORK/copies" "$WORK/remote-repo"

python3 - "$results" "$files" "$bytes" "$REPS" <<'EOF'
import statistics, sys
from collections import defaultdict
runs = defaultdict(list)
order = []
for line in open(sys.argv[1]):
    tool, rnd, wall, cpu, rss, rcpu, load, up, down = line.rstrip("\n").split("\t")
    if tool not in order:
        order.append(tool)
    runs[tool].append(dict(wall=float(wall), cpu=float(cpu), rss=int(rss), rcpu=float(rcpu),
                           load=float(load), bytes=int(up) + int(down)))
med = lambda t, k: statistics.median(r[k] for r in runs[t])
print()
print(f"{int(sys.argv[2]):,} files, {int(sys.argv[3]):,} B; {sys.argv[4]} rounds, medians (range of walls)")
print()
print("| tool | wall | × rsync | client CPU | remote CPU | client peak RSS | bytes on the wire | load before |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for t in order:
    walls = [r["wall"] for r in runs[t]]
    vs = f"{med(t, 'wall') / med('rsync', 'wall'):.2f}" if "rsync" in runs and t != "rsync" else "—"
    loads = [r["load"] for r in runs[t]]
    print(f"| {t} | {med(t, 'wall'):.2f} s ({min(walls):.2f}–{max(walls):.2f}) | {vs} "
          f"| {med(t, 'cpu'):.2f} s | {med(t, 'rcpu'):.2f} s | {med(t, 'rss') / 1024:.1f} MiB "
          f"| {med(t, 'bytes'):,.0f} B | {min(loads):.2f}–{max(loads):.2f} |")
EOF
