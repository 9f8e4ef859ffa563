// tokenizer.h: CLIP's byte-level BPE tokenizer (data-and-eval.md section 3), exact.
// Text is cleaned and cut into words (text_clean.h); each word's UTF-8 bytes become printable symbols
// (bytes_to_unicode), "</w>" marks its last symbol, and adjacent symbols merge by rank until no ranked
// pair is left. Ids: 256 byte symbols, the same with "</w>", one per merge, then <|startoftext|> and
// <|endoftext|> (49406 and 49407 with the standard 48,894 merges). Results are cached per word.
#pragma once
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace aclip {

enum class Truncate { Eot, Slip };  // 77-token forms: EOT forced at the end (OpenAI), or cut (SLIP, A-CLIP)
Truncate truncate_from_name(const std::string& name);  // "eot" or "slip"

class ClipTokenizer {
  public:
    // merges_path: a merges file as CLIP ships it (.txt.gz or plain text): a header line, then one
    // "left right" merge per line. max_merges: how many to use (CLIP uses the first 48,894).
    explicit ClipTokenizer(const std::string& merges_path, int64_t max_merges = 48894);

    std::vector<int32_t> encode(const std::string& text) const;  // BPE ids of the text, no SOT/EOT
    // [SOT] + encode(text) + [EOT], cut to context (by mode) and zero-padded to context.
    std::vector<int32_t> tokenize(const std::string& text, int64_t context, Truncate mode) const;

    int32_t sot() const { return sot_; }
    int32_t eot() const { return sot_ + 1; }
    int64_t vocab_size() const { return sot_ + 2; }

  private:
    std::vector<int32_t> bpe_word(const std::string& word) const;

    std::unordered_map<std::string, int32_t> encoder_;  // symbol -> id
    std::unordered_map<std::string, int32_t> ranks_;    // "left right" -> merge rank
    std::string byte_symbol_[256];                      // UTF-8 of bytes_to_unicode
    int32_t sot_ = 0;
    mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
    mutable std::mutex cache_mutex_;
};

// The symbol (as UTF-8) that CLIP's bytes_to_unicode assigns to each byte, in vocabulary order:
// entry i of the result is the symbol with id i.
std::vector<std::pair<uint8_t, std::string>> clip_byte_symbols();

// Reads a whole file, gunzipping it when it is gzip-compressed. Errors name the path.
std::string read_maybe_gzipped(const std::string& path);

}  // namespace aclip
