// safetensors.h: reading and writing the safetensors format, the only tensor file format of aclip
// (checkpoints, fixtures, converted weights). Layout: 8-byte little-endian header length N, N bytes of
// JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {key: value}}, then the data.
// The reader is strict: a truncated or hostile file is a clear error naming the file and the tensor,
// never a crash or a read out of bounds. The writer is atomic (write_file_atomic of files.h).
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/core/tensor.h"
#include "engine/io/files.h"

namespace aclip {

struct SafetensorsFile {
    std::vector<std::pair<std::string, Tensor>> tensors;  // in file order
    std::map<std::string, std::string> metadata;

    bool has(const std::string& name) const;
    const Tensor& get(const std::string& name) const;  // error names the file's path when missing
    // A __metadata__ value; a missing key, or a value that is not a number of the type, is an error
    // naming the file and the key.
    const std::string& meta(const std::string& key) const;
    int64_t meta_integer(const std::string& key) const;
    double meta_number(const std::string& key) const;
    std::string path;
};

SafetensorsFile load_safetensors(const std::string& path);
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace aclip
