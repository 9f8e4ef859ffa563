// error.h: the engine's one error type and the check macros that raise it.
// Every failure carries the source file and line that detected it and a hint for the user, in the
// style of llm.c's cudaCheck: "what went wrong (file:line)\n  ---> HINT: what to do about it".
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace aclip {

class Error : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

[[noreturn]] inline void throw_error(const char* file, int line, const std::string& what,
                                     const std::string& hint = {}) {
    std::ostringstream os;
    os << what << " (" << file << ":" << line << ")";
    if (!hint.empty()) os << "\n  ---> HINT: " << hint;
    throw Error(os.str());
}

// Builds a message from any streamable pieces: str_cat("shape ", s, " vs ", t).
template <class... Args>
std::string str_cat(const Args&... args) {
    std::ostringstream os;
    (os << ... << args);
    return os.str();
}

}  // namespace aclip

// AC_CHECK(cond, message pieces...): raise aclip::Error naming file and line when cond is false.
#define AC_CHECK(cond, ...)                                                                   \
    do {                                                                                      \
        if (!(cond)) ::aclip::throw_error(__FILE__, __LINE__, ::aclip::str_cat(__VA_ARGS__)); \
    } while (0)

// AC_CHECK_HINT(cond, hint, message pieces...): the same, with a hint for the user.
#define AC_CHECK_HINT(cond, hint, ...)                                                              \
    do {                                                                                            \
        if (!(cond)) ::aclip::throw_error(__FILE__, __LINE__, ::aclip::str_cat(__VA_ARGS__), hint); \
    } while (0)

#define AC_FAIL(...) ::aclip::throw_error(__FILE__, __LINE__, ::aclip::str_cat(__VA_ARGS__))
#define AC_FAIL_HINT(hint, ...) ::aclip::throw_error(__FILE__, __LINE__, ::aclip::str_cat(__VA_ARGS__), hint)
