"""Per-item overhead of multiprocessing.Pool.map over tiny items (the anchor
for inorder's Pool::map). usage: pool_overhead.py [items=200000] [workers=2]"""
import multiprocessing
import statistics
import sys
import time


def add_one(x):
    return x + 1


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200000
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    with multiprocessing.Pool(workers) as pool:
        for chunksize in (None, 1):
            runs = []
            for _ in range(3 if chunksize is None else 1):
                t0 = time.perf_counter()
                out = pool.map(add_one, range(n), chunksize=chunksize)
                runs.append((time.perf_counter() - t0) * 1e6 / n)
                assert out[-1] == n
            label = "default" if chunksize is None else str(chunksize)
            print(f"multiprocessing.Pool.map chunksize={label}, {n} items, {workers} workers: "
                  f"median {statistics.median(runs):.3f} us/item ({len(runs)} runs)")


if __name__ == "__main__":
    main()
