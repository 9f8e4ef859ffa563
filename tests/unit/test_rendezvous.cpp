// test_rendezvous.cpp: rank 0's bytes reach every other rank through a file and over TCP (ranks as
// threads, on the loopback), whichever side starts first; every way it can go wrong ends in an error that
// names the place or the missing ranks, within its timeout; the environment picks the rendezvous; and the
// tcp rendezvous's connections, watched, tell the ranks of one that ended early.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "engine/dist/comm.h"
#include "engine/dist/rendezvous.h"
#include "test_util.h"

using namespace aclip;

namespace {

// A TCP port nothing listens on now (the kernel's choice for port 0, released again).
int free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    socklen_t size = sizeof a;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &size) == 0);
    ::close(fd);
    return ntohs(a.sin_port);
}

// Runs rendezvous(spec) for ranks 1 .. world - 1 on threads, then (after `delay`) rank 0 here; returns what
// each rank received (or its error).
std::vector<std::string> run_rendezvous(const std::string& spec, int world, const std::string& payload,
                                        std::chrono::milliseconds delay) {
    std::vector<std::string> got(world);
    std::vector<std::thread> others;
    for (int r = 1; r < world; ++r)
        others.emplace_back([&, r] {
            const std::string error = test::error_of(
                [&] { got[r] = rendezvous(spec, r, world, std::string(payload.size(), '\0'), 10.0); });
            if (!error.empty()) got[r] = error;
        });
    std::this_thread::sleep_for(delay);  // the others wait (poll or retry) before rank 0 starts
    got[0] = rendezvous(spec, 0, world, payload, 10.0);
    for (std::thread& t : others) t.join();
    return got;
}

}  // namespace

TEST_SUITE("dist") {
    TEST_CASE("rendezvous: rank 0's bytes reach every rank, through a file and over TCP") {
        std::string payload(128, '\0');  // binary, as NCCL's id: zeros included
        for (size_t i = 0; i < payload.size(); i += 3) payload[i] = static_cast<char>(i);
        const std::string path =
            std::filesystem::temp_directory_path().string() + "/aclip_rdv_" + std::to_string(getpid());
        std::filesystem::remove(path);
        for (const std::string& spec : {"file:" + path, "tcp:127.0.0.1:" + std::to_string(free_port()),
                                        "tcp:localhost:" + std::to_string(free_port())}) {
            CAPTURE(spec);
            for (const std::string& got : run_rendezvous(spec, 4, payload, std::chrono::milliseconds(300)))
                CHECK(got == payload);
        }
        std::filesystem::remove(path);
        // rank 0 first: the others find it listening
        const std::string spec = "tcp:127.0.0.1:" + std::to_string(free_port());
        std::string got;
        std::thread late([&] {
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
            got = rendezvous(spec, 1, 2, "", 10.0);
        });
        CHECK(rendezvous(spec, 0, 2, payload, 10.0) == payload);
        late.join();
        CHECK(got == payload);
    }

    TEST_CASE("rendezvous: a missing rank 0, a missing rank, a taken port and a bad spec are clear errors") {
        const int port = free_port();
        const auto start = std::chrono::steady_clock::now();
        std::string e = test::error_of([&] { tcp_rendezvous("127.0.0.1", port, 1, 2, "", 0.3); });
        CHECK(e.find("rank 1: no rendezvous from rank 0 at 127.0.0.1:" + std::to_string(port)) !=
              std::string::npos);
        CHECK(e.find("HINT") != std::string::npos);
        CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));  // the timeout holds

        // world 4, only rank 2 comes: rank 0 names ranks 1 and 3
        std::thread two([&] { test::error_of([&] { tcp_rendezvous("127.0.0.1", port, 2, 4, "", 3.0); }); });
        e = test::error_of([&] { tcp_rendezvous("127.0.0.1", port, 0, 4, "id", 1.0); });
        two.join();
        CHECK(e.find("rank(s) 1, 3 did not come to the tcp rendezvous on port " + std::to_string(port)) !=
              std::string::npos);

        // another listener holds a port
        const int taken = free_port();
        const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_ANY);
        a.sin_port = htons(static_cast<uint16_t>(taken));
        REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        REQUIRE(::listen(fd, 1) == 0);
        e = test::error_of([&] { tcp_rendezvous("127.0.0.1", taken, 0, 2, "id", 0.5); });
        ::close(fd);
        CHECK(e.find("cannot listen on port " + std::to_string(taken)) != std::string::npos);
        CHECK(e.find("torchrun") != std::string::npos);

        e = test::error_of([] { tcp_rendezvous("no-such-host.invalid", 29500, 1, 2, "", 0.5); });
        CHECK(e.find("cannot resolve the rendezvous host 'no-such-host.invalid'") != std::string::npos);
        for (const char* bad :
             {"tcp:host", "tcp:host:0", "tcp:host:port", "tcp::29500", "udp:host:1", "file:"}) {
            CAPTURE(bad);
            CHECK(test::error_of([&] {
                      rendezvous(bad, 1, 2, "", 0.1);
                  }).find("file:PATH or tcp:HOST:PORT") != std::string::npos);
        }
        const std::string never = std::filesystem::temp_directory_path().string() + "/aclip_rdv_never";
        e = test::error_of([&] { file_rendezvous(never, 1, std::string(16, '\0'), 0.2); });
        CHECK(e.find(never) != std::string::npos);
    }

    TEST_CASE("rendezvous from the environment; the communicator refuses what would train apart") {
        for (const char* name : {"ACLIP_RENDEZVOUS", "MASTER_ADDR", "MASTER_PORT",
                                 "TORCHELASTIC_USE_AGENT_STORE", "WORLD_SIZE", "RANK"})
            unsetenv(name);
        CHECK(make_comm_from_environment(Device::CUDA)->world() == 1);
        setenv("WORLD_SIZE", "2", 1);
        CHECK(test::error_of([] { rendezvous_spec_from_environment(); }).find("ACLIP_RENDEZVOUS") !=
              std::string::npos);
        CHECK(test::error_of([] { make_comm_from_environment(Device::CUDA); }).find("need a rendezvous") !=
              std::string::npos);
        // two CPU processes without mpirun would each train alone and write the same checkpoints
        CHECK(test::error_of([] { make_comm_from_environment(Device::CPU); }).find("mpirun") !=
              std::string::npos);
        setenv("MASTER_ADDR", "node0", 1);
        setenv("MASTER_PORT", "29500", 1);
        CHECK(rendezvous_spec_from_environment() == "tcp:node0:29500");
        setenv("TORCHELASTIC_USE_AGENT_STORE", "True", 1);  // torchrun's agent listens on MASTER_PORT itself
        CHECK(test::error_of([] { rendezvous_spec_from_environment(); }).find("pick another port") !=
              std::string::npos);
        setenv("ACLIP_RENDEZVOUS", "tcp:node0:29511", 1);
        CHECK(rendezvous_spec_from_environment() == "tcp:node0:29511");
        setenv("RANK", "2", 1);
        CHECK(test::error_of([] {
                  make_comm_from_environment(Device::CUDA);
              }).find("RANK = 2 with WORLD_SIZE = 2") != std::string::npos);
        for (const char* name : {"ACLIP_RENDEZVOUS", "MASTER_ADDR", "MASTER_PORT",
                                 "TORCHELASTIC_USE_AGENT_STORE", "WORLD_SIZE", "RANK"})
            unsetenv(name);
    }

    TEST_CASE(
        "PeerWatch: over the tcp rendezvous's connections a rank that ends early is heard of; one that "
        "finishes is not") {
        constexpr int kWorld = 3;
        auto connect = [] {  // every rank's kept connections
            std::vector<std::vector<PeerWatch::Peer>> peers(kWorld);
            const std::string spec = "tcp:127.0.0.1:" + std::to_string(free_port());
            std::vector<std::thread> others;
            for (int r = 1; r < kWorld; ++r)
                others.emplace_back(
                    [&, r] { rendezvous(spec, r, kWorld, std::string(2, '\0'), 10.0, &peers[r]); });
            CHECK(rendezvous(spec, 0, kWorld, "id", 10.0, &peers[0]) == "id");
            for (std::thread& t : others) t.join();
            return peers;
        };
        std::mutex mutex;
        std::vector<std::pair<int, int>> heard;  // (rank, the rank it heard had ended early)
        auto watch = [&](int rank, std::vector<PeerWatch::Peer> peers) {
            return std::make_unique<PeerWatch>(rank, std::move(peers), [&, rank](int lost) {
                const std::lock_guard<std::mutex> lock(mutex);
                heard.emplace_back(rank, lost);
            });
        };
        auto heard_after = [&](size_t n) {  // waits (5 s at most) until n have been heard of
            for (int i = 0; i < 500; ++i) {
                {
                    const std::lock_guard<std::mutex> lock(mutex);
                    if (heard.size() >= n) return heard;
                }
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
            }
            const std::lock_guard<std::mutex> lock(mutex);
            return heard;
        };
        auto fail = [](std::unique_ptr<PeerWatch>& w) {  // as a rank's error unwinds its communicator
            try {
                const std::unique_ptr<PeerWatch> unwound = std::move(w);
                throw std::runtime_error("this rank's error");
            } catch (const std::runtime_error&) {
            }
        };
        using Heard = std::vector<std::pair<int, int>>;
        {  // every rank finishes, the others before rank 0: none hears of a loss
            std::vector<std::vector<PeerWatch::Peer>> peers = connect();
            CHECK(peers[0].size() == 2);  // rank 0 keeps one to each other rank, they keep theirs to it
            CHECK((peers[1].size() == 1 && peers[1][0].rank == 0 && peers[2].size() == 1));
            std::vector<std::unique_ptr<PeerWatch>> w;
            for (int r = 0; r < kWorld; ++r) w.push_back(watch(r, std::move(peers[r])));
            w[2].reset();
            w[1].reset();
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            w[0].reset();
            CHECK(heard_after(1).empty());
        }
        {  // rank 2 fails: rank 0 hears of it; then rank 0 fails (as PeerWatch's default would end it): rank
           // 1 hears of that
            std::vector<std::vector<PeerWatch::Peer>> peers = connect();
            std::vector<std::unique_ptr<PeerWatch>> w;
            for (int r = 0; r < kWorld; ++r) w.push_back(watch(r, std::move(peers[r])));
            fail(w[2]);
            CHECK(heard_after(1) == Heard{{0, 2}});
            fail(w[0]);
            CHECK(heard_after(2) == Heard{{0, 2}, {1, 0}});
            CHECK(w[1]->lost() == 1);
            w[1].reset();
        }
        {  // a killed process says nothing: the kernel closes its connections
            heard.clear();
            std::vector<std::vector<PeerWatch::Peer>> peers = connect();
            const std::unique_ptr<PeerWatch> zero = watch(0, std::move(peers[0])),
                                             two = watch(2, std::move(peers[2]));
            ::close(peers[1][0].fd);
            CHECK(heard_after(1) == Heard{{0, 1}});
        }
    }

    TEST_CASE(
        "PeerWatch in processes: by default a rank ends (status 1) when its peer ends without finishing") {
        // (run in processes: a fork, which the sanitizer builds leave out)
        for (const bool peer_finishes : {false, true}) {
            CAPTURE(peer_finishes);
            int pair[2];
            REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, pair) == 0);
            const pid_t child = ::fork();
            REQUIRE(child >= 0);
            if (child == 0) {  // rank 1, watching rank 0 with the default: it ends this process
                ::close(pair[0]);
                const PeerWatch watch(1, {{0, pair[1]}});
                ::sleep(peer_finishes ? 1 : 30);
                ::_exit(0);  // it heard 'F': nothing amiss
            }
            ::close(pair[1]);
            if (peer_finishes) {
                const char finished = 'F';  // what a PeerWatch of rank 0 says as it is destroyed normally
                REQUIRE(::send(pair[0], &finished, 1, 0) == 1);
            }
            ::close(pair[0]);  // rank 0 ends
            int status = 0;
            for (int i = 0; i < 1000 && ::waitpid(child, &status, WNOHANG) == 0; ++i)
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
            if (::waitpid(child, &status, WNOHANG) == 0) {  // still running after 10 s: the watch did nothing
                ::kill(child, SIGKILL);
                ::waitpid(child, &status, 0);
                FAIL("rank 1 did not end within 10 s");
            }
            CHECK(WIFEXITED(status));
            CHECK(WEXITSTATUS(status) == (peer_finishes ? 0 : 1));
        }
    }
}
