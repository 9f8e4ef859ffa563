// test_progress.cpp: the progress bar draws on a terminal (a pseudo-terminal here) and writes nothing to
// a pipe, so logs stay free of control characters.
#include <fcntl.h>
#include <pty.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "test_util.h"
#include "train/progress.h"

using namespace aclip;

namespace {

// Everything that can be read from fd `in` now, without waiting.
std::string drain(int in) {
    ::fcntl(in, F_SETFL, ::fcntl(in, F_GETFL) | O_NONBLOCK);
    std::string got;
    char buf[512];
    for (ssize_t n; (n = ::read(in, buf, sizeof buf)) > 0;) got.append(buf, static_cast<size_t>(n));
    return got;
}

}  // namespace

TEST_SUITE("train") {
    TEST_CASE("the progress bar draws on a terminal and is silent on a pipe") {
        int master = -1, slave = -1;
        REQUIRE(::openpty(&master, &slave, nullptr, nullptr, nullptr) == 0);
        std::FILE* terminal = ::fdopen(slave, "w");
        REQUIRE(terminal != nullptr);
        {
            ProgressBar bar(100, 20, terminal);  // a resumed run: 20 of 100 done before
            CHECK(bar.active());
            bar.update(60);  // half of the remaining 80
        }                    // the destructor erases the line
        std::string drawn = drain(master);
        CHECK(drawn.find("[###############...............] 60/100  eta ") != std::string::npos);
        CHECK(drawn.find("\r\033[K") != std::string::npos);
        {
            OnDemandProgressBar images(terminal);  // learns its total from the first update
            images.update(3, 12);
            images.update(12, 12);
            images.reset();
        }
        drawn = drain(master);
        CHECK(drawn.find("] 3/12  eta ") != std::string::npos);
        CHECK(drawn.find("[##############################] 12/12") != std::string::npos);
        CHECK(drawn.find("\r\033[K") != std::string::npos);
        std::fclose(terminal);
        ::close(master);

        int pipe_fds[2];
        REQUIRE(::pipe(pipe_fds) == 0);
        std::FILE* pipe_out = ::fdopen(pipe_fds[1], "w");
        {
            ProgressBar bar(100, 0, pipe_out);
            CHECK(!bar.active());
            bar.update(50);
            bar.clear();
        }
        std::fclose(pipe_out);
        CHECK(drain(pipe_fds[0]).empty());
        ::close(pipe_fds[0]);
    }
}
