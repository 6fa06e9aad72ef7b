#!/usr/bin/env bash
# The whole test suite, as CI runs it on a fresh Debian 12 machine.
#
#   bash scripts/test.sh
#
# 1. Installs what the tests need when it is missing: from Debian, python3 (library
#    generator), ffmpeg (real encoded audio), and the real tag editors the tag-edit tests
#    drive — id3v2, metaflac (flac), vorbiscomment and oggenc (vorbis-tools), kid3-cli —
#    and OpenSSH (openssh-server: the sshd the SSH tests start on 127.0.0.1; openssh-client:
#    ssh, ssh-keygen, ssh-agent); fuse3 (fusermount3) for the mount tests and acl (getfacl,
#    setfacl: the unprivileged mount tests give nobody access to /dev/fuse); g++ (libFuzzer's
#    runtime is C++); procps (kill, for stopping test servers); util-linux (setpriv, mount)
#    for the tests that run as the unprivileged user nobody and on a small tmpfs; e2fsprogs
#    (mkfs.ext4 and filefrag: verify's damage test flips a byte in a loop-mounted ext4 image);
#    samba (smbd and smbpasswd: the SMB server the SMB tests start on 127.0.0.1, under setsid);
#    nfs-ganesha with nfs-ganesha-vfs and rpcbind (the NFS server of the NFS tests, run with
#    its own rpcbind in a private mount namespace, off port 111);
#    from PyPI, mutagen (tag editor for Opus, MP4 and covers) and, in a venv (python3-venv),
#    moto[server] 5 (the S3 server of the S3 tests); from crates.io, garage 2.5.0 (the
#    three-node S3 cluster of the multi-site test), built once with cargo install into
#    ${XDG_CACHE_HOME:-~/.cache}/musicfs-test/garage (minutes on a fresh machine, in the
#    background while the rest goes on).
# 2. Fetches mutagen 1.48.1's test corpus (100 real and broken audio files) from PyPI.
# 3. cargo fmt --check, clippy -D warnings, rustdoc -D warnings, every test target (built with
#    the `ci` profile of Cargo.toml) but the Garage test.
# 4. (As root) the tests where file modes matter, again as the unprivileged user nobody, and
#    the tests of a mount by a user who is not root (through fusermount3), as nobody.
# 5. The Garage test, once Garage is built.
# 6. With FUZZ_SECONDS=N, a fuzz run of N seconds of every container parser (scripts/fuzz.sh).
#    Off by default: its sanitizer build of the engine costs more than the rest of the suite
#    (docs/decisions.md, "The test command's time"); the parsers' property tests, which run
#    every time, try random edits of real files.
set -euo pipefail
cd "$(dirname "$0")/.."

# Garage (crates.io garage 2.5.0): the three-node S3 cluster of tests/garage_sites.rs, built
# once into a cache that later runs reuse; the tests find it through MUSICFS_TEST_GARAGE. The
# fewest features that build (LMDB; bundled-libs, without which Garage refuses to compile) and
# the dev profile without debug info: a third of the release build's CPU time
# (docs/decisions.md). Its target directory is its own and the profile is set on this command
# alone, so our own build is neither touched nor rebuilt; the target directory stays after a
# failed build (a re-run resumes) and goes after a good one.
# It builds in the background from the start, at the lowest priority: it takes the CPU the
# package installs and the test runs leave idle and yields it to our own build; the Garage test
# runs last, once it is built (docs/decisions.md, "The test command's time").
garage_root="${XDG_CACHE_HOME:-$HOME/.cache}/musicfs-test/garage"
garage_version=2.5.0
garage_log=$(mktemp /tmp/musicfs-garage-build.XXXXXX)
garage_pid=
if ! "$garage_root/bin/garage" --version 2>/dev/null | grep -q "cargo:$garage_version "; then
    echo "test.sh: building garage $garage_version from crates.io into $garage_root in the background (minutes, once; log in $garage_log)" >&2
    (
        CARGO_TARGET_DIR="$garage_root/target" CARGO_PROFILE_DEV_DEBUG=false \
            nice -n 19 cargo install --quiet --locked --force --debug garage \
            --version "$garage_version" --no-default-features --features bundled-libs,lmdb \
            --root "$garage_root"
        rm -rf "$garage_root/target"
    ) >"$garage_log" 2>&1 &
    garage_pid=$!
fi
export MUSICFS_TEST_GARAGE="$garage_root/bin/garage"

need=()
for tool in python3:python3 ffmpeg:ffmpeg id3v2:id3v2 metaflac:flac vorbiscomment:vorbis-tools \
    oggenc:vorbis-tools kid3-cli:kid3-cli /usr/sbin/sshd:openssh-server ssh:openssh-client \
    ssh-keygen:openssh-client ssh-agent:openssh-client ssh-add:openssh-client \
    fusermount3:fuse3 g++:g++ /bin/kill:procps setpriv:util-linux mkfs.ext4:e2fsprogs \
    filefrag:e2fsprogs getfacl:acl setfacl:acl /usr/sbin/smbd:samba smbpasswd:samba \
    setsid:util-linux ganesha.nfsd:nfs-ganesha /usr/sbin/rpcbind:rpcbind unshare:util-linux; do
    command -v "${tool%%:*}" >/dev/null || need+=("${tool#*:}")
done
# The NFS tests' ganesha serves its export through the VFS backend, a plug-in of its own.
[[ -e /usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so ]] || need+=(nfs-ganesha-vfs)
[[ -e /usr/share/zoneinfo/Europe/Paris ]] || need+=(tzdata) # TZ=Europe/Paris in time_cli.rs
if ! command -v python3 >/dev/null || ! python3 -m pip --version >/dev/null 2>&1; then
    need+=(python3-pip)
fi
# moto's venv needs ensurepip, which Debian ships in python3-venv.
if ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
    need+=(python3-venv)
fi
if ((${#need[@]})); then
    mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
    echo "test.sh: installing ${need[*]}" >&2
    if [[ $(id -u) -ne 0 ]]; then
        echo "test.sh: missing ${need[*]} and not root; install with: sudo apt-get install ${need[*]}" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if ! python3 -c 'import mutagen' 2>/dev/null; then
    echo "test.sh: installing mutagen from PyPI" >&2
    python3 -m pip install -q mutagen==1.48.1 ||
        python3 -m pip install -q --break-system-packages mutagen==1.48.1
fi
# moto (PyPI moto[server] 5): the S3 server the S3 tests start on 127.0.0.1, in a venv of its
# own that later runs reuse. The tests find it through MUSICFS_MOTO_SERVER.
moto_venv="${XDG_CACHE_HOME:-$HOME/.cache}/musicfs-test/moto-venv"
if [[ ! -x "$moto_venv/bin/moto_server" ]]; then
    echo "test.sh: installing moto[server] from PyPI into $moto_venv" >&2
    rm -rf "$moto_venv"
    python3 -m venv "$moto_venv"
    "$moto_venv/bin/pip" install -q 'moto[server]==5.*'
fi
export MUSICFS_MOTO_SERVER="$moto_venv/bin/moto_server"
bash scripts/fetch-mutagen-corpus.sh

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked --quiet
# Every test binary runs even after one fails, so a failed run names every failure. The
# profile is `ci` (Cargo.toml: release at opt-level 1, 29 % less build CPU). Every target but
# the Garage test now, while Garage may still be building; that test runs at the end.
targets=(--lib --bins --examples --benches)
for t in tests/*.rs; do
    t=$(basename "$t" .rs)
    [[ $t == garage_sites ]] || targets+=(--test "$t")
done
status=0
cargo test --locked --profile ci --no-fail-fast "${targets[@]}" || status=$?

# 4. The tests where file modes matter, run again as the unprivileged user nobody (as root,
#    modes bind nobody). They run from copies in a directory nobody can reach, because the
#    checkout may not be (/root is 0700); MUSICFS_TEST_BIN and MUSICFS_TEST_MANIFEST_DIR point
#    the tests at the copies. Tests that need root themselves (a tmpfs mount) are skipped.
#    tests/mount_unprivileged.rs mounts as nobody through fusermount3: its test of a user
#    without access to /dev/fuse runs first, then nobody is given access to /dev/fuse (an ACL
#    entry for nobody alone; the device's ACL and mode are restored on exit) for the others.
if [[ $(id -u) -eq 0 ]]; then
    unprivileged_tests=(permissions names_and_kinds adoption locks cli_sync mount_unprivileged)
    stage=$(mktemp -d /tmp/musicfs-unprivileged.XXXXXX)
    fuse_acl="$stage/fuse.acl"
    getfacl --numeric --absolute-names /dev/fuse >"$fuse_acl"
    # Restores /dev/fuse before the stage (holding the saved ACL) goes.
    trap 'setfacl --restore="$fuse_acl"; rm -rf "$stage"' EXIT
    mkdir -p "$stage/bin" "$stage/home" "$stage/tmp"
    cp target/ci/musicfs "$stage/bin/"
    cp -r fixtures scripts "$stage/"
    args=()
    for t in "${unprivileged_tests[@]}"; do args+=(--test "$t"); done
    cargo test --locked --profile ci --no-run --message-format=json "${args[@]}" 2>/dev/null |
        python3 -c '
import json, os, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["target"]["name"], m["executable"])
' | while read -r name exe; do cp "$exe" "$stage/bin/test-$name"; done
    chmod -R a+rX "$stage"
    chmod 0600 "$fuse_acl"
    chown -R nobody:nogroup "$stage/home" "$stage/tmp"
    as_nobody() {
        (cd "$stage" && setpriv --reuid=nobody --regid=nogroup --clear-groups \
            env HOME="$stage/home" TMPDIR="$stage/tmp" MUSICFS_TEST_BIN="$stage/bin/musicfs" \
            MUSICFS_TEST_MANIFEST_DIR="$stage" "$@")
    }
    for t in "${unprivileged_tests[@]}"; do
        echo "test.sh: tests/$t.rs as nobody" >&2
        if [[ $t == mount_unprivileged ]]; then
            no_access=a_user_without_access_to_dev_fuse_is_told_so
            as_nobody "$stage/bin/test-$t" --exact "$no_access" -q
            setfacl -m u:nobody:rw /dev/fuse
            as_nobody "$stage/bin/test-$t" --skip "$no_access" -q
            setfacl --restore="$fuse_acl"
        else
            as_nobody "$stage/bin/test-$t" --skip full_disk -q
        fi
    done
fi

# 5. The Garage test, once Garage is built.
if [[ -n $garage_pid ]]; then
    echo "test.sh: waiting for the garage build" >&2
    if ! wait "$garage_pid"; then
        tail -n 40 "$garage_log" >&2
        echo "test.sh: building garage $garage_version failed (log above and in $garage_log)" >&2
        exit 1
    fi
fi
rm -f "$garage_log"
cargo test --locked --profile ci --no-fail-fast --test garage_sites || status=$?
if ((status)); then
    echo "test.sh: tests failed (above)" >&2
    exit "$status"
fi

fuzz_seconds=${FUZZ_SECONDS:-0}
if [[ "$fuzz_seconds" != 0 ]]; then
    bash scripts/fuzz.sh "$fuzz_seconds"
fi
