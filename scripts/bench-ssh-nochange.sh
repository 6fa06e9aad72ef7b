#!/usr/bin/env bash
# A pull through the remote agent of a large library, then no-change pulls: wall, peak RSS and
# the bytes on the wire, counted by scripts/countproxy.py between the client and a private
# sshd on 127.0.0.1 (the SSH session's own cost is `ssh nas true` through the same proxy).
#
#   SRC=DIR scripts/bench-ssh-nochange.sh          (as root, Debian's openssh-server installed)
#
# Environment:
#   SRC=DIR        the library the "remote" side serves (e.g. scripts/genlib.py create DIR
#                  --files 100000 --seed 3 --mean-size 8K)
#   MUSICFS=PATH   musicfs binary (default: target/release/musicfs), the client and the agent
#   REPS=3         no-change pulls
#   WORK=DIR       keys, sshd configuration, the local copy and both repositories (default: a
#                  new directory under /tmp); a WORK that already holds the copy skips the
#                  initial pull
# Prints one line per run: wall, peak RSS, and "UP DOWN CONNS OPEN" from the proxy.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
me=bench-ssh-nochange
source "$repo_root/scripts/bench-common.sh"
: "${SRC:?SRC=DIR names the library}"
SRC=$(cd "$SRC" && pwd)
MUSICFS=${MUSICFS:-$repo_root/target/release/musicfs}
REPS=${REPS:-3}
WORK=${WORK:-$(mktemp -d /tmp/bench-ssh-nochange.XXXXXX)}
((EUID == 0)) || { echo "bench-ssh-nochange: run as root (sshd logs in as root)" >&2; exit 1; }
[[ -x /usr/sbin/sshd ]] || { echo "bench-ssh-nochange: apt-get install openssh-server" >&2; exit 1; }

mkdir -p "$WORK/bin" "$WORK/sshd" "$WORK/home/.ssh" "$WORK/logs" /run/sshd
cp "$MUSICFS" "$WORK/bin/musicfs"
start_private_sshd "$WORK"
coproc PROXY { exec python3 "$repo_root/scripts/countproxy.py" --target-host 127.0.0.1 --target-port "$sshd_port" 2>>"$WORK/logs/proxy.log"; }
read -r -t 10 proxy_port ctl_port <&"${PROXY[0]}"
trap 'kill "$sshd_pid" "$PROXY_PID" 2>/dev/null || true' EXIT
cat >"$WORK/home/.ssh/config" <<CFG
Host nas
    HostName 127.0.0.1
    Port $proxy_port
    User root
    IdentityFile $WORK/home/.ssh/id
    IdentitiesOnly yes
    StrictHostKeyChecking no
    UserKnownHostsFile $WORK/home/.ssh/known_hosts
    BatchMode yes
CFG
export HOME=$WORK/home
unset SSH_AUTH_SOCK SSH_AGENT_PID

# The proxy's counts since the last take, once every connection has closed.
take() {
    local fd line
    exec {fd}<>"/dev/tcp/127.0.0.1/$ctl_port"
    printf 'take\n' >&"$fd"
    read -r -t 30 line <&"$fd" || line="?"
    exec {fd}>&-
    echo "$line"
}
for _ in 1 2 3; do ssh -F "$WORK/home/.ssh/config" nas true 2>/dev/null && break; sleep 1; done
take >/dev/null
ssh -F "$WORK/home/.ssh/config" nas true
echo "setup (ssh nas true): bytes $(take)"
if [[ ! -d $WORK/lib ]]; then
    "$MUSICFS" init "$WORK/repo" >/dev/null
    /usr/bin/time -f "initial: %e s, peak RSS %M KiB, CPU %U + %S s" "$MUSICFS" -q --repo "$WORK/repo" sync "nas:$SRC" "$WORK/lib"
    echo "initial: bytes $(take)"
fi
for ((i = 1; i <= REPS; i++)); do
    /usr/bin/time -f "no-change $i: %e s, peak RSS %M KiB" "$MUSICFS" --json --repo "$WORK/repo" sync "nas:$SRC" "$WORK/lib" |
        python3 -c 'import json, sys; d = json.loads(sys.stdin.read().splitlines()[-1]); assert d["files_changed"] == 0, d'
    echo "no-change $i: bytes $(take)"
done
