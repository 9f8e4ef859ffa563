// converters.cpp: see converters.h.
#include "data/converters.h"

#include <zip.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "data/image.h"
#include "data/shards.h"
#include "data/tokenizer.h"
#include "engine/core/error.h"
#include "engine/core/parse.h"
#include "engine/io/files.h"
#include "engine/io/json_lite.h"

namespace aclip {

namespace {

void skip_warning(ConvertReport& r, const std::string& what) {
    ++r.skipped;
    std::fprintf(stderr, "warning: skipping %s\n", what.c_str());
}

// A table row's two fields, PATH and CAPTION, at the first separator. A field wholly in double quotes (as
// pandas and spreadsheets write one holding the separator or a quote) loses them, "" inside becoming ",
// and the columns after a quoted caption are dropped. Any other field is taken as it stands, the caption
// to the end of the line (a TSV caption may begin with a quote: `"Hi" she said`). Empty without a separator.
std::optional<std::pair<std::string, std::string>> table_row(const std::string& line, char sep) {
    size_t at = 0;
    auto quoted = [&]() -> std::optional<std::string> {  // the field at `at` in quotes, `at` moved past it
        std::string value;
        for (size_t i = at + 1; i < line.size(); ++i) {
            if (line[i] != '"') {
                value += line[i];
            } else if (i + 1 < line.size() && line[i + 1] == '"') {
                value += '"';
                ++i;
            } else if (i + 1 == line.size() || line[i + 1] == sep) {  // the closing quote
                at = i + 2;
                return value;
            } else {
                return std::nullopt;  // text after the closing quote: not a quoted field
            }
        }
        return std::nullopt;  // not closed
    };
    auto field = [&](bool last) -> std::optional<std::string> {
        if (at < line.size() && line[at] == '"')
            if (std::optional<std::string> value = quoted()) return value;
        const size_t end = last ? line.size() : line.find(sep, at);
        if (end == std::string::npos) return std::nullopt;
        std::string value = line.substr(at, end - at);
        at = end + 1;
        return value;
    };
    std::optional<std::string> path = field(false);
    if (!path || at > line.size()) return std::nullopt;  // a quoted path ending the line
    return std::pair{*path, *field(true)};
}

std::string key_of(int64_t i) {
    char key[32];
    std::snprintf(key, sizeof key, "%08lld", static_cast<long long>(i));
    return key;
}

}  // namespace

ConvertReport convert_table(const std::string& table, char sep, const std::string& out_dir,
                            int64_t shard_size) {
    std::ifstream in = open_for_reading(table);
    const std::filesystem::path base = std::filesystem::path(table).parent_path();
    ShardSetWriter out(out_dir, shard_size, "convert " + table);
    ConvertReport r;
    std::string line;
    int64_t line_no = 0;
    while (std::getline(in, line)) {
        ++line_no;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty()) continue;
        const auto row = table_row(line, sep);
        if (!row) {
            skip_warning(r, table + ":" + std::to_string(line_no) + ": expected PATH" +
                                (sep == '\t' ? "<tab>" : ",") + "CAPTION, no separator");
            continue;
        }
        const auto& [path, caption] = *row;
        if (line_no == 1 && (path == "path" || path == "filepath")) continue;
        std::filesystem::path p(path);
        if (p.is_relative()) p = base / p;
        std::string bytes;
        try {
            bytes = read_maybe_gzipped(p.string());
        } catch (const Error& e) {
            skip_warning(r, table + ":" + std::to_string(line_no) + ": " + e.what());
            continue;
        }
        std::string ext = p.extension().string();
        ext = ext.empty() ? "jpg" : ext.substr(1);
        for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (ext == "jpeg") ext = "jpg";
        if (ext != "jpg" && ext != "png") {  // the loader reads JPEG and PNG: others (BMP, GIF, ...) as PNG
            try {
                bytes = encode_png(decode_image(bytes));
                ext = "png";
            } catch (const Error& e) {
                skip_warning(r, table + ":" + std::to_string(line_no) + ": " + e.what());
                continue;
            }
        }
        out.write({key_of(r.written), {{ext, bytes}, {"txt", caption}}});
        ++r.written;
    }
    out.close();
    return r;
}

namespace {

// idx format: big-endian magic, dims, then uint8 data.
std::vector<uint8_t> read_idx(const std::string& path, std::vector<int64_t>& dims) {
    std::string raw = read_maybe_gzipped(path);
    AC_CHECK(raw.size() >= 4 && raw[0] == 0 && raw[1] == 0 && raw[2] == 0x08, path,
             ": not an idx file of bytes");
    const size_t nd = static_cast<uint8_t>(raw[3]), header = 4 + 4 * nd;
    AC_CHECK(raw.size() >= header, path, ": truncated idx header");
    uint64_t count = 1;  // stays within the file's size, or the file is refused before it can overflow
    dims.clear();
    for (size_t d = 0; d < nd; ++d) {
        uint64_t v = 0;
        for (size_t b = 0; b < 4; ++b) v = (v << 8) | static_cast<uint8_t>(raw[4 + 4 * d + b]);
        AC_CHECK(v == 0 || count <= (raw.size() - header) / v, path, ": its dimensions (", dims.size() + 1,
                 " read) hold more bytes than the file's ", raw.size());
        dims.push_back(static_cast<int64_t>(v));
        count *= v;
    }
    AC_CHECK(raw.size() == header + count, path, ": ", raw.size(), " bytes, expected ", header + count);
    return std::vector<uint8_t>(raw.begin() + 4 + 4 * nd, raw.end());
}

}  // namespace

ConvertReport convert_fashion_mnist(const std::string& idx_dir, const std::string& out_dir,
                                    int64_t shard_size) {
    const std::vector<std::string> names = {"t-shirt", "trouser", "pullover", "dress", "coat",
                                            "sandal",  "shirt",   "sneaker",  "bag",   "ankle boot"};
    ConvertReport r;
    for (const char* split : {"train", "t10k"}) {
        std::vector<int64_t> idims, ldims;
        std::vector<uint8_t> images = read_idx(idx_dir + "/" + split + "-images-idx3-ubyte.gz", idims);
        std::vector<uint8_t> labels = read_idx(idx_dir + "/" + split + "-labels-idx1-ubyte.gz", ldims);
        AC_CHECK(idims.size() == 3 && ldims.size() == 1 && idims[0] == ldims[0], idx_dir, ": ", split,
                 " images and labels disagree");
        const int64_t H = idims[1], W = idims[2];
        ShardSetWriter out(out_dir + (std::string(split) == "train" ? "/train" : "/test"), shard_size, split);
        for (int64_t i = 0; i < idims[0]; ++i) {
            Image img{W, H, std::vector<uint8_t>(static_cast<size_t>(W * H * 3))};
            for (int64_t p = 0; p < W * H; ++p)
                img.rgb[p * 3] = img.rgb[p * 3 + 1] = img.rgb[p * 3 + 2] = images[i * W * H + p];
            const uint8_t label = labels[static_cast<size_t>(i)];
            AC_CHECK(label < names.size(), idx_dir, ": label ", int(label), " of image ", i,
                     " is not a class");
            out.write({key_of(i),
                       {{"png", encode_png(img)},
                        {"txt", "a photo of a " + names[label] + "."},
                        {"cls", std::to_string(label)}}});
            ++r.written;
        }
        out.close();
    }
    write_file_atomic(out_dir + "/test/classes.json",
                      "{\"fashion_mnist\": " + json_string_list(names) + "}\n");
    write_file_atomic(out_dir + "/test/templates.json",
                      "{\"fashion_mnist\": [\"a photo of a {}.\", \"a photo of the {}.\", \"a product photo "
                      "of a {}.\"]}\n");
    return r;
}

ConvertReport convert_yfcc(const std::string& root, const std::string& metadata_tsv,
                           const std::string& out_dir, int64_t shard_size) {
    std::ifstream in = open_for_reading(
        metadata_tsv, "export yfcc15m.pkl as JSON lines [index, title, description] (see the README)");
    ShardSetWriter out(out_dir, shard_size, "yfcc");
    ConvertReport r;
    zip_t* archive = nullptr;
    std::string open_zip;
    std::string line;
    int64_t line_no = 0;
    while (std::getline(in, line)) {
        ++line_no;
        const std::string where = metadata_tsv + ":" + std::to_string(line_no);
        std::string index, title, description;
        if (!line.empty() && line[0] == '[') {  // JSON: [index, "title", "description"]
            try {
                const JsonValue v = json_parse(line, where);
                AC_CHECK(v.kind == JsonValue::Kind::Array && v.array.size() == 3 &&
                             v.array[0].kind == JsonValue::Kind::Int &&
                             v.array[1].kind == JsonValue::Kind::String &&
                             v.array[2].kind == JsonValue::Kind::String,
                         where, ": expected [index, \"title\", \"description\"]");
                index = std::to_string(v.array[0].integer);
                title = v.array[1].string;
                description = v.array[2].string;
            } catch (const Error& e) {
                skip_warning(r, e.what());
                continue;
            }
        } else {
            std::stringstream fields(line);
            std::getline(fields, index, '\t');
            std::getline(fields, title, '\t');
            std::getline(fields, description, '\t');
        }
        const std::optional<int64_t> number =
            index.find_first_not_of("0123456789") == std::string::npos ? parse_int64(index) : std::nullopt;
        if (!number) {
            if (line_no > 1 || !line.empty()) skip_warning(r, where + ": no index");
            continue;
        }
        const std::string key = key_of(*number);  // XXYYYZZZ
        const std::string zip_path = root + "/images/" + key.substr(0, 2) + "/" + key.substr(2, 3) + ".zip";
        if (zip_path != open_zip) {
            if (archive) zip_close(archive);
            int err = 0;
            archive = zip_open(zip_path.c_str(), ZIP_RDONLY, &err);
            open_zip = zip_path;
        }
        std::string bytes;
        if (archive) {
            const std::string member = key.substr(5, 3) + ".jpg";
            zip_stat_t st;
            zip_file_t* f = zip_stat(archive, member.c_str(), 0, &st) == 0
                                ? zip_fopen(archive, member.c_str(), 0)
                                : nullptr;
            if (f) {
                bytes.resize(st.size);
                zip_int64_t got = zip_fread(f, bytes.data(), st.size);
                zip_fclose(f);
                if (got != static_cast<zip_int64_t>(st.size)) bytes.clear();
            }
        }
        if (bytes.empty()) {
            skip_warning(r, "photo " + key + ": not found or unreadable in " + zip_path);
            continue;
        }
        out.write({key,
                   {{"jpg", bytes},
                    {"json", "{\"title\": " + json_quote(title) +
                                 ", \"description\": " + json_quote(description) + "}"}}});
        ++r.written;
    }
    if (archive) zip_close(archive);
    out.close();
    return r;
}

}  // namespace aclip
