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
