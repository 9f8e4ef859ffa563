// tokenizer.cpp: see tokenizer.h.
#include "data/tokenizer.h"

#include <zlib.h>

#include <climits>
#include <cstring>
#include <sstream>

#include "data/text_clean.h"
#include "engine/core/error.h"
#include "engine/io/files.h"

namespace aclip {

Truncate truncate_from_name(const std::string& name) {
    if (name == "eot") return Truncate::Eot;
    if (name == "slip") return Truncate::Slip;
    AC_FAIL("unknown truncation '", name, "'; accepted: eot, slip");
}

namespace {

std::string utf8_of(uint32_t cp) {
    std::string s;
    if (cp < 0x80) {
        s += static_cast<char>(cp);
    } else {  // bytes_to_unicode only reaches U+0143
        s += static_cast<char>(0xC0 | (cp >> 6));
        s += static_cast<char>(0x80 | (cp & 0x3F));
    }
    return s;
}

}  // namespace

std::vector<std::pair<uint8_t, std::string>> clip_byte_symbols() {
    std::vector<std::pair<uint8_t, std::string>> out;
    std::vector<bool> printable(256, false);
    for (int b = 0; b < 256; ++b)
        printable[b] = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    for (int b = 0; b < 256; ++b)
        if (printable[b]) out.emplace_back(static_cast<uint8_t>(b), utf8_of(static_cast<uint32_t>(b)));
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b)
        if (!printable[b]) out.emplace_back(static_cast<uint8_t>(b), utf8_of(next++));
    return out;
}

std::string read_maybe_gzipped(const std::string& path) {
    check_not_a_directory(path);
    gzFile f = gzopen(path.c_str(), "rb");  // reads plain files as they are
    AC_CHECK_HINT(f != nullptr, "check the path (in the config or on the command line)", "cannot open '",
                  path, "': ", std::strerror(errno));
    std::string data;
    char buf[1 << 16];
    int n;
    while ((n = gzread(f, buf, sizeof buf)) > 0) data.append(buf, static_cast<size_t>(n));
    int err = 0;
    const char* msg = gzerror(f, &err);
    std::string what = msg ? msg : "";
    gzclose(f);
    AC_CHECK(n == 0 && (err == Z_OK || err == Z_STREAM_END), "reading '", path, "' failed: ", what,
             " (truncated or corrupt gzip?)");
    return data;
}

ClipTokenizer::ClipTokenizer(const std::string& path, int64_t max_merges) {
    auto symbols = clip_byte_symbols();
    int32_t id = 0;
    for (const auto& [byte, sym] : symbols) {
        byte_symbol_[byte] = sym;
        encoder_[sym] = id++;
    }
    for (const auto& [byte, sym] : symbols) encoder_[sym + "</w>"] = id++;
    std::istringstream lines(read_maybe_gzipped(path));
    std::string line;
    std::getline(lines, line);  // the header ("#version: 0.2")
    int64_t line_no = 1;
    while (static_cast<int64_t>(ranks_.size()) < max_merges && std::getline(lines, line)) {
        ++line_no;
        if (line.empty()) continue;
        size_t space = line.find(' ');
        AC_CHECK(space != std::string::npos && space > 0 && space + 1 < line.size() &&
                     line.find(' ', space + 1) == std::string::npos,
                 path, ":", line_no, ": a merge must be two symbols separated by one space, got '", line,
                 "'");
        AC_CHECK(ranks_.emplace(line, static_cast<int32_t>(ranks_.size())).second, path, ":", line_no,
                 ": merge '", line, "' repeated");
        encoder_[line.substr(0, space) + line.substr(space + 1)] = id++;
    }
    AC_CHECK(!ranks_.empty(), path, ": no merges found");
    sot_ = id;
    encoder_["<|startoftext|>"] = sot_;
    encoder_["<|endoftext|>"] = sot_ + 1;
}

std::vector<int32_t> ClipTokenizer::bpe_word(const std::string& word) const {
    if (word == "<|startoftext|>" || word == "<|endoftext|>") return {encoder_.at(word)};
    {
        std::lock_guard<std::mutex> lock(cache_mutex_);
        auto it = cache_.find(word);
        if (it != cache_.end()) return it->second;
    }
    std::vector<std::string> parts;
    for (unsigned char b : word) parts.push_back(byte_symbol_[b]);
    parts.back() += "</w>";
    while (parts.size() > 1) {
        int32_t best = INT32_MAX;
        std::string best_pair;
        for (size_t i = 0; i + 1 < parts.size(); ++i) {
            auto it = ranks_.find(parts[i] + " " + parts[i + 1]);
            if (it != ranks_.end() && it->second < best) {
                best = it->second;
                best_pair = it->first;
            }
        }
        if (best == INT32_MAX) break;
        const std::string left = best_pair.substr(0, best_pair.find(' ')),
                          right = best_pair.substr(best_pair.find(' ') + 1);
        std::vector<std::string> merged;  // every occurrence, left to right, without overlap
        for (size_t i = 0; i < parts.size();) {
            if (i + 1 < parts.size() && parts[i] == left && parts[i + 1] == right) {
                merged.push_back(left + right);
                i += 2;
            } else {
                merged.push_back(parts[i++]);
            }
        }
        parts.swap(merged);
    }
    std::vector<int32_t> ids;
    for (const std::string& p : parts) ids.push_back(encoder_.at(p));
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (cache_.size() > 1000000) cache_.clear();  // bound the cache on endless streams of rare words
    cache_.emplace(word, ids);
    return ids;
}

std::vector<int32_t> ClipTokenizer::encode(const std::string& text) const {
    std::vector<int32_t> ids;
    for (const std::string& word : clip_pretokenize(clip_clean(text))) {
        std::vector<int32_t> w = bpe_word(word);
        ids.insert(ids.end(), w.begin(), w.end());
    }
    return ids;
}

std::vector<int32_t> ClipTokenizer::tokenize(const std::string& text, int64_t context, Truncate mode) const {
    AC_CHECK(context >= 2, "tokenize: context ", context, " leaves no room for the start and end tokens");
    std::vector<int32_t> ids = {sot()};
    std::vector<int32_t> body = encode(text);
    ids.insert(ids.end(), body.begin(), body.end());
    ids.push_back(eot());
    if (static_cast<int64_t>(ids.size()) > context) {
        ids.resize(static_cast<size_t>(context));
        if (mode == Truncate::Eot) ids.back() = eot();
    }
    ids.resize(static_cast<size_t>(context), 0);
    return ids;
}

}  // namespace aclip
