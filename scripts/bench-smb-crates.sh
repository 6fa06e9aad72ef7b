#!/usr/bin/env bash
# The SMB client crates side by side: pavao (Samba's libsmbclient through FFI) against smb2
# 0.39.0 (pure Rust, what musicfs uses), doing the same three jobs against one smbd on
# 127.0.0.1, with the bytes and SMB messages on the wire counted by a proxy in between
# (scripts/countproxy.py --frames smb). For the crate decision in docs/decisions.md.
#
#   scripts/bench-smb-crates.sh        (Debian 12, as root: smbd is started here)
#
# The programs are scripts/smb-crates/ (a crate of its own, outside musicfs's workspace: pavao
# never enters musicfs's dependencies), one binary per client crate, each built with only its
# crate's tree:
#   smb-pavao list|read|push DIR       smb-smb2 list|read|push DIR
#   list   walk the tree depth first, each directory listed once with sizes, names in order
#   read   list, then read every file in full, one after another: pavao `Read::read` into a
#          1 MiB buffer (what libsmbclient sends for it is its own affair); smb2 its
#          pipelined stream (`Tree::download`); also, as musicfs's transport reads, smb2
#          positioned 1 MiB reads (`--mode reader`), and both with two readers in parallel
#          (`--workers 2`: threads sharing the one pavao client, tasks sharing the one smb2
#          connection)
#   push   list, then for every tenth file (10 %): write a new file of the same size under a
#          temporary name beside it, 1 MiB per write call, close, and rename it over the
#          original (what a musicfs push does)
# Every job signs in first; its wall time is the whole process's. Runs are interleaved
# (pavao, smb2, pavao, smb2, ...) REPS times; the table gives the median and the range.
# For context, musicfs itself: `musicfs scan smb://…` with an empty repository (reads, chunks
# and hashes every byte) and `musicfs sync smb://… DIR` into an empty directory.
#
# Server: Samba's smbd as in scripts/bench-nas.sh (one share, one user; `server signing = auto`,
# which smb2 answers by signing every session signed in with an account; whether libsmbclient
# signs is read from smbstatus during a run and printed). The library: scripts/genlib.py
# create --files FILES --seed 1 --mean-size MEAN_SIZE, in the share.
#
# Environment:
#   FILES=200         files in the library
#   MEAN_SIZE=1536K   their mean size
#   REPS=3            runs of each job per crate
#   BUILD=1           1: build each program from clean in a target directory of its own, timed
#                     (minutes); 0: build incrementally in scripts/smb-crates/target
#   MUSICFS=PATH      musicfs binary for the context rows (default: `cargo build --release`
#                     here); MUSICFS=none leaves them out
#   OUT=FILE          also write the Markdown report to FILE
#   KEEP=0            1: keep the work directory (its path is printed)
#
# Needs: python3 (with mutagen), smbd, smbpasswd and smbstatus (samba), libsmbclient-dev and
# pkg-config (pavao's build), cargo. Nothing is installed: a missing tool is named and the
# script exits 1. The Markdown report goes to stdout (and OUT); progress to stderr.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
scripts="$repo_root/scripts"
crates="$scripts/smb-crates"

cmdline=""
for v in FILES MEAN_SIZE REPS BUILD MUSICFS OUT KEEP; do
    [[ -n ${!v:-} ]] || continue
    val=${!v}
    [[ $val =~ [[:space:]] ]] && val="\"$val\""
    cmdline+="$v=$val "
done
cmdline+="scripts/bench-smb-crates.sh"

FILES=${FILES:-200}
MEAN_SIZE=${MEAN_SIZE:-1536K}
REPS=${REPS:-3}
BUILD=${BUILD:-1}
OUT=${OUT:-}
KEEP=${KEEP:-0}

me=bench-smb-crates
source "$scripts/bench-common.sh"

(($# == 0)) || die "no arguments: configure through the environment (see the head of $0)"
for n in "$FILES" "$REPS"; do
    [[ $n =~ ^[1-9][0-9]*$ ]] || die "not a positive integer: $n"
done
[[ $BUILD == 0 || $BUILD == 1 ]] || die "BUILD is 0 or 1"
[[ $(id -u) -eq 0 ]] || die "run as root: smbd is started here"
need python3 python3
need smbd samba
need smbpasswd samba
need smbstatus samba
need pkg-config pkg-config
need cargo "Rust (https://rustup.rs)"
pkg-config --exists smbclient || die "libsmbclient's headers not found (pkg-config smbclient): apt-get install libsmbclient-dev"
python3 -c 'import mutagen' 2>/dev/null || die "python module mutagen not found: pip install mutagen"

work=$(mktemp -d /tmp/bench-smb-crates.XXXXXX)
chmod 0755 "$work"
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    if ((KEEP)); then say "work directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the programs ------------------------------------------------------------------------------
# build FEATURE BIN: prints "SECONDS PATH"
build() {
    local feature=$1 bin=$2 target start end
    if ((BUILD)); then
        target=$work/target-$feature
    else
        target=$crates/target
    fi
    start=$(date +%s.%N)
    (cd "$crates" && CARGO_TARGET_DIR=$target cargo build --release --quiet --locked \
        --no-default-features --features "$feature" --bin "$bin") >&2 ||
        die "building $bin failed"
    end=$(date +%s.%N)
    printf '%s %s\n' "$(python3 -c "print(f'{$end - $start:.0f}')")" "$target/release/$bin"
}
say "building smb-pavao and smb-smb2$( ((BUILD)) && echo ' from clean (minutes)')"
read -r pavao_build pavao_bin < <(build pavao smb-pavao)
read -r smb2_build smb2_bin < <(build smb2 smb-smb2)
# Binary size, and what it loads at run time that is not in every Rust binary (libc, libm,
# libgcc_s and the loader are left out).
linked() { # BIN: "N libraries, BYTES bytes"
    ldd "$1" | awk '$3 ~ /^\// { print $3 }' |
        grep -v -E '/(libc|libm|libgcc_s|ld-linux[^/]*)\.so' |
        xargs -r stat -L -c %s | awk '{ n++; b += $1 } END { printf "%d %d\n", n, b }'
}
read -r pavao_libs pavao_lib_bytes < <(linked "$pavao_bin")
read -r smb2_libs smb2_lib_bytes < <(linked "$smb2_bin")
pavao_size=$(stat -c %s "$pavao_bin")
smb2_size=$(stat -c %s "$smb2_bin")
pavao_crates=$(cd "$crates" && cargo tree --locked -e normal --no-default-features --features pavao --prefix none | sort -u | wc -l)
smb2_crates=$(cd "$crates" && cargo tree --locked -e normal --no-default-features --features smb2 --prefix none | sort -u | wc -l)

musicfs_binary none


# --- the server, and a counting proxy in front of it --------------------------------------------
s=$work/smb
smb_user=root
smb_password=bench-$(python3 -c 'import secrets; print(secrets.token_hex(8))')
start_smbd "$s" "$smb_user" "$smb_password"

python3 "$scripts/countproxy.py" --frames smb --target-port "$smb_real_port" \
    >"$work/proxy.port" 2>"$work/proxy.log" &
pids+=($!)
for _ in $(seq 100); do [[ -s $work/proxy.port ]] && break; sleep 0.1; done
read -r smb_port ctl_port <"$work/proxy.port" || die "the proxy did not start (see $work/proxy.log)"
exec {ctl}<>"/dev/tcp/127.0.0.1/$ctl_port"
proxy_take() { # WHAT: "UP DOWN REQS" since the last take, once every connection has closed
    local line up down conns open reqs
    printf 'take\n' >&"$ctl"
    read -r line <&"$ctl" || die "the proxy stopped (see $work/proxy.log)"
    read -r up down conns open reqs <<<"$line"
    [[ $open == 0 ]] || die "$open connection(s) still open 10 s after $1: the counts would be incomplete"
    printf '%s %s %s\n' "$up" "$down" "$reqs"
}
proxy_take "the set-up" >/dev/null

export SMB_HOST=127.0.0.1 SMB_PORT=$smb_port SMB_SHARE=music SMB_USER=$smb_user
export SMB_PASSWORD=$smb_password MUSICFS_SMB_PASSWORD=$smb_password

machine="$(nproc) CPUs, load average $(cut -d' ' -f1 /proc/loadavg) at the start; smbd and libsmbclient from Samba $(dpkg-query -W -f '${Version}' libsmbclient 2>/dev/null || smbd --version); $(rustc --version | cut -d' ' -f1-2)"

# --- the library -------------------------------------------------------------------------------
say "generating $FILES files of about $MEAN_SIZE (genlib.py)"
python3 "$scripts/genlib.py" create "$s/share/lib" --files "$FILES" --seed 1 --mean-size "$MEAN_SIZE" 2>/dev/null
lib_bytes=$(find "$s/share/lib" -type f -printf '%s\n' | awk '{ n += $1 } END { print n }')
lib_files=$(find "$s/share/lib" -type f | wc -l)
lib_dirs=$(find "$s/share/lib" -mindepth 1 -type d | wc -l)

# --- the runs ----------------------------------------------------------------------------------
rows=$work/rows.tsv
: >"$rows"
signing=$work/signing
: >"$signing"
# run LABEL COMMAND...: the process's wall time and the proxy's counts, one row.
run() {
    local label=$1 start end up down reqs log=$work/log/$(tr "/ #" "___" <<<"$1")
    shift
    mkdir -p "$work/log"
    start=$(date +%s.%N)
    "$@" >"$log.out" 2>"$log.err" || die "$label failed (see $log.err)"
    end=$(date +%s.%N)
    read -r up down reqs < <(proxy_take "$label")
    printf '%s\t%s\t%s\t%s\t%s\n' "$label" "$(python3 -c "print(f'{$end - $start:.3f}')")" \
        "$up" "$down" "$reqs" >>"$rows"
    say "  $label: $(python3 -c "print(f'{$end - $start:.2f}')") s, $down B down, $up B up, $reqs messages"
}
# While a read runs, smbstatus says whether its session is signed (read once per crate).
watch_signing() { # CRATE
    (
        for _ in $(seq 50); do
            sleep 0.1
            line=$(smbstatus -s "$s/smb.conf" -b 2>/dev/null | awk -v u="$smb_user" '$2 == u')
            [[ -n $line ]] && { printf '%s\t%s\n' "$1" "$line" >>"$signing"; break; }
        done
    ) &
    watchers+=($!)
}
watchers=()

# The first push of each crate under an inotify watch of the share's directory on the server:
# is each file renamed over its old self in one step, or deleted first and then renamed?
replace_check() { # CRATE BIN
    local w
    python3 "$crates/watch-replace.py" "$s/share/lib" >"$work/replace-$1" 2>&1 &
    w=$!
    for _ in $(seq 100); do grep -q ready "$work/replace-$1" && break; sleep 0.05; done
    run "push/$1#$r" "$2" push lib
    sleep 0.5 # the watcher drains its queue
    kill -TERM "$w"
    wait "$w" || true
    printf '%s\t%s\n' "$1" "$(tail -n 1 "$work/replace-$1")" >>"$work/replaces"
}
: >"$work/replaces"

musicfs_scan() { # fresh repository each time: every byte read, chunked and hashed
    rm -rf "$work/repo-scan"
    MUSICFS_REPO=$work/repo-scan "$musicfs" init "$work/repo-scan" >/dev/null
    MUSICFS_REPO=$work/repo-scan "$musicfs" --json scan "smb://$smb_user@127.0.0.1:$smb_port/music/lib"
}
musicfs_sync() { # fresh repository and an empty destination each time
    rm -rf "$work/repo-sync" "$work/pull"
    MUSICFS_REPO=$work/repo-sync "$musicfs" init "$work/repo-sync" >/dev/null
    MUSICFS_REPO=$work/repo-sync "$musicfs" --json sync "smb://$smb_user@127.0.0.1:$smb_port/music/lib" "$work/pull"
}

for r in $(seq "$REPS"); do
    say "round $r of $REPS"
    for c in pavao smb2; do
        bin=${c}_bin
        run "list/$c#$r" "${!bin}" list lib
    done
    for c in pavao smb2; do
        bin=${c}_bin
        ((r == 1)) && watch_signing "$c"
        run "read/$c#$r" "${!bin}" read lib
    done
    run "read/smb2 reader#$r" "$smb2_bin" read lib --mode reader
    for c in pavao smb2; do
        bin=${c}_bin
        run "read/$c 2 workers#$r" "${!bin}" read lib --workers 2
    done
    for c in pavao smb2; do
        bin=${c}_bin
        if ((r == 1)); then
            replace_check "$c" "${!bin}"
        else
            run "push/$c#$r" "${!bin}" push lib
        fi
    done
    if [[ $musicfs != none ]]; then
        run "musicfs scan#$r" musicfs_scan
        run "musicfs sync#$r" musicfs_sync
    fi
done
for p in "${watchers[@]}"; do wait "$p" || true; done
find "$s/share/lib" -name '.*.retag' | grep -q . && die "a temporary file was left in the share"

# --- the report ------------------------------------------------------------------------------
report() {
    PYTHONPATH="$scripts" python3 - "$rows" "$lib_bytes" "$lib_files" "$lib_dirs" "$REPS" "$(date -u +%Y-%m-%d)" \
        "$cmdline" "$machine" "$signing" \
        "$pavao_build" "$pavao_size" "$pavao_libs" "$pavao_lib_bytes" "$pavao_crates" \
        "$smb2_build" "$smb2_size" "$smb2_libs" "$smb2_lib_bytes" "$smb2_crates" "$BUILD" \
        "$work/replaces" <<'EOF'
import sys
from benchtable import Runs, num
(rows_file, lib_bytes, files, dirs, reps, day, cmdline, machine, signing,
 pb, ps, pl, plb, pc, sb, ss, sl, slb, sc, build, replaces) = sys.argv[1:]
lib_bytes, files, dirs, reps = int(lib_bytes), int(files), int(dirs), int(reps)
runs = Runs(rows_file, 1)
order, med, rng = runs.order, runs.med, runs.rng
what = {
    "list/pavao": "pavao: walk (`list_dirplus` per directory)",
    "list/smb2": "smb2: walk (`list_directory` per directory)",
    "read/pavao": "pavao: read all (`read`, 1 MiB buffer)",
    "read/smb2": "smb2: read all (`download`, pipelined)",
    "read/smb2 reader": "smb2: read all (`read_at`, 1 MiB, one at a time, as musicfs)",
    "read/pavao 2 workers": "pavao: read all, 2 threads",
    "read/smb2 2 workers": "smb2: read all (`download`), 2 tasks",
    "push/pavao": "pavao: retag push (10 %: write temp, rename over)",
    "push/smb2": "smb2: retag push (10 %: write temp, rename over)",
    "musicfs scan": "musicfs scan, empty repository (smb2; reads, chunks, hashes)",
    "musicfs sync": "musicfs sync to an empty directory (smb2)",
}
print(f"#### smb2 against pavao ({day})")
print()
print(f"`{cmdline}` — {files:,} files in {dirs} directories, {lib_bytes:,} bytes, in a share of one")
print("smbd on 127.0.0.1; TCP payload and SMB messages counted by scripts/countproxy.py --frames smb")
print(f"in front of it. Wall time of the whole process (signing in included), median of {reps} runs")
print("(range in brackets), the crates interleaved. Down is server to client.")
print(f"{machine}.")
print()
print("| Job | Wall (s) | MB/s on the wire | Bytes down | Bytes up | SMB messages |")
print("|---|---:|---:|---:|---:|---:|")
for key in order:
    wall = med(key, 0)
    moved = max(med(key, 1), med(key, 2))
    rate = f"{moved / wall / 1e6:.0f}" if moved > 10e6 else ""
    print(f"| {what.get(key, key)} | {wall:.2f}{rng(key, 0, lambda v: f'{v:.2f}')} | {rate} | "
          f"{num(med(key, 2))}{rng(key, 2, num)} | {num(med(key, 1))}{rng(key, 1, num)} | "
          f"{num(med(key, 3))}{rng(key, 3, num)} |")
print()
kind = "from clean, each in a target directory of its own" if build == "1" else "incremental"
print(f"| Program | Build ({kind}) | Crates | Binary | Shared libraries loaded beyond libc |")
print("|---|---:|---:|---:|---|")
for name, b, s, l, lb, c in (("smb-pavao", pb, ps, pl, plb, pc), ("smb-smb2", sb, ss, sl, slb, sc)):
    print(f"| {name} | {b} s | {c} | {int(s)/1e6:.1f} MB | {l} ({int(lb)/1e6:.1f} MB) |")
print()
seen = {}
for line in open(signing):
    c, rest = line.rstrip("\n").split("\t", 1)
    seen[c] = rest
for c in ("pavao", "smb2"):
    print(f"- smbstatus during {c}'s read: `{' '.join(seen.get(c, 'not seen (the read ended first)').split())}`")
for line in open(replaces):
    c, rest = line.rstrip("\n").split("\t", 1)
    print(f"- {c}'s first retag push, seen by inotify in the share on the server: `{rest}` "
          "(replaced: renamed over the old file in one step; deleted_first: the old file "
          "deleted, then the new one renamed to its name)")
EOF
}
if [[ -n $OUT ]]; then report | tee "$OUT"; else report; fi
