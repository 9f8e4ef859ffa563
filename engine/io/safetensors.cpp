// safetensors.cpp: see safetensors.h.
#include "engine/io/safetensors.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>

#include "engine/core/parse.h"
#include "engine/io/files.h"
#include "engine/io/json_lite.h"

namespace aclip {

namespace {

constexpr uint64_t kMaxHeaderBytes = 100u << 20;  // the reference implementation's limit

const char* safetensors_dtype(DType t) {
    switch (t) {
        case DType::F32:
            return "F32";
        case DType::F64:
            return "F64";
        case DType::BF16:
            return "BF16";
        case DType::I32:
            return "I32";
        case DType::I64:
            return "I64";
        case DType::U8:
            return "U8";
    }
    return "?";
}

bool parse_dtype(const std::string& s, DType& out) {
    for (DType t : {DType::F32, DType::F64, DType::BF16, DType::I32, DType::I64, DType::U8})
        if (s == safetensors_dtype(t)) {
            out = t;
            return true;
        }
    return false;
}

struct Entry {
    std::string name;
    DType dtype;
    Shape shape;
    uint64_t begin, end;
};

}  // namespace

bool SafetensorsFile::has(const std::string& name) const {
    for (const auto& [n, t] : tensors)
        if (n == name) return true;
    return false;
}

const Tensor& SafetensorsFile::get(const std::string& name) const {
    for (const auto& [n, t] : tensors)
        if (n == name) return t;
    AC_FAIL(path, ": no tensor named '", name, "' (the file has ", tensors.size(), " tensors)");
}

const std::string& SafetensorsFile::meta(const std::string& key) const {
    auto it = metadata.find(key);
    AC_CHECK(it != metadata.end(), path, ": __metadata__ has no '", key, "'");
    return it->second;
}

int64_t SafetensorsFile::meta_integer(const std::string& key) const {
    const std::optional<int64_t> v = parse_int64(meta(key));
    AC_CHECK(v, path, ": __metadata__ '", key, "' = '", meta(key), "' is not an integer");
    return *v;
}

double SafetensorsFile::meta_number(const std::string& key) const {
    const std::optional<double> v = parse_double(meta(key));
    AC_CHECK(v, path, ": __metadata__ '", key, "' = '", meta(key), "' is not a finite number");
    return *v;
}

SafetensorsFile load_safetensors(const std::string& path) {
    std::ifstream in = open_for_reading(path, "check the path", std::ios::in | std::ios::binary);
    in.seekg(0, std::ios::end);
    const uint64_t file_size = static_cast<uint64_t>(in.tellg());
    in.seekg(0);
    AC_CHECK(file_size >= 8, path, ": truncated: ", file_size, " bytes, fewer than the 8-byte header length");
    unsigned char len_bytes[8];
    in.read(reinterpret_cast<char*>(len_bytes), 8);
    AC_CHECK(in.good(), path, ": could not read the header length: ", std::strerror(errno));
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | len_bytes[i];
    AC_CHECK(header_len <= file_size - 8, path, ": header length ", header_len,
             " runs past the end of the file (", file_size, " bytes)");
    AC_CHECK(header_len <= kMaxHeaderBytes, path, ": header length ", header_len,
             " exceeds the 100 MiB limit");
    std::string header(header_len, '\0');
    in.read(header.data(), static_cast<std::streamsize>(header_len));
    AC_CHECK(in.good(), path, ": could not read the header");

    JsonValue root = json_parse(header, path + " header");
    AC_CHECK(root.kind == JsonValue::Kind::Object, path, ": header is not a JSON object");
    const uint64_t data_size = file_size - 8 - header_len;

    SafetensorsFile file;
    file.path = path;
    std::vector<Entry> entries;
    for (const auto& [name, v] : root.object) {
        if (name == "__metadata__") {
            AC_CHECK(v.kind == JsonValue::Kind::Object, path, ": __metadata__ is not an object");
            for (const auto& [k, mv] : v.object) {
                AC_CHECK(mv.kind == JsonValue::Kind::String, path, ": __metadata__ value of '", k,
                         "' is not a string");
                file.metadata[k] = mv.string;
            }
            continue;
        }
        AC_CHECK(v.kind == JsonValue::Kind::Object, path, ": entry '", name, "' is not an object");
        const JsonValue* dt = v.find("dtype");
        const JsonValue* sh = v.find("shape");
        const JsonValue* off = v.find("data_offsets");
        AC_CHECK(dt && sh && off, path, ": tensor '", name, "' lacks dtype, shape or data_offsets");
        Entry e;
        e.name = name;
        AC_CHECK(dt->kind == JsonValue::Kind::String && parse_dtype(dt->string, e.dtype), path, ": tensor '",
                 name, "' has unknown dtype '", dt->string, "'; accepted: F32, F64, BF16, I32, I64, U8");
        AC_CHECK(sh->kind == JsonValue::Kind::Array, path, ": shape of '", name, "' is not an array");
        uint64_t numel = 1;
        for (const JsonValue& d : sh->array) {
            AC_CHECK(d.kind == JsonValue::Kind::Int && d.integer >= 0, path, ": shape of '", name,
                     "' has a non-integer or negative dim");
            uint64_t dim = static_cast<uint64_t>(d.integer);
            AC_CHECK(dim == 0 || numel <= (UINT64_MAX / 16) / dim, path, ": shape of '", name, "' overflows");
            numel *= dim;
            e.shape.push_back(d.integer);
        }
        AC_CHECK(off->kind == JsonValue::Kind::Array && off->array.size() == 2 &&
                     off->array[0].kind == JsonValue::Kind::Int &&
                     off->array[1].kind == JsonValue::Kind::Int && off->array[0].integer >= 0 &&
                     off->array[1].integer >= off->array[0].integer,
                 path, ": data_offsets of '", name, "' must be [begin, end] with 0 <= begin <= end");
        e.begin = static_cast<uint64_t>(off->array[0].integer);
        e.end = static_cast<uint64_t>(off->array[1].integer);
        AC_CHECK(e.end <= data_size, path, ": tensor '", name, "' has data_offsets [", e.begin, ", ", e.end,
                 "] past the end of the data (", data_size, " bytes)");
        AC_CHECK(e.end - e.begin == numel * dtype_size(e.dtype), path, ": tensor '", name, "' has ",
                 e.end - e.begin, " bytes but shape ", shape_str(e.shape), " of ", dtype_name(e.dtype),
                 " needs ", numel * dtype_size(e.dtype));
        entries.push_back(std::move(e));
    }
    // The data must be covered exactly once: no overlaps, no holes.
    std::vector<const Entry*> by_offset;
    for (const Entry& e : entries) by_offset.push_back(&e);
    std::sort(by_offset.begin(), by_offset.end(), [](const Entry* a, const Entry* b) {
        return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
    });
    uint64_t at = 0;
    for (const Entry* e : by_offset) {
        AC_CHECK(e->begin >= at, path, ": tensor '", e->name, "' overlaps the previous tensor (offset ",
                 e->begin, " < ", at, ")");
        AC_CHECK(e->begin == at, path, ": a hole in the data before tensor '", e->name, "' (offset ",
                 e->begin, ", expected ", at, ")");
        at = e->end;
    }
    AC_CHECK(at == data_size, path, ": ", data_size - at, " bytes after the last tensor are not described");

    for (const Entry& e : entries) {
        Tensor t = empty(e.shape, e.dtype);
        in.seekg(static_cast<std::streamoff>(8 + header_len + e.begin));
        in.read(static_cast<char*>(t.raw_data()), static_cast<std::streamsize>(e.end - e.begin));
        AC_CHECK(in.good() || e.end == e.begin, path, ": could not read the data of '", e.name, "'");
        file.tensors.emplace_back(e.name, std::move(t));
    }
    return file;
}

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
    std::set<std::string> names;
    std::string header = "{";
    if (!metadata.empty()) {
        header += "\"__metadata__\":{";
        bool first = true;
        for (const auto& [k, v] : metadata) {
            if (!first) header += ',';
            header += json_quote(k);
            header += ':';
            header += json_quote(v);
            first = false;
        }
        header += "}";
    }
    uint64_t offset = 0;
    std::vector<Tensor> contiguous;
    for (const auto& [name, t] : tensors) {
        AC_CHECK(name != "__metadata__" && names.insert(name).second, "save_safetensors '", path,
                 "': duplicate or reserved tensor name '", name, "'");
        Tensor c = t.detach().to(Device::CPU).contiguous();  // GPU tensors are copied to the host first
        uint64_t bytes = static_cast<uint64_t>(c.numel()) * dtype_size(c.dtype());
        if (header.size() > 1) header += ',';
        header += json_quote(name);
        header += ":{\"dtype\":\"";
        header += safetensors_dtype(c.dtype());
        header += "\",\"shape\":[";
        for (int64_t i = 0; i < c.dim(); ++i) {
            if (i) header += ',';
            header += std::to_string(c.size(i));
        }
        header +=
            "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + bytes) + "]}";
        offset += bytes;
        contiguous.push_back(c);
    }
    header += "}";
    while ((8 + header.size()) % 8 != 0) header += ' ';  // data starts 8-byte aligned
    std::string bytes(8, '\0');
    for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
    bytes += header;
    bytes.reserve(bytes.size() + offset);
    for (const Tensor& c : contiguous)
        bytes.append(static_cast<const char*>(c.raw_data()), c.numel() * dtype_size(c.dtype()));
    write_file_atomic(path, bytes);
}

}  // namespace aclip
