// tar.h: reading and writing tar archives as webdataset shards use them (what img2dataset writes and
// open_clip reads): POSIX ustar headers, PAX extended records ('x' for the next member, 'g' global;
// a path= record wins over the header's name), and GNU long names ('L'). The reader streams from disk
// and checks each header's checksum; a truncated or damaged archive stops with a reason instead of
// reading past its end. The writer writes ustar (PAX records for names over 100 bytes) atomically.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>

namespace aclip {

struct TarMember {
    std::string name;
    std::string data;
};

class TarReader {
  public:
    explicit TarReader(const std::string& path);  // throws when the file cannot be opened
    ~TarReader();
    TarReader(const TarReader&) = delete;
    TarReader& operator=(const TarReader&) = delete;

    // The next regular file. False at the end of the archive, or when it is damaged: then error()
    // says why ("truncated inside 'x/y.jpg'", "bad header checksum at byte 5120").
    bool next(TarMember& out);
    const std::string& error() const { return error_; }
    const std::string& failed_member() const { return failed_member_; }  // the name it broke in, if known
    const std::string& path() const { return path_; }

  private:
    bool read_exact(char* dst, size_t n);
    bool skip(uint64_t n);
    std::string path_, error_, failed_member_;
    FILE* file_ = nullptr;
    uint64_t offset_ = 0;
    uint64_t file_size_ = UINT64_MAX;  // a regular file's size; a pipe's is not known
    std::string global_path_;          // from a 'g' record (rarely used, but valid)
};

class TarWriter {
  public:
    // Writes to path.tmp.PID; close() syncs it and renames it over path, so a reader never sees half a shard.
    explicit TarWriter(const std::string& path);
    ~TarWriter();  // without close(), the temporary file is removed
    TarWriter(const TarWriter&) = delete;
    TarWriter& operator=(const TarWriter&) = delete;

    void add(const std::string& name, const std::string& data);
    void close();

  private:
    void write(const char* data, size_t n);
    std::string path_, tmp_path_;
    FILE* file_ = nullptr;
};

}  // namespace aclip
