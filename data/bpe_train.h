// bpe_train.h: learning BPE merges from a caption corpus, in CLIP's format, so datasets without CLIP's
// merges file (the embedded default) get a tokenizer: the words of the cleaned, pre-tokenized captions
// start as byte symbols ("</w>" on the last), and the most frequent adjacent pair is merged, again and
// again. Ties go to the lexicographically smallest pair, so the result depends only on the corpus.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace aclip {

// Up to num_merges merges, stopping early when no pair occurs min_count times.
std::vector<std::pair<std::string, std::string>> learn_bpe(const std::vector<std::string>& captions,
                                                           int64_t num_merges, int64_t min_count = 2);

// Writes merges in CLIP's format (a "#version: 0.2" header, then "left right" lines), gzip-compressed
// when the path ends in .gz, atomically.
void write_merges(const std::string& path, const std::vector<std::pair<std::string, std::string>>& merges);

}  // namespace aclip
