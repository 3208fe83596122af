#!/usr/bin/env python3
"""The throughput table of docs/benchmarks.md, from inorder-compare's CSV.

    python3 bench/table.py docs/bench/results.csv

Prints a Markdown table: one line per (workload, system) in the order the CSV
lists them, one column per worker count, and the task count of the run.
Input: `inorder-compare --csv` (header workload,system,workers,tasks,seconds,
tasks_per_s). Standard library only.
"""

import csv
import sys
from collections import OrderedDict


def rate(value):
    """Tasks/s as the tables print them: 9.38 M, 713.6 k, 7612."""
    if value >= 1e6:
        return f"{value / 1e6:.2f} M"
    if value >= 1e4:
        return f"{value / 1e3:.1f} k"
    return f"{value:.0f}"


def main(argv):
    if len(argv) != 2:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    rows = OrderedDict()
    workers = set()
    with open(argv[1], newline="") as f:
        for r in csv.DictReader(f):
            key = (r["workload"], r["system"])
            w = int(r["workers"])
            workers.add(w)
            entry = rows.setdefault(key, {"tasks": r["tasks"], "rates": {}})
            entry["rates"][w] = float(r["tasks_per_s"])
    columns = sorted(workers)
    names = [f"{w} worker" + ("s" if w > 1 else "") for w in columns]
    print("| workload | system | " + " | ".join(names) + " | tasks per run |")
    print("|---|---|" + "---:|" * len(columns) + "---:|")
    for (workload, system), entry in rows.items():
        cells = [rate(entry["rates"][w]) if w in entry["rates"] else "" for w in columns]
        print(f"| {workload} | {system} | " + " | ".join(cells) + f" | {entry['tasks']} |")


if __name__ == "__main__":
    main(sys.argv)
