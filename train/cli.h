// cli.h: one table-driven command-line parser for every aclip program, so --help is generated from the
// same table the parser reads and the two cannot drift (llm.c's usage text did).
#pragma once
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

namespace aclip {

class CommandLine {
  public:
    CommandLine(std::string program, std::string summary)
        : program_(std::move(program)), summary_(std::move(summary)) {}
    // Options: --name VALUE; the target holds the default, and receives the value.
    void option(const std::string& name, std::string* target, const std::string& help);
    // An integer below at_least is refused like a malformed one (with --help's text, which names it).
    void option(const std::string& name, int64_t* target, const std::string& help,
                int64_t at_least = std::numeric_limits<int64_t>::min());
    void flag(const std::string& name, bool* target, const std::string& help);
    // --name V1 V2 ...: every following argument up to the next option (repeatable).
    void list(const std::string& name, std::vector<std::string>* target, const std::string& help);
    // Parses argv; prints help and exits 0 on --help; prints the error and the usage and exits 2 on bad
    // input.
    void parse(int argc, char** argv);
    std::vector<std::string> positional;  // arguments that are not options

  private:
    struct Option {
        std::string name, help, kind;
        void* target;
        int64_t at_least = std::numeric_limits<int64_t>::min();  // an int's
    };
    std::string usage() const;
    std::string program_, summary_;
    std::vector<Option> options_;
};

// Runs a program's body and returns its exit status. An aclip::Error prints "program: what" and gives 1;
// so does any other exception (out of memory, a filesystem error from the standard library), with its
// kind named, so that no input ends in std::terminate's abort. Under mpirun, one rank's error ends every
// rank (abort_mpi_job_if_running): the others would wait for it in their next collective.
int run_program(const char* program, const std::function<int()>& body);

}  // namespace aclip
