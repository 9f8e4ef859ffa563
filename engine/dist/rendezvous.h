// rendezvous.h: how the processes of a run started without mpirun (torchrun-style, with RANK and
// WORLD_SIZE in the environment) receive a few bytes from rank 0 (NCCL's unique id) before any
// communicator exists. Two ways, named by a spec string:
//   file:PATH       rank 0 writes PATH atomically; the others wait for it (a filesystem every rank shares)
//   tcp:HOST:PORT   rank 0 listens on PORT; the others connect to HOST:PORT and are sent the bytes
// Every wait has a timeout and ends in an error that names the place and the ranks missing: never a hang.
#pragma once
#include <string>
#include <vector>

#include "engine/dist/peer_watch.h"

namespace aclip {

// Rank 0 passes `payload` and gets it back; every other rank gets rank 0's. world: the number of ranks
// (rank 0 of a tcp rendezvous serves world - 1 others, then returns). Given `keep`, a tcp rendezvous
// leaves its connections open and appends them (rank 0: one to each other rank; the others: theirs to
// rank 0), for a PeerWatch to watch for the run; a file rendezvous has none and appends nothing.
std::string rendezvous(const std::string& spec, int rank, int world, const std::string& payload,
                       double timeout_s, std::vector<PeerWatch::Peer>* keep = nullptr);

// The two ways, as rendezvous() calls them. file: the other ranks wait for a file of payload.size() bytes
// (their payload says how many).
std::string file_rendezvous(const std::string& path, int rank, const std::string& payload, double timeout_s);
std::string tcp_rendezvous(const std::string& host, int port, int rank, int world, const std::string& payload,
                           double timeout_s, std::vector<PeerWatch::Peer>* keep = nullptr);

// The rendezvous spec of this process's environment: ACLIP_RENDEZVOUS if set; else
// tcp:MASTER_ADDR:MASTER_PORT when both are set and no torchrun agent holds that port
// (TORCHELASTIC_USE_AGENT_STORE); else an error with a hint.
std::string rendezvous_spec_from_environment();

}  // namespace aclip
