// clip/dist/connect.hpp: the communicator a program should use, from how it was launched.
//
//   auto world = clip::dist::connect();   // MPI under mpirun (CLIP_WITH_MPI builds), else one process
//
// A program started by mpirun but built without MPI would train N independent copies that each
// believe they are alone: connect() refuses that instead.
#pragma once

#include <memory>

#include "clip/dist/communicator.hpp"
#if CLIP_WITH_MPI
#include "clip/dist/mpi.hpp"
#endif

namespace clip::dist {

/// The world this process belongs to; collectives time out after `timeout_seconds`.
inline std::unique_ptr<communicator> connect(double timeout_seconds = 300.0) {
    if (launched_by_mpi()) {
#if CLIP_WITH_MPI
        return std::make_unique<mpi_communicator>(timeout_seconds);
#else
        throw distributed_error("started by an MPI launcher, but this program was built without MPI (CLIP_WITH_MPI); "
                                "install libopenmpi-dev and rebuild");
#endif
    }
    (void)timeout_seconds;
    return std::make_unique<single_process>();
}

} // namespace clip::dist
