// aclip_bpe_train: learns BPE merges from captions (one per line, plain text, or JSON strings with
// --json) and writes them in CLIP's format, for datasets without CLIP's merges file.
//   aclip_bpe_train --merges 2000 --out synthetic_bpe.txt.gz < captions.txt
#include <cstdio>
#include <iostream>

#include "data/bpe_train.h"
#include "data/tokenizer.h"
#include "engine/core/error.h"
#include "engine/io/files.h"
#include "engine/io/json_lite.h"
#include "train/cli.h"

using namespace aclip;

int main(int argc, char** argv) {
    std::string out;
    int64_t num_merges = 4000, min_count = 2;
    bool json = false;
    CommandLine cli("aclip_bpe_train",
                    "Learns BPE merges from captions on stdin and writes a CLIP-format merges file.");
    cli.option("out", &out, "the merges file to write (.txt.gz is gzip-compressed)");
    cli.option("merges", &num_merges, "how many merges to learn at most", 1);
    cli.option("min-count", &min_count, "stop when the most frequent pair occurs fewer times", 1);
    cli.flag("json", &json, "read one JSON string per line instead of plain lines");
    cli.parse(argc, argv);
    return run_program("aclip_bpe_train", [&] {
        if (out.empty()) AC_FAIL("--out is required");
        check_can_write(out);  // before reading and learning, not after
        std::vector<std::string> captions;
        std::string line;
        while (std::getline(std::cin, line)) {
            if (json) {
                JsonValue v = json_parse(line, "stdin line " + std::to_string(captions.size() + 1));
                AC_CHECK(v.kind == JsonValue::Kind::String, "stdin line ", captions.size() + 1,
                         ": not a JSON string");
                captions.push_back(v.string);
            } else {
                captions.push_back(line);
            }
        }
        AC_CHECK_HINT(!captions.empty(), "pipe captions in: aclip_bpe_train --out FILE < captions.txt",
                      "no captions on stdin");
        auto merges = learn_bpe(captions, num_merges, min_count);
        AC_CHECK_HINT(!merges.empty(), "give more captions, or a lower --min-count",
                      "no pair of symbols occurs ", min_count, " times in the ", captions.size(),
                      " captions: nothing to merge (", out, " not written)");
        write_merges(out, merges);
        ClipTokenizer check(out, static_cast<int64_t>(merges.size()));  // the file reads back
        std::fprintf(stderr, "aclip_bpe_train: %zu captions -> %zu merges, vocabulary %lld, written to %s\n",
                     captions.size(), merges.size(), static_cast<long long>(check.vocab_size()), out.c_str());
        return 0;
    });
}
