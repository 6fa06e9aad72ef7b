"""The measurements a benchmark script collects, grouped for its report.

Shared by the reports of scripts/bench-nas.sh, bench-s3.sh and bench-smb-crates.sh (they run
`PYTHONPATH=scripts python3 - ...`). A rows file holds one run per line, tab-separated: the
fields that name the group (the first may end in `#TAG`, the run's tag, which is dropped),
then the wall time in seconds, then integer counts (bytes up, bytes down, requests).
"""

import statistics


class Runs:
    """The runs of a rows file, grouped by their first `key_fields` fields, in the order the
    groups first appear. A key is the field itself when there is one, else a tuple."""

    def __init__(self, rows_file, key_fields):
        self.groups, self.order = {}, []
        with open(rows_file) as rows:
            for line in rows:
                if not line.strip():
                    continue
                fields = line.rstrip("\n").split("\t")
                names = [fields[0].split("#")[0]] + fields[1:key_fields]
                key = names[0] if key_fields == 1 else tuple(names)
                values = (float(fields[key_fields]),) + tuple(
                    int(v) for v in fields[key_fields + 1:]
                )
                if key not in self.groups:
                    self.groups[key] = []
                    self.order.append(key)
                self.groups[key].append(values)

    def __contains__(self, key):
        return key in self.groups

    def med(self, key, i):
        """The median of column `i` (0: wall time) over the group's runs."""
        return statistics.median(r[i] for r in self.groups[key])

    def rng(self, key, i, fmt):
        """` (LOW–HIGH)` of column `i`, each formatted by `fmt`, or nothing when all agree."""
        vals = [r[i] for r in self.groups[key]]
        return "" if min(vals) == max(vals) else f" ({fmt(min(vals))}–{fmt(max(vals))})"

    def transfer_table(self):
        """The Markdown table of groups keyed (scenario, tool, direction): wall, bytes up and
        down, requests, each a median with its range."""
        print("| Scenario | Tool | Direction | Wall (s) | Bytes up | Bytes down | Requests |")
        print("|---|---|---|---:|---:|---:|---:|")
        for key in self.order:
            wall = f"{self.med(key, 0):.2f}" + self.rng(key, 0, lambda v: f"{v:.2f}")
            up, down, reqs = (num(self.med(key, i)) + self.rng(key, i, num) for i in (1, 2, 3))
            print(f"| {key[0]} | {key[1]} | {key[2]} | {wall} | {up} | {down} | {reqs} |")


def num(n):
    """An integer with thousands separators."""
    return f"{int(n):,}"
