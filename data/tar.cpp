// tar.cpp: see tar.h. Layout: 512-byte headers, data padded to 512 bytes, two zero blocks at the end.
#include "data/tar.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "engine/core/error.h"

namespace aclip {

namespace {

constexpr size_t kBlock = 512;

uint64_t padded(uint64_t n) {
    return (n + kBlock - 1) / kBlock * kBlock;
}

// Octal numeric field (NUL/space terminated); base-256 when the high bit is set (GNU, for sizes >= 8 GiB).
bool parse_number(const char* field, size_t len, uint64_t& out) {
    out = 0;
    if (static_cast<unsigned char>(field[0]) & 0x80) {
        for (size_t i = 1; i < len; ++i) out = (out << 8) | static_cast<unsigned char>(field[i]);
        return true;
    }
    size_t i = 0;
    while (i < len && field[i] == ' ') ++i;
    bool any = false;
    for (; i < len && field[i] >= '0' && field[i] <= '7'; ++i) {
        out = out * 8 + static_cast<uint64_t>(field[i] - '0');
        any = true;
    }
    return any || (i < len && (field[i] == '\0' || field[i] == ' '));
}

std::string field_string(const char* field, size_t len) {
    return std::string(field, strnlen(field, len));
}

bool checksum_ok(const char* h) {
    uint64_t stored = 0;
    if (!parse_number(h + 148, 8, stored)) return false;
    uint64_t sum = 0;
    for (size_t i = 0; i < kBlock; ++i) sum += (i >= 148 && i < 156) ? ' ' : static_cast<unsigned char>(h[i]);
    return sum == stored;
}

// The value of "path" in PAX records ("LEN key=value\n" ...), or "" when there is none.
std::string pax_path(const std::string& records) {
    std::string path;
    size_t at = 0;
    while (at < records.size()) {
        size_t space = records.find(' ', at);
        if (space == std::string::npos) break;
        uint64_t len = std::strtoull(records.substr(at, space - at).c_str(), nullptr, 10);
        if (len == 0 || at + len > records.size()) break;
        std::string kv = records.substr(space + 1, at + len - space - 2);  // without the trailing newline
        if (kv.rfind("path=", 0) == 0) path = kv.substr(5);
        at += len;
    }
    return path;
}

}  // namespace

TarReader::TarReader(const std::string& path) : path_(path) {
    file_ = std::fopen(path.c_str(), "rb");
    AC_CHECK_HINT(file_ != nullptr, "check the shard list in the config", "cannot open shard '", path,
                  "': ", std::strerror(errno));
    struct stat st {};
    if (fstat(fileno(file_), &st) == 0 && S_ISREG(st.st_mode)) file_size_ = static_cast<uint64_t>(st.st_size);
}

TarReader::~TarReader() {
    if (file_) std::fclose(file_);
}

bool TarReader::read_exact(char* dst, size_t n) {
    size_t got = std::fread(dst, 1, n, file_);
    offset_ += got;
    return got == n;
}

bool TarReader::skip(uint64_t n) {
    char buf[1 << 14];
    while (n > 0) {
        size_t chunk = static_cast<size_t>(std::min<uint64_t>(n, sizeof buf));
        if (!read_exact(buf, chunk)) return false;
        n -= chunk;
    }
    return true;
}

bool TarReader::next(TarMember& out) {
    if (!error_.empty() || !file_) return false;
    std::string long_name;  // from a GNU 'L' or PAX 'x' record, for the next member only
    while (true) {
        char h[kBlock];
        const uint64_t header_at = offset_;
        size_t got = std::fread(h, 1, kBlock, file_);
        offset_ += got;
        if (got == 0) return false;  // end of file without the zero blocks: accepted, as GNU tar does
        if (got < kBlock) {
            error_ = "truncated header at byte " + std::to_string(header_at);
            return false;
        }
        bool zero = true;
        for (char c : h) zero = zero && c == 0;
        if (zero) return false;  // the end-of-archive marker
        if (!checksum_ok(h)) {
            error_ =
                "bad header checksum at byte " + std::to_string(header_at) + " (not a tar file, or damaged)";
            return false;
        }
        uint64_t size = 0;
        if (!parse_number(h + 124, 12, size)) {
            error_ = "bad size field at byte " + std::to_string(header_at);
            return false;
        }
        const char type = h[156];
        std::string name = field_string(h, 100);
        if (std::memcmp(h + 257, "ustar", 5) == 0 && h[345] != '\0')
            name = field_string(h + 345, 155) + "/" + name;
        if (size > file_size_ - offset_) {  // said before allocating what a damaged header announces
            failed_member_ = name;
            error_ = "truncated inside '" + name + "' (" + std::to_string(size) + " bytes announced, " +
                     std::to_string(file_size_ - offset_) + " left in the file)";
            return false;
        }
        if (type == 'L' || type == 'K' || type == 'x' || type == 'g') {  // metadata for what follows
            if (size > (64u << 20)) {
                error_ = "metadata record of " + std::to_string(size) + " bytes at byte " +
                         std::to_string(header_at);
                return false;
            }
            std::string rec(size, '\0');
            if (!read_exact(rec.data(), size) || !skip(padded(size) - size)) {
                error_ = "truncated inside a metadata record at byte " + std::to_string(header_at);
                return false;
            }
            if (type == 'L')
                long_name = std::string(rec.c_str());
            else if (type == 'x' && !pax_path(rec).empty())
                long_name = pax_path(rec);
            else if (type == 'g')
                global_path_ = pax_path(rec);
            continue;
        }
        if (!long_name.empty()) name = long_name;
        if (type != '0' && type != '\0' && type != '7') {  // directories, links, devices: skip their data
            if (!skip(padded(size))) {
                failed_member_ = name;
                error_ = "truncated inside '" + name + "'";
                return false;
            }
            long_name.clear();
            continue;
        }
        out.name = name;
        out.data.assign(size, '\0');
        if (!read_exact(out.data.data(), size) || !skip(padded(size) - size)) {
            failed_member_ = name;
            error_ = "truncated inside '" + name + "' (" + std::to_string(size) + " bytes announced)";
            return false;
        }
        return true;
    }
}

TarWriter::TarWriter(const std::string& path)
    : path_(path), tmp_path_(path + ".tmp." + std::to_string(getpid())) {
    file_ = std::fopen(tmp_path_.c_str(), "wb");
    AC_CHECK_HINT(file_ != nullptr, "check that the directory exists and is writable", "cannot create '",
                  tmp_path_, "': ", std::strerror(errno));
}

TarWriter::~TarWriter() {
    if (file_) {
        std::fclose(file_);
        std::remove(tmp_path_.c_str());
    }
}

void TarWriter::write(const char* data, size_t n) {
    AC_CHECK(std::fwrite(data, 1, n, file_) == n, "writing '", tmp_path_, "' failed: ", std::strerror(errno),
             " (disk full?)");
}

namespace {

void fill_header(char* h, const std::string& name, uint64_t size, char type) {
    std::memset(h, 0, kBlock);
    std::memcpy(h, name.data(), std::min<size_t>(name.size(), 100));
    std::snprintf(h + 100, 8, "%07o", 0644);
    std::snprintf(h + 108, 8, "%07o", 0);
    std::snprintf(h + 116, 8, "%07o", 0);
    std::snprintf(h + 124, 12, "%011llo", static_cast<unsigned long long>(size));
    std::snprintf(h + 136, 12, "%011o", 0);
    h[156] = type;
    std::memcpy(h + 257, "ustar", 6);
    std::memcpy(h + 263, "00", 2);
    std::memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (size_t i = 0; i < kBlock; ++i) sum += static_cast<unsigned char>(h[i]);
    std::snprintf(h + 148, 8, "%06o", sum);
    h[155] = ' ';
}

}  // namespace

void TarWriter::add(const std::string& name, const std::string& data) {
    AC_CHECK(file_ != nullptr, "TarWriter::add after close on '", path_, "'");
    AC_CHECK(!name.empty(), "TarWriter::add: empty member name in '", path_, "'");
    AC_CHECK(data.size() < (uint64_t{1} << 33), "TarWriter::add: '", name, "' is over 8 GiB");
    char h[kBlock];
    const char zeros[kBlock] = {};
    if (name.size() > 100) {  // a PAX record carries the full name
        std::string rec = " path=" + name + "\n";
        size_t len = rec.size() + 1;
        while (std::to_string(len).size() + rec.size() != len) len = std::to_string(len).size() + rec.size();
        rec = std::to_string(len) + rec;
        fill_header(h, "PaxHeaders/" + name.substr(name.size() - 80), rec.size(), 'x');
        write(h, kBlock);
        write(rec.data(), rec.size());
        write(zeros, padded(rec.size()) - rec.size());
    }
    fill_header(h, name.size() > 100 ? name.substr(name.size() - 100) : name, data.size(), '0');
    write(h, kBlock);
    write(data.data(), data.size());
    write(zeros, padded(data.size()) - data.size());
}

void TarWriter::close() {
    AC_CHECK(file_ != nullptr, "TarWriter::close twice on '", path_, "'");
    const char zeros[2 * kBlock] = {};
    write(zeros, sizeof zeros);
    bool ok = std::fflush(file_) == 0 && ::fsync(fileno(file_)) == 0;
    int err = errno;
    std::fclose(file_);
    file_ = nullptr;
    if (!ok || std::rename(tmp_path_.c_str(), path_.c_str()) != 0) {
        std::remove(tmp_path_.c_str());
        AC_FAIL("finishing shard '", path_, "' failed: ", std::strerror(ok ? errno : err));
    }
}

}  // namespace aclip
