// bpe_train.cpp: see bpe_train.h. Plain counting over distinct words, weighted by their frequency:
// O(merges x symbols), which is quick for the caption corpora it is meant for.
#include "data/bpe_train.h"

#include <zlib.h>

#include <map>
#include <unordered_map>

#include "data/text_clean.h"
#include "data/tokenizer.h"
#include "engine/core/error.h"
#include "engine/io/files.h"

namespace aclip {

std::vector<std::pair<std::string, std::string>> learn_bpe(const std::vector<std::string>& captions,
                                                           int64_t num_merges, int64_t min_count) {
    std::string symbol_of[256];
    for (const auto& [byte, sym] : clip_byte_symbols()) symbol_of[byte] = sym;
    std::unordered_map<std::string, int64_t> word_count;
    for (const std::string& c : captions)
        for (const std::string& w : clip_pretokenize(clip_clean(c)))
            if (w != "<|startoftext|>" && w != "<|endoftext|>") ++word_count[w];
    struct Word {
        std::vector<std::string> symbols;
        int64_t count;
    };
    std::vector<Word> words;
    for (const auto& [w, n] : word_count) {
        Word word{{}, n};
        for (unsigned char b : w) word.symbols.push_back(symbol_of[b]);
        word.symbols.back() += "</w>";
        words.push_back(std::move(word));
    }
    std::vector<std::pair<std::string, std::string>> merges;
    while (static_cast<int64_t>(merges.size()) < num_merges) {
        std::map<std::pair<std::string, std::string>, int64_t>
            pairs;  // ordered: ties break lexicographically
        for (const Word& w : words)
            for (size_t i = 0; i + 1 < w.symbols.size(); ++i)
                pairs[{w.symbols[i], w.symbols[i + 1]}] += w.count;
        const std::pair<std::string, std::string>* best = nullptr;
        int64_t best_count = 0;
        for (const auto& [pair, n] : pairs)
            if (n > best_count) {
                best = &pair;
                best_count = n;
            }
        if (!best || best_count < min_count) break;
        const auto [left, right] = *best;
        for (Word& w : words) {
            std::vector<std::string> merged;
            for (size_t i = 0; i < w.symbols.size();) {
                if (i + 1 < w.symbols.size() && w.symbols[i] == left && w.symbols[i + 1] == right) {
                    merged.push_back(left + right);
                    i += 2;
                } else {
                    merged.push_back(w.symbols[i++]);
                }
            }
            w.symbols.swap(merged);
        }
        merges.emplace_back(left, right);
    }
    return merges;
}

namespace {

std::string gzip_bytes(const std::string& data) {
    z_stream z{};
    AC_CHECK(deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK,
             "gzip: deflateInit2 failed");
    std::string out(deflateBound(&z, data.size()) + 64, '\0');
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    z.avail_in = static_cast<uInt>(data.size());
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    int rc = deflate(&z, Z_FINISH);
    out.resize(z.total_out);
    deflateEnd(&z);
    AC_CHECK(rc == Z_STREAM_END, "gzip: deflate failed (", rc, ")");
    return out;
}

}  // namespace

void write_merges(const std::string& path, const std::vector<std::pair<std::string, std::string>>& merges) {
    std::string text = "#version: 0.2\n";
    for (const auto& [l, r] : merges) text += l + " " + r + "\n";
    bool gz = path.size() > 3 && path.compare(path.size() - 3, 3, ".gz") == 0;
    write_file_atomic(path, gz ? gzip_bytes(text) : text);
}

}  // namespace aclip
