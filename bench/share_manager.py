#!/usr/bin/env python3
"""The Python anchor of inorder-share-bench: multiprocessing.Manager.

    python3 bench/share_manager.py OPS_PER_PROCESS ROUNDS

Starts one Manager (fork start method), then for ROUNDS rounds times three
operations, each run by 2 processes at once doing OPS_PER_PROCESS operations:
    counter         v.value += 1 on a Manager().Value('l', 0)   (not atomic: loses updates)
    counter_locked  the same under a Manager().Lock()            (exact)
    append          l.append(i) on a Manager().list()
Every process makes one call before the start barrier, so connecting to the
manager is not timed. Prints one line per operation:
    NAME MEDIAN_OPS_PER_SECOND FINAL_VALUE EXPECTED_VALUE
(FINAL/EXPECTED: the counter's last value, or the list's length, against
2 x OPS_PER_PROCESS). Exits 2 on bad arguments. Standard library only.
"""

import multiprocessing
import statistics
import sys
import time


def count(v, n, barrier):
    v.value  # connect before the clock starts
    barrier.wait()
    for _ in range(n):
        v.value += 1


def count_locked(v, lock, n, barrier):
    v.value
    with lock:
        pass
    barrier.wait()
    for _ in range(n):
        with lock:
            v.value += 1


def append(lst, n, base, barrier):
    len(lst)
    barrier.wait()
    for i in range(n):
        lst.append(base + i)


def timed(ctx, target, args_of):
    barrier = ctx.Barrier(3)
    procs = [ctx.Process(target=target, args=args_of(k) + (barrier,)) for k in range(2)]
    for p in procs:
        p.start()
    barrier.wait()
    start = time.perf_counter()
    for p in procs:
        p.join()
    elapsed = time.perf_counter() - start
    if any(p.exitcode != 0 for p in procs):
        raise RuntimeError("a worker failed")
    return elapsed


def main(argv):
    if len(argv) != 3:
        print("usage: share_manager.py OPS_PER_PROCESS ROUNDS", file=sys.stderr)
        return 2
    n, rounds = int(argv[1]), int(argv[2])
    if n < 1 or rounds < 1:
        print("share_manager.py: OPS_PER_PROCESS >= 1, ROUNDS >= 1", file=sys.stderr)
        return 2
    ctx = multiprocessing.get_context("fork")
    results = {"counter": [], "counter_locked": [], "append": []}
    finals = {}
    with ctx.Manager() as manager:
        for _ in range(rounds):
            v = manager.Value("l", 0)
            results["counter"].append(2 * n / timed(ctx, count, lambda k: (v, n)))
            finals["counter"] = v.value

            v = manager.Value("l", 0)
            lock = manager.Lock()
            results["counter_locked"].append(
                2 * n / timed(ctx, count_locked, lambda k: (v, lock, n)))
            finals["counter_locked"] = v.value

            lst = manager.list()
            results["append"].append(2 * n / timed(ctx, append, lambda k: (lst, n, k * n)))
            finals["append"] = len(lst)
    for name in ("counter", "counter_locked", "append"):
        print("%s %.1f %d %d" % (name, statistics.median(results[name]), finals[name], 2 * n))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
