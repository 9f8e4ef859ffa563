// shards.h: webdataset shards: lists of tar files, samples grouped by key, and the sample counts in
// sizes.json. A sample is the run of consecutive members sharing a key: "dir/000123.jpg" and
// "dir/000123.txt" form sample "dir/000123" with files "jpg" and "txt" (the extension is everything after
// the first dot of the basename, as webdataset splits it).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "data/tar.h"

namespace aclip {

// Expands "{00000..01535}" ranges (zero padding from the first bound) and "{a,b,c}" lists, any number of
// each, and joins several patterns separated by "::". "/data/{00..02}.tar" -> 3 paths. A folder stands for
// its .tar files in name order.
std::vector<std::string> expand_shard_list(const std::string& pattern);

struct Sample {
    std::string key;
    std::map<std::string, std::string> files;  // extension -> bytes
};

// The sample's image: its .jpg, .jpeg or .png member, in that order; null when it has none.
const std::string* image_of(const Sample& s);
std::string* image_of(Sample& s);

// Streams the samples of one shard. A damaged or truncated shard ends early: the partial sample is
// dropped, error() says what happened, and the caller warns once and moves on.
class ShardReader {
  public:
    explicit ShardReader(const std::string& path) : tar_(path) {}
    bool next(Sample& out);
    const std::string& error() const { return tar_.error(); }
    const std::string& path() const { return tar_.path(); }
    const std::string& last_key() const { return pending_.key; }

  private:
    TarReader tar_;
    Sample pending_;  // the sample being assembled
    bool pending_valid_ = false;
    bool done_ = false;
};

// Writes samples to one shard, each file as KEY.EXT, atomically on close().
class ShardWriter {
  public:
    explicit ShardWriter(const std::string& path) : tar_(path) {}
    void write(const Sample& s);
    void close() { tar_.close(); }
    int64_t count() const { return count_; }

  private:
    TarWriter tar_;
    int64_t count_ = 0;
};

// Writes a folder of shards, DIR/00000.tar, DIR/00001.tar, ..., shard_size samples each, and DIR/sizes.json
// at close(). Progress goes to stderr, one line per shard.
class ShardSetWriter {
  public:
    ShardSetWriter(std::string dir, int64_t shard_size, std::string label);
    void write(const Sample& s);
    void close();
    int64_t count() const { return total_; }

  private:
    void finish_shard();
    std::string dir_, label_;
    int64_t shard_size_, total_ = 0;
    std::unique_ptr<ShardWriter> current_;
    std::vector<std::pair<std::string, int64_t>> sizes_;
};

// Sample counts of the shards, from the sizes.json beside them (basename -> count, as open_clip reads
// it), else from img2dataset's NAME_stats.json ("successes"), else by a scan of the shard; sizes.json is
// (re)written with what was found, atomically (a folder that cannot take it only gets a warning).
std::vector<int64_t> shard_sizes(const std::vector<std::string>& shards);

}  // namespace aclip
