// thread_ranks.h: runs data-parallel code on N ranks that are threads of the test process, talking
// through the thread communicator (engine/dist/comm.h), so the multi-rank logic is tested on any CPU.
#pragma once
#include <exception>
#include <functional>
#include <thread>
#include <vector>

#include "engine/dist/comm.h"

namespace aclip::test {

// Runs fn(rank, comm) on `world` threads and waits; an exception in any thread is rethrown here.
inline void run_ranks(int world, const std::function<void(int, Comm&)>& fn) {
    auto comms = make_thread_comms(world);
    std::vector<std::exception_ptr> errors(static_cast<size_t>(world));
    std::vector<std::thread> threads;
    for (int r = 0; r < world; ++r)
        threads.emplace_back([&, r] {
            try {
                fn(r, *comms[static_cast<size_t>(r)]);
            } catch (...) {
                errors[static_cast<size_t>(r)] = std::current_exception();
            }
        });
    for (auto& t : threads) t.join();
    for (auto& e : errors)
        if (e) std::rethrow_exception(e);
}

}  // namespace aclip::test
