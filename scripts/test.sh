#!/usr/bin/env bash
# The whole test suite, as CI runs it on a fresh Debian 12 machine.
#
#   bash scripts/test.sh
#
# Installs what the tests need from Debian's packages when it is missing
# (python3 for the library generator), then checks formatting and lints and
# runs every test target.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v python3 >/dev/null || need+=(python3)
if ((${#need[@]})); then
    echo "test.sh: installing ${need[*]}" >&2
    if [[ $(id -u) -ne 0 ]]; then
        echo "test.sh: missing ${need[*]} and not root; install with: sudo apt-get install ${need[*]}" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --all-targets --locked --release
