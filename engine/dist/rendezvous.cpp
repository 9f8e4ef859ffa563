// rendezvous.cpp: see rendezvous.h. The tcp way: rank 0 accepts one connection per other rank; each
// sends an 8-byte hello ("ACRV", then its rank as a little-endian int32) and is answered with the
// payload's length (8 bytes, little-endian) and the payload; asked to, both ends keep the connection (for a
// PeerWatch). POSIX sockets, non-blocking, every wait a poll bounded by a deadline; a rank retries its
// connection until rank 0 listens.
#include "engine/dist/rendezvous.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <set>
#include <thread>
#include <utility>

#include "engine/core/error.h"
#include "engine/core/parse.h"
#include "engine/io/files.h"

namespace aclip {

namespace {

using Clock = std::chrono::steady_clock;

class Deadline {
  public:
    explicit Deadline(double seconds)
        : end_(Clock::now() +
               std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds))) {}
    double seconds_left() const {
        return std::max(0.0, std::chrono::duration<double>(end_ - Clock::now()).count());
    }
    int ms_left() const {
        return static_cast<int>(std::min(seconds_left() * 1e3, static_cast<double>(INT_MAX)));
    }

  private:
    Clock::time_point end_;
};

// A file descriptor closed when it goes out of scope.
class Socket {
  public:
    explicit Socket(int fd = -1) : fd_(fd) {}
    Socket(Socket&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    Socket& operator=(Socket&& o) noexcept {
        if (this != &o) {
            close();
            fd_ = std::exchange(o.fd_, -1);
        }
        return *this;
    }
    Socket(const Socket&) = delete;
    Socket& operator=(const Socket&) = delete;
    ~Socket() { close(); }
    int fd() const { return fd_; }
    int release() { return std::exchange(fd_, -1); }  // the caller closes it
    explicit operator bool() const { return fd_ >= 0; }

  private:
    void close() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }
    int fd_;
};

// Whether fd became ready for `events` (POLLIN, POLLOUT) before the deadline.
bool wait_for(int fd, short events, const Deadline& d) {
    pollfd p{fd, events, 0};
    for (;;) {
        const int r = ::poll(&p, 1, d.ms_left());
        if (r > 0) return true;
        if (r == 0 || errno != EINTR) return false;
    }
}

// Sends, or receives, exactly n bytes on a non-blocking socket before the deadline; false on a timeout,
// an error or a peer that closed.
bool send_all(int fd, const char* data, size_t n, const Deadline& d) {
    while (n > 0) {
        if (!wait_for(fd, POLLOUT, d)) return false;
        const ssize_t k = ::send(fd, data, n, MSG_NOSIGNAL);
        if (k < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (k <= 0) return false;
        data += k;
        n -= static_cast<size_t>(k);
    }
    return true;
}
bool recv_all(int fd, char* data, size_t n, const Deadline& d) {
    while (n > 0) {
        if (!wait_for(fd, POLLIN, d)) return false;
        const ssize_t k = ::recv(fd, data, n, 0);
        if (k < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (k <= 0) return false;
        data += k;
        n -= static_cast<size_t>(k);
    }
    return true;
}

constexpr char kMagic[4] = {'A', 'C', 'R', 'V'};
constexpr uint64_t kMaxPayload = 1 << 20;
constexpr double kPeerSeconds = 5.0;  // for one exchange with a connected peer

void put_le(char* out, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
uint64_t get_le(const char* in, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(in[i])) << (8 * i);
    return v;
}

// A listening socket on `port` of every interface: IPv6 with IPv4 mapped in, or IPv4 alone.
Socket listen_on(int port, int backlog) {
    const int one = 1, zero = 0;
    int error = 0;
    Socket s(::socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (s) {
        ::setsockopt(s.fd(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        ::setsockopt(s.fd(), IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
        sockaddr_in6 a{};
        a.sin6_family = AF_INET6;
        a.sin6_addr = in6addr_any;
        a.sin6_port = htons(static_cast<uint16_t>(port));
        if (::bind(s.fd(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && ::listen(s.fd(), backlog) == 0)
            return s;
        error = errno;
    }
    if (error != EADDRINUSE) {  // no IPv6 here: IPv4 alone
        s = Socket(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        AC_CHECK(s, "rank 0: cannot open a socket for the tcp rendezvous: ", std::strerror(errno));
        ::setsockopt(s.fd(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_ANY);
        a.sin_port = htons(static_cast<uint16_t>(port));
        if (::bind(s.fd(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && ::listen(s.fd(), backlog) == 0)
            return s;
        error = errno;
    }
    AC_FAIL_HINT(error == EADDRINUSE
                     ? "another process holds this port (under torchrun its agent holds MASTER_PORT): "
                       "set ACLIP_RENDEZVOUS=tcp:HOST:PORT with a free port"
                     : "choose another port in ACLIP_RENDEZVOUS=tcp:HOST:PORT",
                 "rank 0: cannot listen on port ", port, " for the tcp rendezvous: ", std::strerror(error));
}

// Rank 0: serves the payload to ranks 1 .. world - 1, each once; their connections go to `kept`, if given.
void serve(int port, int world, const std::string& payload, double timeout_s,
           std::vector<PeerWatch::Peer>* kept) {
    const char* hint = "start every rank with the same WORLD_SIZE and rendezvous, and each with its own RANK";
    Socket listener = listen_on(port, world);
    const Deadline deadline(timeout_s);
    std::set<int64_t> served;
    while (static_cast<int>(served.size()) < world - 1) {
        if (!wait_for(listener.fd(), POLLIN, deadline)) {
            std::string missing;
            for (int r = 1; r < world; ++r)
                if (!served.count(r)) missing += (missing.empty() ? "" : ", ") + std::to_string(r);
            AC_FAIL_HINT(hint, "rank 0: rank(s) ", missing, " did not come to the tcp rendezvous on port ",
                         port, " within ", timeout_s, " s");
        }
        Socket peer(::accept4(listener.fd(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (!peer) continue;
        const Deadline talk(std::min(kPeerSeconds, deadline.seconds_left()));
        char hello[8];
        if (!recv_all(peer.fd(), hello, sizeof hello, talk) || std::memcmp(hello, kMagic, 4) != 0)
            continue;  // not one of ours, or gone: it retries if it is
        const int64_t rank = static_cast<int32_t>(get_le(hello + 4, 4));
        AC_CHECK_HINT(rank >= 1 && rank < world, hint, "rank 0: a process at the tcp rendezvous on port ",
                      port, " says it is rank ", rank, ", outside 1 .. ", world - 1);
        AC_CHECK_HINT(!served.count(rank), hint, "rank 0: rank ", rank,
                      " came to the tcp rendezvous twice (two processes with RANK=", rank, "?)");
        char length[8];
        put_le(length, payload.size(), 8);
        if (send_all(peer.fd(), length, sizeof length, talk) &&
            send_all(peer.fd(), payload.data(), payload.size(), talk)) {
            served.insert(rank);
            if (kept) kept->push_back({static_cast<int>(rank), peer.release()});
        }
    }
}

// Rank r > 0: connects to host:port (retrying until rank 0 listens) and receives the payload; the
// connection goes to `kept`, if given.
std::string fetch(const std::string& host, int port, int rank, double timeout_s, int* kept) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    const int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found);
    AC_CHECK_HINT(rc == 0, "HOST in tcp:HOST:PORT must be rank 0's host name or address", "rank ", rank,
                  ": cannot resolve the rendezvous host '", host, "': ", ::gai_strerror(rc));
    std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> addresses(found, ::freeaddrinfo);
    const Deadline deadline(timeout_s);
    std::string last = "nothing listens there";
    while (deadline.seconds_left() > 0) {
        for (addrinfo* a = addresses.get(); a; a = a->ai_next) {
            Socket s(::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol));
            if (!s) continue;
            const Deadline attempt(std::min(kPeerSeconds, deadline.seconds_left()));
            if (::connect(s.fd(), a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
                last = std::strerror(errno);
                continue;
            }
            int error = 0;
            socklen_t size = sizeof error;
            if (!wait_for(s.fd(), POLLOUT, attempt) ||
                ::getsockopt(s.fd(), SOL_SOCKET, SO_ERROR, &error, &size) != 0 || error != 0) {
                last = error ? std::strerror(error) : "the connection timed out";
                continue;
            }
            char hello[8], length[8];
            std::memcpy(hello, kMagic, 4);
            put_le(hello + 4, static_cast<uint32_t>(rank), 4);
            if (!send_all(s.fd(), hello, sizeof hello, attempt) ||
                !recv_all(s.fd(), length, sizeof length, attempt)) {
                last = "rank 0 closed the connection";
                continue;
            }
            const uint64_t n = get_le(length, 8);
            AC_CHECK(n <= kMaxPayload, "rank ", rank, ": the tcp rendezvous at ", host, ":", port, " sent ",
                     n, " bytes: not an aclip rank 0");
            std::string payload(n, '\0');
            if (recv_all(s.fd(), payload.data(), n, attempt)) {
                if (kept) *kept = s.release();
                return payload;
            }
            last = "rank 0 closed the connection";
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(std::min(100, deadline.ms_left())));
    }
    AC_FAIL_HINT(
        "start rank 0 too, with the same rendezvous; HOST must name rank 0's machine as the other ranks see "
        "it",
        "rank ", rank, ": no rendezvous from rank 0 at ", host, ":", port, " within ", timeout_s, " s (",
        last, ")");
}

}  // namespace

std::string file_rendezvous(const std::string& path, int rank, const std::string& payload, double timeout_s) {
    if (rank == 0) {
        write_file_atomic(path, payload);
        return payload;
    }
    const Deadline deadline(timeout_s);
    for (;;) {
        std::ifstream in(path, std::ios::binary);
        if (in.good()) {
            std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
            if (data.size() == payload.size() || payload.empty()) return data;
        }
        AC_CHECK_HINT(
            deadline.seconds_left() > 0,
            "start rank 0 too, and give every rank the same file:PATH on a shared filesystem (delete a "
            "stale one from an earlier run first)",
            "rank ", rank, ": no rendezvous from rank 0 in ", path, " within ", timeout_s, " s");
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
}

std::string tcp_rendezvous(const std::string& host, int port, int rank, int world, const std::string& payload,
                           double timeout_s, std::vector<PeerWatch::Peer>* keep) {
    if (rank == 0) {
        serve(port, world, payload, timeout_s, keep);
        return payload;
    }
    int fd = -1;
    std::string got = fetch(host, port, rank, timeout_s, keep ? &fd : nullptr);
    if (keep) keep->push_back({0, fd});
    return got;
}

std::string rendezvous(const std::string& spec, int rank, int world, const std::string& payload,
                       double timeout_s, std::vector<PeerWatch::Peer>* keep) {
    const char* hint = "a rendezvous is file:PATH or tcp:HOST:PORT";
    if (spec.rfind("file:", 0) == 0) {
        AC_CHECK_HINT(spec.size() > 5, hint, "rendezvous '", spec, "': no path");
        return file_rendezvous(spec.substr(5), rank, payload, timeout_s);
    }
    AC_CHECK_HINT(spec.rfind("tcp:", 0) == 0, hint, "rendezvous '", spec,
                  "' is neither file:PATH nor tcp:HOST:PORT");
    const std::string rest = spec.substr(4);
    const size_t colon = rest.rfind(':');
    AC_CHECK_HINT(colon != std::string::npos && colon > 0, hint, "rendezvous '", spec, "': no HOST:PORT");
    std::string host = rest.substr(0, colon);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);  // [::1]
    const std::string port_text = rest.substr(colon + 1);
    const std::optional<int64_t> port = parse_int64(port_text);
    AC_CHECK_HINT(port && *port >= 1 && *port <= 65535, hint, "rendezvous '", spec, "': the port '",
                  port_text, "' is not a number in 1 .. 65535");
    return tcp_rendezvous(host, static_cast<int>(*port), rank, world, payload, timeout_s, keep);
}

std::string rendezvous_spec_from_environment() {
    auto env = [](const char* name) {
        const char* v = std::getenv(name);
        return std::string(v ? v : "");
    };
    if (!env("ACLIP_RENDEZVOUS").empty()) return env("ACLIP_RENDEZVOUS");
    const std::string agent = env("TORCHELASTIC_USE_AGENT_STORE");
    const bool agent_holds_port = agent == "True" || agent == "true" || agent == "1";
    if (!env("MASTER_ADDR").empty() && !env("MASTER_PORT").empty() && !agent_holds_port)
        return "tcp:" + env("MASTER_ADDR") + ":" + env("MASTER_PORT");
    AC_FAIL_HINT(
        std::string("set ACLIP_RENDEZVOUS=tcp:HOST:PORT (rank 0's host and a free port) or file:PATH (on a "
                    "filesystem every rank shares)") +
            (agent_holds_port ? "; torchrun's agent holds MASTER_PORT, so pick another port" : ""),
        "WORLD_SIZE = ", env("WORLD_SIZE"), " without mpirun: the ranks need a rendezvous");
}

}  // namespace aclip
