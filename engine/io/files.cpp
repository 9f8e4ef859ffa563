// files.cpp: see files.h.
#include "engine/io/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "engine/core/error.h"

namespace aclip {

namespace {

// The folder holding path: "." for a bare name, "/" for one at the root.
std::string folder_of(const std::string& path) {
    const std::string parent = std::filesystem::path(path).parent_path().string();
    return parent.empty() ? "." : parent;
}

}  // namespace

void write_file_atomic(const std::string& path, const std::string& bytes) {
    check_not_a_directory(path);  // the rename would fail only after the write
    std::string tmp = path + ".tmp." + std::to_string(getpid());
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    AC_CHECK_HINT(fd >= 0, "check that the directory exists and is writable", "cannot create '", tmp,
                  "': ", std::strerror(errno));
    size_t done = 0;
    while (done < bytes.size()) {
        ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            int err = errno;
            ::close(fd);
            ::unlink(tmp.c_str());
            AC_FAIL("writing '", tmp, "' failed: ", std::strerror(err), " (disk full?)");
        }
        done += static_cast<size_t>(n);
    }
    bool synced = ::fsync(fd) == 0;
    int err = errno;
    ::close(fd);
    if (!synced) {
        ::unlink(tmp.c_str());
        AC_FAIL("fsync of '", tmp, "' failed: ", std::strerror(err));
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        err = errno;
        ::unlink(tmp.c_str());
        AC_FAIL("renaming '", tmp, "' to '", path, "' failed: ", std::strerror(err));
    }
    int dfd = ::open(folder_of(path).c_str(), O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        ::fsync(dfd);  // makes the rename itself durable
        ::close(dfd);
    }
}

void create_directories(const std::string& dir) {
    std::error_code error;
    std::filesystem::create_directories(dir, error);
    AC_CHECK_HINT(!error, "choose a directory that can be created and written", "cannot create directory '",
                  dir, "': ", error.message());
}

void check_not_a_directory(const std::string& path) {
    std::error_code error;
    AC_CHECK_HINT(!std::filesystem::is_directory(path, error), "give a file's path", "'", path,
                  "' is a directory, not a file");
}

void check_can_write(const std::string& path) {
    check_not_a_directory(path);
    const std::string dir = folder_of(path);
    std::error_code error;
    AC_CHECK_HINT(std::filesystem::is_directory(dir, error), "create the folder first, or choose another",
                  "cannot write '", path, "': the folder '", dir, "' does not exist");
    AC_CHECK_HINT(::access(dir.c_str(), W_OK) == 0, "choose a folder you can write", "cannot write '", path,
                  "': the folder '", dir, "' is not writable (", std::strerror(errno), ")");
}

std::ifstream open_for_reading(const std::string& path, const std::string& hint, std::ios::openmode mode) {
    check_not_a_directory(path);
    std::ifstream in(path, mode);
    AC_CHECK_HINT(in.good(), hint, "cannot open '", path, "': ", std::strerror(errno));
    return in;
}

std::string read_file(const std::string& path, const std::string& hint) {
    std::ifstream in = open_for_reading(path, hint, std::ios::in | std::ios::binary);
    std::ostringstream bytes;
    bytes << in.rdbuf();
    AC_CHECK(!in.bad(), "reading '", path, "' failed: ", std::strerror(errno));
    return bytes.str();
}

}  // namespace aclip
