#!/usr/bin/env python3
"""The Python anchor of inorder-compare: multiprocessing.Pool.imap.

    python3 bench/imap.py WORKLOAD TASKS WORKERS CHUNKSIZE

Creates multiprocessing.Pool(WORKERS) (fork start method), warms it up, then
times pool.imap(task, range(TASKS), CHUNKSIZE) and checks that the k-th result
belongs to task k. Prints the elapsed seconds (interpreter and pool start-up
excluded) as the only line on stdout; exits 1 with a message on stderr when a
result is out of order or wrong, 2 on bad arguments.

The workloads mirror bench/compare_common.cpp:
    tiny    return the index
    1us     spin 1 us on time.perf_counter, return the index
    50us    spin 50 us on time.perf_counter, return the index
    skewed  sleep 1 ms; 1 task in 100 (splitmix64 of the index % 100 == 0) sleeps 50 ms
    64KiB   return 64 KiB: the index as 8 little-endian bytes, then 'a' + index % 26
    1MiB    the same with 1 MiB
Standard library only.
"""

import multiprocessing
import struct
import sys
import time

MASK64 = (1 << 64) - 1


def is_slow(i):
    """splitmix64's output function of i, modulo 100, is zero."""
    z = (i + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    z ^= z >> 31
    return z % 100 == 0


def spin(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def task_tiny(i):
    return i


def task_1us(i):
    spin(1e-6)
    return i


def task_50us(i):
    spin(50e-6)
    return i


def task_skewed(i):
    time.sleep(0.05 if is_slow(i) else 0.001)
    return i


def make_payload(i, n):
    return struct.pack("<q", i) + bytes((97 + i % 26,)) * (n - 8)


def task_64KiB(i):
    return make_payload(i, 64 << 10)


def task_1MiB(i):
    return make_payload(i, 1 << 20)


def check_index(i, r):
    return r == i


def payload_check(n):
    def check(i, r):
        return (len(r) == n and struct.unpack_from("<q", r)[0] == i
                and r[8] == 97 + i % 26 and r[-1] == 97 + i % 26)
    return check


WORKLOADS = {
    "tiny": (task_tiny, check_index),
    "1us": (task_1us, check_index),
    "50us": (task_50us, check_index),
    "skewed": (task_skewed, check_index),
    "64KiB": (task_64KiB, payload_check(64 << 10)),
    "1MiB": (task_1MiB, payload_check(1 << 20)),
}


def ordered(pool, task, check, tasks, chunksize):
    """Runs tasks 0..tasks-1 through imap; returns the first bad position or None."""
    for k, r in enumerate(pool.imap(task, range(tasks), chunksize)):
        if not check(k, r):
            return k
    return None


def main(argv):
    if len(argv) != 5 or argv[1] not in WORKLOADS:
        print("usage: imap.py {%s} TASKS WORKERS CHUNKSIZE" % ",".join(WORKLOADS),
              file=sys.stderr)
        return 2
    task, check = WORKLOADS[argv[1]]
    tasks, workers, chunksize = int(argv[2]), int(argv[3]), int(argv[4])
    if tasks < 0 or workers < 1 or chunksize < 1:
        print("imap.py: TASKS >= 0, WORKERS >= 1, CHUNKSIZE >= 1", file=sys.stderr)
        return 2

    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers) as pool:
        bad = ordered(pool, task, check, 2 * workers, 1)  # warm-up: every worker started
        if bad is None:
            start = time.perf_counter()
            bad = ordered(pool, task, check, tasks, chunksize)
            elapsed = time.perf_counter() - start
    if bad is not None:
        print("imap.py: result %d out of order or wrong" % bad, file=sys.stderr)
        return 1
    print("%.6f" % elapsed)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
