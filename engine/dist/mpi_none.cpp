// mpi_none.cpp: built when CMake finds no MPI: asking for an MPI communicator is a clear error.
#include "engine/dist/comm.h"

namespace aclip {

bool mpi_available() {
    return false;
}

void abort_mpi_job_if_running(int) {}

std::unique_ptr<Comm> make_mpi_comm() {
    AC_FAIL_HINT("install libopenmpi-dev (tools/install_deps.sh) and rebuild",
                 "this build has no MPI, so it cannot run under mpirun");
}

}  // namespace aclip
