#!/usr/bin/env python3
"""Plots of inorder-compare's CSV output (Debian: python3-matplotlib).

    python3 bench/plot.py docs/bench/results.csv docs/bench/throughput.png
        One panel per workload: tasks/s (log scale) per system, one bar per
        worker count. Input: `inorder-compare --csv` (header
        workload,system,workers,tasks,seconds,tasks_per_s).

    python3 bench/plot.py --sweep docs/bench/sweep_tiny.csv docs/bench/sweep_tiny.png
        Tasks/s against the window (both log scale), one line per worker count
        and inline_bytes. Input: `inorder-compare --sweep WORKLOAD --csv`.
"""

import csv
import sys
from collections import OrderedDict

try:
    import matplotlib
    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
except ImportError:
    sys.exit("plot.py: matplotlib is missing (Debian: apt-get install python3-matplotlib)")

COLORS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860"]


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def plot_results(rows, out):
    workloads = list(OrderedDict.fromkeys(r["workload"] for r in rows))
    systems = list(OrderedDict.fromkeys(r["system"] for r in rows))
    workers = sorted({int(r["workers"]) for r in rows})
    rate = {(r["workload"], r["system"], int(r["workers"])): float(r["tasks_per_s"])
            for r in rows}

    cols = 3 if len(workloads) > 4 else min(2, len(workloads))
    nrows = (len(workloads) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(5.2 * cols, 3.9 * nrows + 0.5),
                             squeeze=False)
    color = {w: COLORS[k % len(COLORS)] for k, w in enumerate(workers)}
    for index, workload in enumerate(workloads):
        ax = axes[index // cols][index % cols]
        here = [w for w in workers if any((workload, s, w) in rate for s in systems)]
        width = 0.8 / max(1, len(here))
        for k, w in enumerate(here):
            xs, ys = [], []
            for s, system in enumerate(systems):
                value = rate.get((workload, system, w))
                if value:
                    xs.append(s - 0.4 + width * (k + 0.5))
                    ys.append(value)
            ax.bar(xs, ys, width, color=color[w])
        ax.set_yscale("log")
        ax.set_title(workload)
        ax.set_xticks(range(len(systems)))
        ax.set_xticklabels(systems, rotation=35, ha="right", fontsize=8)
        ax.set_ylabel("tasks/s (log)")
        ax.grid(axis="y", which="major", alpha=0.3)
    for index in range(len(workloads), nrows * cols):
        axes[index // cols][index % cols].axis("off")
    handles = [Patch(color=color[w], label="%d worker%s" % (w, "" if w == 1 else "s"))
               for w in workers]
    fig.legend(handles=handles, loc="upper right", ncol=len(workers), fontsize=9)
    fig.suptitle("inorder-compare: throughput per workload and system (higher is better)",
                 x=0.02, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(out, dpi=110)


def plot_sweep(rows, out):
    workload = rows[0]["workload"] if rows else "?"
    # Which knobs vary besides the window: capacity or max_spill_bytes, when
    # the sweep was given lists of them. The first that varies becomes the x
    # axis and the window joins the line labels.
    varying = []
    for field in ("capacity", "max_spill_bytes"):
        seen = {}
        for r in rows:
            seen.setdefault((r["workers"], r["inline_bytes"], r["window"]), set()).add(r[field])
        if any(len(v) > 1 for v in seen.values()):
            varying.append(field)
    x_field = varying[0] if varying else "window"
    label_fields = ["workers", "inline_bytes"] + [f for f in ["window"] + varying if f != x_field]
    series = OrderedDict()
    for r in rows:
        key = tuple(int(r[f]) for f in label_fields)
        series.setdefault(key, []).append((int(r[x_field]), float(r["tasks_per_s"])))
    fig, ax = plt.subplots(figsize=(8, 4.8))
    markers = ["o", "s", "^", "D", "v", "P"]
    for k, (key, points) in enumerate(series.items()):
        points.sort()
        label = " ".join("%s=%d" % (f, v) for f, v in zip(label_fields, key))
        ax.plot([p[0] for p in points], [p[1] for p in points], marker=markers[k % len(markers)],
                color=plt.cm.tab20(k % 20), label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("%s (log)" % x_field)
    ax.set_ylabel("tasks/s (log)")
    ax.set_title("inorder --sweep %s (higher is better)" % workload)
    ax.grid(which="major", alpha=0.3)
    ax.legend(fontsize=7, ncol=2 if len(series) > 6 else 1)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main(argv):
    args = argv[1:]
    sweep = bool(args) and args[0] == "--sweep"
    if sweep:
        args = args[1:]
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    rows = read_rows(args[0])
    if not rows:
        print("plot.py: %s has no rows" % args[0], file=sys.stderr)
        return 1
    (plot_sweep if sweep else plot_results)(rows, args[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
