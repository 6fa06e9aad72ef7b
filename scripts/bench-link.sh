#!/usr/bin/env bash
# musicfs (agent and SFTP fallback) against rsync over an emulated far link: 40 ms each way
# (80 ms round trip) at 50 Mbit/s, between two network namespaces.
#
#   scripts/bench-link.sh          (as root; configure through the environment)
#
# This kernel has no netem qdisc, so the link is emulated in user space: scripts/linkemu.py
# creates two TUN devices and forwards every IP packet between them with the delay and the
# rate (a drop-tail queue of 100 ms). One device goes into the namespace mfsl-far, where
# sshd listens on 10.77.0.2; the other into mfsl-near (10.77.0.1), where every client runs:
# the tools, and the byte-counting proxy (scripts/countproxy.py) in front of the link. The
# link is checked first (scripts/linkemu.py probe: round trip and throughput over TCP), then
# scripts/bench-ssh.sh runs unchanged inside mfsl-near with SSHD_ADDR and SSHD_NETNS set, so
# its scenarios, checks and report are the ones of the loopback benchmark.
#
# Environment: everything bench-ssh.sh reads (ALBUMS, TRACKS, SECONDS_PER_TRACK, FORMATS,
# REPS, TOOLS, MUSICFS, OUT, KEEP), with defaults for >= 200 tracks here: ALBUMS=13 TRACKS=8
# FORMATS=mp3,flac SECONDS_PER_TRACK=30 REPS=3; plus
#   DELAY_MS=40      one-way delay
#   RATE_MBIT=50     rate each way
# Needs: iproute2 (ip netns), /dev/net/tun, and what bench-ssh.sh needs.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
scripts="$repo_root/scripts"
me=bench-link
source "$scripts/bench-common.sh"

((EUID == 0)) || die "run as root (network namespaces, TUN devices)"
command -v ip >/dev/null || die "ip not found: apt-get install iproute2"
[[ -c /dev/net/tun ]] || die "/dev/net/tun is missing"

export ALBUMS=${ALBUMS:-13} TRACKS=${TRACKS:-8} FORMATS=${FORMATS:-mp3,flac}
export SECONDS_PER_TRACK=${SECONDS_PER_TRACK:-30} REPS=${REPS:-3}
DELAY_MS=${DELAY_MS:-40}
RATE_MBIT=${RATE_MBIT:-50}

near=mfsl-near far=mfsl-far
tun_near=mfsl0 tun_far=mfsl1
near_addr=10.77.0.1 far_addr=10.77.0.2
link_pid=""
link_log=$(mktemp -t musicfs-linkemu.XXXXXX)
cleanup() {
    local rc=$?
    if [[ -n $link_pid ]]; then
        kill "$link_pid" 2>/dev/null || true
        wait "$link_pid" 2>/dev/null || true
        cat "$link_log" >&2
    fi
    ip netns del "$near" 2>/dev/null || true
    ip netns del "$far" 2>/dev/null || true
    rm -f "$link_log"
    return "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for ns in "$near" "$far"; do
    ! ip netns list | grep -qw "$ns" || die "network namespace $ns exists: another run, or a leftover (ip netns del $ns)"
    ip netns add "$ns"
done

coproc LINK { exec python3 "$scripts/linkemu.py" link --tun-a "$tun_near" --tun-b "$tun_far" \
    --delay-ms "$DELAY_MS" --rate-mbit "$RATE_MBIT" 2>"$link_log"; }
link_pid=$LINK_PID
read -r -t 10 ready <&"${LINK[0]}" || die "linkemu.py did not start: $(cat "$link_log")"
[[ $ready == ready ]] || die "linkemu.py said '$ready'"

ip link set "$tun_near" netns "$near"
ip link set "$tun_far" netns "$far"
ip -n "$near" addr add "$near_addr" peer "$far_addr" dev "$tun_near"
ip -n "$far" addr add "$far_addr" peer "$near_addr" dev "$tun_far"
for ns in "$near" "$far"; do ip -n "$ns" link set lo up; done
ip -n "$near" link set "$tun_near" up
ip -n "$far" link set "$tun_far" up

# The link as TCP sees it, before anything is measured over it.
ip netns exec "$far" python3 "$scripts/linkemu.py" probe-server --host "$far_addr" --port 5001 --once >/dev/null &
probe_pid=$!
sleep 0.5
probe=$(ip netns exec "$near" python3 "$scripts/linkemu.py" probe --host "$far_addr" --port 5001 --mbytes 20) ||
    die "the link does not carry TCP"
wait "$probe_pid" || true
say "link ${DELAY_MS} ms each way, ${RATE_MBIT} Mbit/s: $probe"

if [[ -z ${MUSICFS:-} ]]; then
    say "building musicfs (cargo build --release)"
    (cd "$repo_root" && cargo build --release --quiet --bin musicfs) || die "cargo build --release failed"
    target_dir=$(cd "$repo_root" && cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
    export MUSICFS="$target_dir/release/musicfs"
fi

export SSHD_ADDR=$far_addr SSHD_NETNS=$far
status=0
report=$(ip netns exec "$near" "$scripts/bench-ssh.sh") || status=$?
printf '%s\n' "- link: scripts/linkemu.py, DELAY_MS=$DELAY_MS RATE_MBIT=$RATE_MBIT; checked with linkemu.py probe: $probe"
printf '%s\n' "$report"
exit "$status"
