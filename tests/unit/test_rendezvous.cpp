// test_rendezvous.cpp: rank 0's bytes reach every other rank through a file and over TCP (ranks as
// threads, on the loopback), whichever side starts first; every way it can go wrong ends in an error that
// names the place or the missing ranks, within its timeout; and the environment picks the rendezvous.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
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
}
