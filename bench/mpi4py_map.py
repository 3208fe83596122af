"""The mpi4py.futures anchor of bench/mpi_compare.sh.

Run under mpirun, e.g.
    mpirun -n 3 --oversubscribe --bind-to none python3 -m mpi4py.futures \
        bench/mpi4py_map.py N CHUNKSIZE
Maps an identity function over range(N) with MPIPoolExecutor.map (ordered),
checks the results, and prints one line with the tasks per second.
"""
import sys
import time

from mpi4py.futures import MPIPoolExecutor


def identity(x):
    return x


def main():
    n = int(sys.argv[1])
    chunksize = int(sys.argv[2])
    with MPIPoolExecutor() as pool:
        list(pool.map(identity, range(min(n, 1000)), chunksize=chunksize))  # warm-up
        start = time.perf_counter()
        out = list(pool.map(identity, range(n), chunksize=chunksize))
        seconds = time.perf_counter() - start
    if out != list(range(n)):
        sys.exit("mpi4py results out of order")
    print(f"mpi4py chunksize={chunksize} tasks={n} seconds={seconds:.4f} "
          f"tasks_per_s={n / seconds:.0f}")


if __name__ == "__main__":
    main()
