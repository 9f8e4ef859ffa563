// nccl_none.cpp: built when CMake finds no NCCL: asking for the GPU communicator is a clear error.
#include "engine/dist/comm.h"

namespace aclip {

bool nccl_available() {
    return false;
}

std::string nccl_unique_id() {
    AC_FAIL_HINT("build on a machine whose CUDA toolkit has NCCL (libnccl), or train on one GPU",
                 "this build has no NCCL, so GPUs cannot train together");
}

std::unique_ptr<Comm> make_nccl_comm(int, int, int, const std::string&, std::unique_ptr<PeerWatch>) {
    nccl_unique_id();
    return nullptr;
}

}  // namespace aclip
