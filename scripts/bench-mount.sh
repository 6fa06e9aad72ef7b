#!/bin/sh
# Benchmarks `musicfs mount` (docs/benchmarks.md, "Mount"): sequential read of a 512 MiB file
# through the mount against the same file read directly, stat latency on a 100k-file snapshot,
# and the time from starting `musicfs mount --foreground` to the first listing at 1k and 100k
# files. Needs root (FUSE via mount(2), /proc/sys/vm/drop_caches) and Debian's fuse3.
#
#   scripts/bench-mount.sh [WORKDIR]        (default: a new directory under /tmp)
set -eu
BIN=${MUSICFS:-${CARGO_TARGET_DIR:-target}/release/musicfs}
W=${1:-$(mktemp -d /tmp/musicfs-bench-mount.XXXXXX)}
mkdir -p "$W"
export BIN W
python3 - <<'PY'
import os, subprocess, time, statistics, shutil

BIN, W = os.environ["BIN"], os.environ["W"]

def run(*args):
    subprocess.run(list(args), check=True, stdout=subprocess.DEVNULL)

def mount(repo, mnt):
    os.makedirs(mnt, exist_ok=True)
    t0 = time.perf_counter()
    p = subprocess.Popen([BIN, "--repo", repo, "-q", "mount", "--foreground", mnt])
    while True:
        try:
            if os.listdir(mnt):
                break
        except OSError:
            pass
        time.sleep(0.0005)
    return p, time.perf_counter() - t0

def unmount(p, mnt):
    p.terminate()
    p.wait()

def drop_caches():
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        pass

def read_rate(path, bs=1 << 20):
    fd = os.open(path, os.O_RDONLY)
    buf = bytearray(bs)
    n = 0
    t0 = time.perf_counter()
    while True:
        k = os.readv(fd, [buf])
        if k == 0:
            break
        n += k
    dt = time.perf_counter() - t0
    os.close(fd)
    return n / dt / 1e9

def origin_dir(lib):
    return os.path.realpath(lib).lstrip("/").replace("/", "_")

# 1. Sequential read of a 512 MiB file.
lib, repo = f"{W}/big", f"{W}/big-repo"
os.makedirs(lib, exist_ok=True)
big = f"{lib}/big.bin"
if not os.path.exists(big):
    with open(big, "wb") as f:
        for _ in range(512):
            f.write(os.urandom(1 << 20))
run(BIN, "-q", "init", repo)
run(BIN, "--repo", repo, "-q", "scan", lib)
mnt = f"{W}/mnt-big"
rows = []
for attempt in range(3):
    p, _ = mount(repo, mnt)
    through = f"{mnt}/{origin_dir(lib)}/latest/big.bin"
    direct_warm = read_rate(big)            # origin in the page cache
    mount_warm_origin = read_rate(through)  # mount's own cache empty, origin cached
    mount_cached = read_rate(through)       # again: the mount's page cache (KEEP_CACHE)
    drop_caches()
    direct_cold = read_rate(big)
    drop_caches()
    mount_cold = read_rate(through)
    unmount(p, mnt)
    rows.append((direct_warm, mount_warm_origin, mount_cached, direct_cold, mount_cold))
ra = "?"
print("sequential read, 512 MiB, 1 MiB reads, GB/s (3 runs; median):")
for i, name in enumerate(["direct, origin cached", "mount, origin cached",
                          "mount, again (page cache)", "direct, cold", "mount, cold"]):
    vals = [r[i] for r in rows]
    print(f"  {name:28} {statistics.median(vals):6.2f}   ({', '.join(f'{v:.2f}' for v in vals)})")

# 2. 1k and 100k files: mount time, stat latency.
for n in (1000, 100_000):
    lib, repo = f"{W}/lib{n}", f"{W}/repo{n}"
    if not os.path.exists(lib):
        for i in range(n):
            d = f"{lib}/artist{i // 1000:03}/album{i // 100 % 10}"
            os.makedirs(d, exist_ok=True)
            with open(f"{d}/track{i % 100:02}.mp3", "wb") as f:
                f.write(os.urandom(64))
    run(BIN, "-q", "init", repo)
    t0 = time.perf_counter()
    run(BIN, "--repo", repo, "-q", "scan", lib)
    scan_s = time.perf_counter() - t0
    mnt = f"{W}/mnt{n}"
    times = []
    for _ in range(5):
        p, dt = mount(repo, mnt)
        times.append(dt)
        unmount(p, mnt)
    p, _ = mount(repo, mnt)
    root = f"{mnt}/{origin_dir(lib)}/latest"
    paths = []
    for dp, dn, fn in os.walk(lib):
        rel = os.path.relpath(dp, lib)
        paths.extend(os.path.join(root, rel, f) for f in fn)
    def stat_all():
        lat = []
        for q in paths:
            t = time.perf_counter_ns()
            os.stat(q)
            lat.append(time.perf_counter_ns() - t)
        lat.sort()
        return lat[len(lat) // 2] / 1e3, lat[int(len(lat) * 0.99)] / 1e3, lat[-1] / 1e3
    cold = stat_all()
    warm = stat_all()
    unmount(p, mnt)
    print(f"{n} files (scan {scan_s:.1f} s): mount to first listing, median of 5: "
          f"{statistics.median(times) * 1e3:.1f} ms ({', '.join(f'{t * 1e3:.1f}' for t in times)})")
    print(f"  stat, first (lookup through musicfs): p50 {cold[0]:.0f} us, p99 {cold[1]:.0f} us, max {cold[2]:.0f} us")
    print(f"  stat, again (kernel cache):           p50 {warm[0]:.0f} us, p99 {warm[1]:.0f} us, max {warm[2]:.0f} us")
PY
