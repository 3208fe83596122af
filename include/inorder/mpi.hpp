// inorder/mpi.hpp: umbrella header of libinorder-mpi (link with `inorder-mpi`).
//
// The ordered queue and the pool across the ranks of an Open MPI job: see
// inorder/mpi/session.hpp for the job's shape and failure model, and
// inorder/mpi/parallel_queue.hpp for the ordering contract. Needs no MPI
// header: <mpi.h> stays inside the library.
#pragma once

#include "inorder/mpi/errors.hpp"
#include "inorder/mpi/parallel_queue.hpp"
#include "inorder/mpi/pool.hpp"
#include "inorder/mpi/session.hpp"
