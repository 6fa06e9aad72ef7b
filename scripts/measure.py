#!/usr/bin/env python3
"""Measure one run of a sync tool, check its result, and report many runs.

    measure.py run --out RUNS.jsonl --tool T --scenario S --rep N \
        --stdout FILE --stderr FILE [--verify SRC DST] -- CMD ARGS...
    measure.py report RUNS.jsonl [--title TEXT] [--note TEXT]...

`run` must be started fresh for every measured command: it reads its own
/proc/self/io before and after running CMD. Linux adds the I/O counters of
reaped children (and, through them, of their own reaped children) to the
parent, so the difference is the whole process tree's I/O. Peak RSS is
getrusage(RUSAGE_CHILDREN).ru_maxrss: the largest RSS of any one descendant,
which is why each run needs its own wrapper process.

rchar/wchar count every read()/write() byte, pipes included (local rsync
runs three processes that talk over pipes, so its rchar/wchar count the data
more than once); read_bytes/write_bytes count what reached the block layer
(with a warm page cache, read_bytes is near 0; write_bytes is counted when
pages are dirtied).

After CMD exits, and outside the measured interval, `--verify` runs
`diff -r SRC DST` and compares each side's paths, types, sizes, mtimes (ns)
and modes. `run` exits 0 when CMD succeeded and the checks passed, 1 if not.
The record appended to RUNS.jsonl holds everything; `report` prints a
Markdown table with the median of each figure over repetitions.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import stat
import statistics
import subprocess
import sys
import time

IO_FIELDS = ("rchar", "wchar", "syscr", "syscw", "read_bytes", "write_bytes", "cancelled_write_bytes")


def read_io() -> dict[str, int]:
    with open("/proc/self/io", encoding="ascii") as f:
        pairs = (line.split(":") for line in f if ":" in line)
        return {k.strip(): int(v) for k, v in pairs}


def tree_metadata(root: str) -> dict[str, tuple]:
    """Relative path -> (type, size, mtime_ns, mode) for everything under root."""
    out: dict[str, tuple] = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            rel = os.path.relpath(path, root)
            if stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir",)  # directory mtimes change as entries come and go
            else:
                out[rel] = (stat.S_IFMT(st.st_mode), st.st_size, st.st_mtime_ns, stat.S_IMODE(st.st_mode))
    return out


def verify(src: str, dst: str) -> tuple[list[str], dict]:
    problems: list[str] = []
    detail: dict = {}
    diff = subprocess.run(["diff", "-r", "-q", src, dst], capture_output=True, text=True, check=False)
    if diff.returncode != 0:
        lines = (diff.stdout + diff.stderr).splitlines()
        problems.append(f"diff({len(lines)})")
        detail["diff"] = lines[:20]
    a, b = tree_metadata(src), tree_metadata(dst)
    missing = sorted(set(a) - set(b))
    extra = sorted(set(b) - set(a))
    both = set(a) & set(b)
    mtime = sorted(p for p in both if a[p][0] != "dir" and len(b[p]) == 4 and a[p][2] != b[p][2])
    mode = sorted(p for p in both if a[p][0] != "dir" and len(b[p]) == 4 and a[p][3] != b[p][3])
    kind = sorted(p for p in both if a[p][0] != b[p][0] or (a[p][0] != "dir" and a[p][1] != b[p][1]))
    for name, paths in (("missing", missing), ("extra", extra), ("type/size", kind),
                        ("mtime", mtime), ("mode", mode)):
        if paths:
            problems.append(f"{name}({len(paths)})")
            detail[name] = paths[:20]
    return problems, detail


def parse_rsync_stats(text: str) -> dict:
    fields = {
        "rsync_files_transferred": r"Number of regular files transferred: ([\d,]+)",
        "rsync_literal_bytes": r"Literal data: ([\d,]+) bytes",
        "rsync_matched_bytes": r"Matched data: ([\d,]+) bytes",
        "rsync_bytes_sent": r"Total bytes sent: ([\d,]+)",
        "rsync_bytes_received": r"Total bytes received: ([\d,]+)",
    }
    out = {}
    for key, pattern in fields.items():
        m = re.search(pattern, text)
        if m:
            out[key] = int(m.group(1).replace(",", ""))
    return out


def parse_summary(text: str) -> dict:
    """The last stdout line of `musicfs … --json` is {"type": "summary", …}."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return {}
    try:
        obj = json.loads(lines[-1])
    except json.JSONDecodeError:
        return {}
    if not isinstance(obj, dict) or obj.get("type") != "summary":
        return {}
    return {f"summary_{k}": v for k, v in obj.items() if k != "type"}


def cmd_run(a: argparse.Namespace) -> int:
    if not a.cmd:
        sys.exit("measure.py run: no command given after --")
    cmd = a.cmd[1:] if a.cmd[0] == "--" else a.cmd
    with open(a.stdout, "wb") as out, open(a.stderr, "wb") as err:
        io0 = read_io()
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, check=False)
        wall = time.perf_counter() - t0
        io1 = read_io()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    record = {
        "tool": a.tool, "scenario": a.scenario, "rep": a.rep, "cmd": cmd,
        "exit": proc.returncode, "wall_s": wall,
        "user_s": usage.ru_utime, "sys_s": usage.ru_stime, "maxrss_kib": usage.ru_maxrss,
    }
    record.update({k: io1.get(k, 0) - io0.get(k, 0) for k in IO_FIELDS})
    with open(a.stdout, encoding="utf-8", errors="replace") as f:
        stdout_text = f.read()
    record.update(parse_rsync_stats(stdout_text) if a.tool == "rsync" else parse_summary(stdout_text))
    problems: list[str] = [] if proc.returncode == 0 else [f"exit {proc.returncode}"]
    if a.verify:
        found, detail = verify(*a.verify)
        problems += found
        record["check_detail"] = detail
    record["check"] = "ok" if not problems else " ".join(problems)
    with open(a.out, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
    print(f"  {a.scenario:<11} {a.tool:<8} rep {a.rep}: {wall:7.2f} s, "
          f"rss {usage.ru_maxrss / 1024:.0f} MiB, check {record['check']}", file=sys.stderr)
    return 0 if not problems else 1


def human(n: float | None) -> str:
    if n is None:
        return "–"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n:.0f} B"


def median_of(runs: list[dict], key: str):
    values = [r[key] for r in runs if isinstance(r.get(key), (int, float))]
    return statistics.median(values) if values else None


def cmd_report(a: argparse.Namespace) -> int:
    with open(a.runs, encoding="utf-8") as f:
        runs = [json.loads(line) for line in f if line.strip()]
    scenarios: list[str] = []
    tools: list[str] = []
    for r in runs:
        if r["scenario"] not in scenarios:
            scenarios.append(r["scenario"])
        if r["tool"] not in tools:
            tools.append(r["tool"])
    out = []
    if a.title:
        out += [f"## {a.title}", ""]
    out += [
        "| scenario | tool | runs | wall (median) | CPU user+sys | read() bytes | write() bytes "
        "| block-layer read | block-layer write | peak RSS | moved (tool's own count) | files changed | check |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for scenario in scenarios:
        for tool in tools:
            rs = [r for r in runs if r["scenario"] == scenario and r["tool"] == tool]
            if not rs:
                continue
            walls = sorted(r["wall_s"] for r in rs)
            wall = f"{statistics.median(walls):.2f} s"
            if len(walls) > 1:
                wall += f" ({walls[0]:.2f}–{walls[-1]:.2f})"
            cpu = median_of([{**r, "cpu": r["user_s"] + r["sys_s"]} for r in rs], "cpu")
            if tool == "rsync":
                moved = median_of(rs, "rsync_bytes_sent")
                moved_s = f"{human(moved)} sent" if moved is not None else "–"
                changed = median_of(rs, "rsync_files_transferred")
            else:
                moved = median_of(rs, "summary_bytes_transferred")
                moved_s = human(moved)
                changed = median_of(rs, "summary_files_changed")
            checks = sorted({r["check"] for r in rs})
            out.append(
                f"| {scenario} | {tool} | {len(rs)} | {wall} | {cpu:.2f} s | {human(median_of(rs, 'rchar'))} "
                f"| {human(median_of(rs, 'wchar'))} | {human(median_of(rs, 'read_bytes'))} "
                f"| {human(median_of(rs, 'write_bytes'))} | {median_of(rs, 'maxrss_kib') / 1024:.1f} MiB "
                f"| {moved_s} | {'–' if changed is None else f'{changed:.0f}'} | {', '.join(checks)} |"
            )
    if a.note:
        out.append("")
        out += [f"- {n}" for n in a.note]
    print("\n".join(out))
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="sub", required=True)
    r = sub.add_parser("run")
    r.add_argument("--out", required=True)
    r.add_argument("--tool", required=True)
    r.add_argument("--scenario", required=True)
    r.add_argument("--rep", type=int, default=1)
    r.add_argument("--stdout", required=True)
    r.add_argument("--stderr", required=True)
    r.add_argument("--verify", nargs=2, metavar=("SRC", "DST"))
    r.add_argument("cmd", nargs=argparse.REMAINDER)
    r.set_defaults(func=cmd_run)
    s = sub.add_parser("report")
    s.add_argument("runs")
    s.add_argument("--title")
    s.add_argument("--note", action="append", default=[])
    s.set_defaults(func=cmd_report)
    a = p.parse_args()
    return a.func(a)


if __name__ == "__main__":
    sys.exit(main())
