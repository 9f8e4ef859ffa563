// peer_watch.cpp: see peer_watch.h. One thread polls the peers' sockets and a pipe that stops it.
#include "engine/dist/peer_watch.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>

#include "engine/core/error.h"

namespace aclip {

namespace {

constexpr char kFinished = 'F';

// A host that stops answering (powered off, cut from the network) closes no connection: TCP's keepalive
// probes find it, after a minute of silence and six unanswered probes 10 s apart.
void keep_alive(int fd) {
    const int on = 1, idle_s = 60, interval_s = 10, probes = 6;
    ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
    ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle_s, sizeof idle_s);
    ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval_s, sizeof interval_s);
    ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof probes);
}

}  // namespace

void PeerWatch::end_this_process(int self, int lost) {
    std::fprintf(stderr,
                 "rank %d: rank %d ended without finishing (its own output says why); ending this rank too, "
                 "which would wait for it for ever\n",
                 self, lost);
    std::fflush(stderr);
    ::_exit(1);
}

PeerWatch::PeerWatch(int self, std::vector<Peer> peers, OnLost on_lost)
    : peers_(std::move(peers)), on_lost_(std::move(on_lost)) {
    if (!on_lost_) on_lost_ = [self](int lost) { end_this_process(self, lost); };
    for (const Peer& p : peers_) keep_alive(p.fd);
    AC_CHECK(::pipe2(wake_, O_CLOEXEC) == 0, "PeerWatch: pipe2 failed: ", std::strerror(errno));
    thread_ = std::thread([this] { watch(); });
}

PeerWatch::~PeerWatch() {
    // Unwinding: this process is failing, so the peers must not hear that it finished.
    const bool finished = std::uncaught_exceptions() == 0;
    if (finished)
        for (const Peer& p : peers_) (void)::send(p.fd, &kFinished, 1, MSG_NOSIGNAL);  // one gone: EPIPE
    const char stop = 0;
    (void)!::write(wake_[1], &stop, 1);
    thread_.join();
    for (const Peer& p : peers_) ::close(p.fd);
    ::close(wake_[0]);
    ::close(wake_[1]);
}

void PeerWatch::watch() {
    std::vector<pollfd> fds = {{wake_[0], POLLIN, 0}};
    for (const Peer& p : peers_) fds.push_back({p.fd, POLLIN, 0});
    size_t watched = peers_.size();
    while (watched > 0) {
        if (::poll(fds.data(), fds.size(), -1) < 0) {
            if (errno == EINTR) continue;
            return;  // cannot watch: as before the watch existed
        }
        if (fds[0].revents != 0) return;  // stopped
        for (size_t i = 0; i < peers_.size(); ++i) {
            pollfd& f = fds[i + 1];
            if (f.fd < 0 || f.revents == 0) continue;
            char byte = 0;
            const ssize_t n = ::recv(f.fd, &byte, 1, MSG_DONTWAIT);
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            f.fd = -1;  // poll passes over it from now on
            --watched;
            if (n == 1 && byte == kFinished) continue;
            lost_.fetch_add(1);  // closed, reset, or timed out by the keepalive, without finishing
            on_lost_(peers_[i].rank);
        }
    }
}

}  // namespace aclip
