// aclip_tokenize: CLIP-tokenizes text from stdin, one JSON string per line, and prints the ids of each
// on one line, space-separated: [SOT] + BPE + [EOT] untruncated, or padded to --context N.
//   echo '"a photo of a cat."' | aclip_tokenize --merges bpe_simple_vocab_16e6.txt.gz
#include <cstdio>
#include <iostream>

#include "data/tokenizer.h"
#include "engine/core/error.h"
#include "engine/io/json_lite.h"
#include "train/cli.h"

using namespace aclip;

int main(int argc, char** argv) {
    std::string merges, truncate = "eot";
    int64_t context = 0, max_merges = 48894;
    CommandLine cli("aclip_tokenize",
                    "Reads one JSON string per line on stdin; prints its CLIP token ids per line.");
    cli.option("merges", &merges,
               "the BPE merges file (.txt.gz or .txt), e.g. CLIP's bpe_simple_vocab_16e6.txt.gz");
    cli.option("max-merges", &max_merges, "how many merges of the file to use", 1);
    cli.option("context", &context, "pad or cut to this many ids (0: untruncated, unpadded)", 0);
    cli.option("truncate", &truncate,
               "when cutting: eot (end token kept) or slip (plain cut, as SLIP/A-CLIP)");
    cli.parse(argc, argv);
    return run_program("aclip_tokenize", [&] {
        if (merges.empty()) AC_FAIL("--merges is required");
        ClipTokenizer tok(merges, max_merges);
        Truncate mode = truncate_from_name(truncate);
        std::string line;
        int64_t line_no = 0;
        while (std::getline(std::cin, line)) {
            ++line_no;
            JsonValue v = json_parse(line, "stdin line " + std::to_string(line_no));
            AC_CHECK(v.kind == JsonValue::Kind::String, "stdin line ", line_no, ": expected a JSON string");
            std::vector<int32_t> ids;
            if (context > 0) {
                ids = tok.tokenize(v.string, context, mode);
            } else {
                ids = {tok.sot()};
                for (int32_t id : tok.encode(v.string)) ids.push_back(id);
                ids.push_back(tok.eot());
            }
            for (size_t i = 0; i < ids.size(); ++i) std::printf(i ? " %d" : "%d", ids[i]);
            std::printf("\n");
        }
        return 0;
    });
}
