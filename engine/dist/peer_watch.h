// peer_watch.h: how the processes of a run started without mpirun (torchrun-style, the tcp rendezvous)
// learn that one of them has ended early. NCCL does not: when a rank stops on an error, a signal or a crash,
// the others wait in their next collective for ever (under mpirun, MPI_Abort and mpirun end them all).
// The tcp rendezvous's connections (rank 0 to each other rank) stay open for the run, and a thread watches
// them. A process that ends normally says so first (one byte, 'F'); a connection that closes without it,
// or whose host stops answering (TCP keepalive, about two minutes), means that process ended early, and
// the watcher ends this one: rank 0 ends when any rank does, and the others when rank 0 does.
#pragma once
#include <atomic>
#include <functional>
#include <thread>
#include <vector>

namespace aclip {

class PeerWatch {
  public:
    struct Peer {
        int rank;  // the process at the other end
        int fd;    // a connected socket, owned by the watch from now on
    };
    // What to do when peer `rank` ends early; the default prints why and ends this process (_exit(1)).
    using OnLost = std::function<void(int rank)>;
    static void end_this_process(int self, int lost);

    // Watches peers on a thread of its own, for process `self`.
    PeerWatch(int self, std::vector<Peer> peers, OnLost on_lost = {});
    // Says goodbye to every peer (this process ends normally), unless it is destroyed by an exception's
    // unwinding: then the connections close without it, and the peers learn that this process failed.
    ~PeerWatch();
    PeerWatch(const PeerWatch&) = delete;
    PeerWatch& operator=(const PeerWatch&) = delete;

    int lost() const { return lost_.load(); }  // peers that ended early so far

  private:
    void watch();
    std::vector<Peer> peers_;
    OnLost on_lost_;
    int wake_[2] = {-1, -1};  // a pipe: a byte on it stops the thread
    std::atomic<int> lost_{0};
    std::thread thread_;
};

}  // namespace aclip
