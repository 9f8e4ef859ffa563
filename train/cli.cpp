// cli.cpp: see cli.h.
#include "train/cli.h"

#include <cstdio>
#include <cstdlib>
#include <new>
#include <sstream>

#include "engine/core/error.h"
#include "engine/core/parse.h"
#include "engine/dist/comm.h"

namespace aclip {

void CommandLine::option(const std::string& name, std::string* target, const std::string& help) {
    options_.push_back({name, help, "string", target});
}
void CommandLine::option(const std::string& name, int64_t* target, const std::string& help,
                         int64_t at_least) {
    options_.push_back({name, help, "int", target, at_least});
}
void CommandLine::flag(const std::string& name, bool* target, const std::string& help) {
    options_.push_back({name, help, "flag", target});
}

void CommandLine::list(const std::string& name, std::vector<std::string>* target, const std::string& help) {
    options_.push_back({name, help, "list", target});
}

std::string CommandLine::usage() const {
    std::ostringstream os;
    os << "usage: " << program_ << " [options]\n" << summary_ << "\n\noptions:\n";
    for (const Option& o : options_) {
        std::string lhs = "  --";
        lhs += o.name;
        if (o.kind == "int") lhs += " N";
        if (o.kind == "string") lhs += " VALUE";
        if (o.kind == "list") lhs += " VALUES...";
        os << lhs << std::string(lhs.size() < 28 ? 28 - lhs.size() : 1, ' ') << o.help;
        if (o.kind == "string" && !static_cast<std::string*>(o.target)->empty())
            os << " (default: " << *static_cast<std::string*>(o.target) << ")";
        if (o.kind == "int") {
            os << " (default: " << *static_cast<int64_t*>(o.target);
            if (o.at_least != std::numeric_limits<int64_t>::min()) os << "; at least " << o.at_least;
            os << ")";
        }
        os << "\n";
    }
    os << "  --help                    this text\n";
    return os.str();
}

void CommandLine::parse(int argc, char** argv) {
    auto fail = [&](const std::string& msg) {
        std::fprintf(stderr, "%s: %s\n\n%s", program_.c_str(), msg.c_str(), usage().c_str());
        std::exit(2);
    };
    auto is_option = [&](const std::string& a) {
        if (a == "--help") return true;
        for (const Option& o : options_)
            if ("--" + o.name == a) return true;
        return false;
    };
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "--help" || arg == "-h") {
            std::fputs(usage().c_str(), stdout);
            std::exit(0);
        }
        if (arg.rfind("--", 0) != 0) {
            positional.push_back(arg);
            continue;
        }
        const Option* match = nullptr;
        for (const Option& o : options_)
            if ("--" + o.name == arg) match = &o;
        if (!match) fail("unknown option " + arg);
        if (match->kind == "flag") {
            *static_cast<bool*>(match->target) = true;
            continue;
        }
        if (match->kind == "list") {
            auto* values = static_cast<std::vector<std::string>*>(match->target);
            const size_t before = values->size();
            while (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0) values->push_back(argv[++i]);
            if (values->size() == before) fail(arg + " needs at least one value");
            continue;
        }
        if (i + 1 >= argc) fail(arg + " needs a value");
        std::string value = argv[++i];
        if (is_option(value))  // `--image --labels a,b`: the value was forgotten
            fail(arg + " needs a value, not the option " + value + " (an empty value is written as '')");
        if (match->kind == "string") {
            *static_cast<std::string*>(match->target) = value;
        } else {
            const std::optional<int64_t> v = parse_int64(value);
            if (!v) fail(arg + " needs an integer, got '" + value + "'");
            if (*v < match->at_least)
                fail(arg + " must be at least " + std::to_string(match->at_least) + ", got " + value);
            *static_cast<int64_t*>(match->target) = *v;
        }
    }
}

int run_program(const char* program, const std::function<int()>& body) {
    try {
        return body();
    } catch (const Error& e) {
        std::fprintf(stderr, "%s: %s\n", program, e.what());
    } catch (const std::bad_alloc&) {
        std::fprintf(stderr, "%s: out of memory (std::bad_alloc)\n", program);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s: %s (an unexpected std::exception; please report it)\n", program, e.what());
    }
    std::fflush(stderr);
    abort_mpi_job_if_running(1);  // one rank's error ends the run, not a hang of the others
    return 1;
}

}  // namespace aclip
