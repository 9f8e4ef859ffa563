// shards.cpp: see shards.h.
#include "data/shards.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "engine/core/error.h"
#include "engine/core/parse.h"
#include "engine/io/files.h"
#include "engine/io/json_lite.h"

namespace aclip {

namespace {

// A folder given for shards: its .tar files in name order (aclip_convert's and webdataset's layout).
std::vector<std::string> tars_in(const std::string& dir) {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(dir))
        if (e.is_regular_file() && e.path().extension() == ".tar") out.push_back(e.path().string());
    std::sort(out.begin(), out.end());
    AC_CHECK_HINT(!out.empty(), "give a folder of .tar shards, or a list such as DIR/{00000..00009}.tar",
                  "shard folder '", dir, "' holds no .tar file");
    return out;
}

std::vector<std::string> expand_one(const std::string& p) {
    size_t open = p.find('{');
    if (open == std::string::npos) return std::filesystem::is_directory(p) ? tars_in(p) : std::vector{p};
    size_t close = p.find('}', open);
    AC_CHECK(close != std::string::npos, "shard list '", p, "': '{' without '}'");
    std::string body = p.substr(open + 1, close - open - 1), head = p.substr(0, open),
                tail = p.substr(close + 1);
    std::vector<std::string> choices;
    size_t dots = body.find("..");
    if (dots != std::string::npos) {
        std::string a = body.substr(0, dots), b = body.substr(dots + 2);
        AC_CHECK(!a.empty() && !b.empty() && a.find_first_not_of("0123456789") == std::string::npos &&
                     b.find_first_not_of("0123456789") == std::string::npos,
                 "shard list '", p, "': range {", body, "} must be {FIRST..LAST} with digits");
        const std::optional<int64_t> lo = parse_int64(a), hi = parse_int64(b);
        AC_CHECK(lo && hi && *lo <= *hi && *hi - *lo < 10000000, "shard list '", p, "': bad range {", body,
                 "}");
        for (int64_t v = *lo; v <= *hi; ++v) {
            std::string s = std::to_string(v);
            if (s.size() < a.size()) s = std::string(a.size() - s.size(), '0') + s;
            choices.push_back(s);
        }
    } else {
        std::stringstream ss(body);
        std::string item;
        while (std::getline(ss, item, ',')) choices.push_back(item);
    }
    std::vector<std::string> out;
    for (const std::string& c : choices)
        for (const std::string& rest : expand_one(tail)) out.push_back(head + c + rest);
    return out;
}

// "dir/000123.jpg" -> key "dir/000123", extension "jpg"; false when the basename has no dot.
bool split_key(const std::string& name, std::string& key, std::string& ext) {
    size_t slash = name.rfind('/');
    size_t dot = name.find('.', slash == std::string::npos ? 0 : slash + 1);
    if (dot == std::string::npos || dot + 1 == name.size()) return false;
    key = name.substr(0, dot);
    ext = name.substr(dot + 1);
    return true;
}

}  // namespace

std::vector<std::string> expand_shard_list(const std::string& pattern) {
    std::vector<std::string> out;
    size_t at = 0;
    while (at <= pattern.size()) {
        size_t sep = pattern.find("::", at);
        std::string part = pattern.substr(at, sep == std::string::npos ? std::string::npos : sep - at);
        if (!part.empty())
            for (const std::string& p : expand_one(part)) out.push_back(p);
        if (sep == std::string::npos) break;
        at = sep + 2;
    }
    AC_CHECK(!out.empty(), "shard list '", pattern, "' names no shard");
    return out;
}

std::string* image_of(Sample& s) {
    for (const char* ext : {"jpg", "jpeg", "png"}) {
        auto it = s.files.find(ext);
        if (it != s.files.end()) return &it->second;
    }
    return nullptr;
}

const std::string* image_of(const Sample& s) {
    return image_of(const_cast<Sample&>(s));
}

bool ShardReader::next(Sample& out) {
    while (!done_) {
        TarMember m;
        if (!tar_.next(m)) {
            done_ = true;
            // A member that broke under a new key proves the pending sample complete; otherwise the
            // pending sample may be missing files, and is dropped.
            std::string key, ext;
            bool pending_complete =
                tar_.error().empty() || (split_key(tar_.failed_member(), key, ext) && key != pending_.key);
            if (!pending_valid_ || !pending_complete) return false;
            pending_valid_ = false;
            out = std::move(pending_);
            return true;
        }
        std::string key, ext;
        if (!split_key(m.name, key, ext)) continue;  // webdataset ignores names without an extension
        if (pending_valid_ && key != pending_.key) {
            out = std::move(pending_);
            pending_ = Sample{key, {{ext, std::move(m.data)}}};
            return true;
        }
        if (!pending_valid_) pending_ = Sample{key, {}};
        pending_valid_ = true;
        pending_.files[ext] = std::move(m.data);
    }
    return false;
}

void ShardWriter::write(const Sample& s) {
    const size_t slash = s.key.rfind('/');
    const std::string base = slash == std::string::npos ? s.key : s.key.substr(slash + 1);
    AC_CHECK(!base.empty() && base.find('.') == std::string::npos, "ShardWriter: key '", s.key,
             "' needs a basename without dots (the first dot starts the extension)");
    for (const auto& [ext, bytes] : s.files) tar_.add(s.key + "." + ext, bytes);
    ++count_;
}

ShardSetWriter::ShardSetWriter(std::string dir, int64_t shard_size, std::string label)
    : dir_(std::move(dir)), label_(std::move(label)), shard_size_(shard_size) {
    AC_CHECK(shard_size > 0, "ShardSetWriter: shard size must be positive, got ", shard_size);
    create_directories(dir_);
}

void ShardSetWriter::finish_shard() {
    if (!current_) return;
    current_->close();
    char name[32];
    std::snprintf(name, sizeof name, "%05zu.tar", sizes_.size());
    sizes_.emplace_back(name, current_->count());
    current_.reset();
    std::fprintf(stderr, "%s: shard %s done, %lld samples so far\n", label_.c_str(), name,
                 static_cast<long long>(total_));
}

void ShardSetWriter::write(const Sample& s) {
    if (!current_) {
        char name[32];
        std::snprintf(name, sizeof name, "/%05zu.tar", sizes_.size());
        current_ = std::make_unique<ShardWriter>(dir_ + name);
    }
    current_->write(s);
    ++total_;
    if (current_->count() == shard_size_) finish_shard();
}

void ShardSetWriter::close() {
    finish_shard();
    std::string text = "{";
    for (const auto& [name, n] : sizes_)
        text += (text.size() > 1 ? ", " : "") + json_quote(name) + ": " + std::to_string(n);
    write_file_atomic(dir_ + "/sizes.json", text + "}\n");
}

namespace {

// The samples img2dataset wrote to a shard, from the "successes" of its NAME_stats.json; nothing when there
// is no such file or it does not say (a malformed one is named in a warning).
std::optional<int64_t> img2dataset_count(const std::string& stats_path) {
    std::ifstream in(stats_path);
    if (!in) return std::nullopt;
    std::stringstream ss;
    ss << in.rdbuf();
    try {
        const JsonValue v = json_parse(ss.str(), stats_path);
        const JsonValue* n = v.find("successes");
        if (n && n->kind == JsonValue::Kind::Int && n->integer >= 0) return n->integer;
        std::fprintf(stderr, "warning: %s has no count of \"successes\"; counting the shard\n",
                     stats_path.c_str());
    } catch (const Error& e) {
        std::fprintf(stderr, "warning: %s; counting the shard\n", e.what());
    }
    return std::nullopt;
}

}  // namespace

std::vector<int64_t> shard_sizes(const std::vector<std::string>& shards) {
    std::map<std::string, std::map<std::string, int64_t>> by_dir;  // dir -> basename -> count
    auto load_dir = [&](const std::string& dir) -> std::map<std::string, int64_t>& {
        auto it = by_dir.find(dir);
        if (it != by_dir.end()) return it->second;
        auto& sizes = by_dir[dir];
        std::ifstream in(dir + "/sizes.json");
        if (in) {
            std::stringstream ss;
            ss << in.rdbuf();
            JsonValue v = json_parse(ss.str(), dir + "/sizes.json");
            AC_CHECK(v.kind == JsonValue::Kind::Object, dir,
                     "/sizes.json: expected an object of shard name -> count");
            for (const auto& [name, n] : v.object) {
                AC_CHECK(n.kind == JsonValue::Kind::Int && n.integer >= 0, dir, "/sizes.json: count of '",
                         name, "' is not a non-negative integer");
                sizes[name] = n.integer;
            }
        }
        return sizes;
    };
    std::vector<int64_t> out;
    std::map<std::string, bool> changed;
    for (const std::string& shard : shards) {
        std::filesystem::path p(shard);
        std::string dir = p.has_parent_path() ? p.parent_path().string() : ".";
        auto& sizes = load_dir(dir);
        const std::string base = p.filename().string();
        if (!sizes.count(base))
            if (const std::optional<int64_t> n =
                    img2dataset_count(dir + "/" + p.stem().string() + "_stats.json")) {
                sizes[base] = *n;
                changed[dir] = true;
            }
        if (!sizes.count(base)) {
            ShardReader reader(shard);
            Sample s;
            int64_t n = 0;
            while (reader.next(s)) ++n;
            if (!reader.error().empty())
                std::fprintf(stderr, "warning: shard %s: %s; counted the %lld complete samples before it\n",
                             shard.c_str(), reader.error().c_str(), static_cast<long long>(n));
            sizes[base] = n;
            changed[dir] = true;
        }
        out.push_back(sizes[base]);
    }
    for (const auto& [dir, yes] : changed) {
        std::string text = "{";
        for (const auto& [name, n] : by_dir[dir])
            text += (text.size() > 1 ? ", " : "") + json_quote(name) + ": " + std::to_string(n);
        try {  // a read-only dataset folder is fine: the counts are only remembered for the next run
            write_file_atomic(dir + "/sizes.json", text + "}\n");
        } catch (const Error& e) {
            std::fprintf(stderr,
                         "warning: the shard sizes could not be saved in %s/sizes.json (%s); "
                         "the next run counts them again\n",
                         dir.c_str(), e.what());
        }
    }
    return out;
}

}  // namespace aclip
