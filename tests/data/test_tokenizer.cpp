// test_tokenizer.cpp: the CLIP tokenizer reproduces every line of ../shared/clip/tokenizer_golden.jsonl,
// in the untruncated form and in both 77-token forms; cleaning and pre-tokenizing on their own.
#include <filesystem>
#include <fstream>

#include "data/bpe_train.h"
#include "data/text_clean.h"
#include "data/tokenizer.h"
#include "engine/io/json_lite.h"
#include "test_util.h"

using namespace aclip;

namespace {

const std::string kShared = ACLIP_SHARED_DIR;

bool shared_present() {
    if (std::filesystem::exists(kShared + "/clip/bpe_simple_vocab_16e6.txt.gz")) return true;
    MESSAGE("SKIPPED: " << kShared << "/clip is absent; the golden tokenizer tests need it");
    return false;
}

const ClipTokenizer& clip_tokenizer() {
    static const ClipTokenizer t(kShared + "/clip/bpe_simple_vocab_16e6.txt.gz");
    return t;
}

}  // namespace

TEST_SUITE("data") {
    TEST_CASE("cleaning: entities twice, whitespace, full lowercase") {
        CHECK(clip_clean("  A &amp;amp; B\t\n C  ") == "a & b c");
        CHECK(html_unescape("&lt;b&gt; &#65;&#x42; &unknown; & &amp") == "<b> AB &unknown; & &amp");
        CHECK(clip_clean("İSTANBUL") == "i\xcc\x87stanbul");  // i + U+0307, as Python's str.lower
        CHECK(clip_clean("ΟΔΟΣ ΣΑΣ") == "οδος σας");          // final sigma
        CHECK(clip_clean("Straße ÄÖÜ") == "straße äöü");
        // Ill-formed UTF-8: one U+FFFD a maximal ill-formed subpart, as b"...".decode("utf-8", "replace")
        const std::string fffd = "\xef\xbf\xbd";
        CHECK(clip_clean("A\xff\xfe"
                         "B") == "a" + fffd + fffd + "b");
        CHECK(clip_clean("CAF\xc3") == "caf" + fffd);
        CHECK(clip_clean("\xe2\x80X") == fffd + "x");
        CHECK(clip_clean("\xed\xa0\x80Z") == fffd + fffd + fffd + "z");  // a surrogate's bytes
        CHECK(clip_clean("\xc0\xaf") == fffd + fffd);                    // an overlong '/'
    }

    TEST_CASE("pre-tokenizer: specials, contractions, letter runs, single digits, symbol runs") {
        CHECK(clip_pretokenize("don't stop 2023!!") ==
              std::vector<std::string>{"don", "'t", "stop", "2", "0", "2", "3", "!!"});
        CHECK(clip_pretokenize("a <|endoftext|> b") == std::vector<std::string>{"a", "<|endoftext|>", "b"});
        CHECK(clip_pretokenize("!<|endoftext|>") == std::vector<std::string>{"!<|", "endoftext", "|>"});
        CHECK(clip_pretokenize("привет, мир") == std::vector<std::string>{"привет", ",", "мир"});
    }

    TEST_CASE("every golden tokenization matches, untruncated and in both 77-token forms") {
        if (!shared_present()) return;
        const ClipTokenizer& tok = clip_tokenizer();
        CHECK(tok.sot() == 49406);
        CHECK(tok.vocab_size() == 49408);
        std::ifstream in(kShared + "/clip/tokenizer_golden.jsonl");
        std::string line;
        int64_t n = 0, mismatches = 0;
        while (std::getline(in, line)) {
            ++n;
            JsonValue v = json_parse(line, "tokenizer_golden.jsonl line " + std::to_string(n));
            const std::string& text = v.find("text")->string;
            std::vector<int32_t> expected;
            for (const JsonValue& id : v.find("ids")->array)
                expected.push_back(static_cast<int32_t>(id.integer));
            std::vector<int32_t> ids = {tok.sot()};
            for (int32_t id : tok.encode(text)) ids.push_back(id);
            ids.push_back(tok.eot());
            if (ids != expected) {
                if (++mismatches <= 5) {
                    CAPTURE(text);
                    CHECK(ids == expected);
                }
                continue;
            }
            std::vector<int32_t> slip(expected.begin(),
                                      expected.begin() + std::min<size_t>(77, expected.size()));
            std::vector<int32_t> eot = slip;
            if (expected.size() > 77) eot.back() = 49407;
            slip.resize(77, 0);
            eot.resize(77, 0);
            CHECK(tok.tokenize(text, 77, Truncate::Slip) == slip);
            CHECK(tok.tokenize(text, 77, Truncate::Eot) == eot);
        }
        CHECK(n == 7745);
        CHECK(mismatches == 0);
    }

    TEST_CASE("bad merges files are clear errors") {
        std::string path = std::filesystem::temp_directory_path().string() + "/aclip_bad_merges.txt";
        std::ofstream(path) << "#version: 0.2\na b\nc\n";
        CHECK(test::error_of([&] { ClipTokenizer t(path); }).find(":3: a merge must be two symbols") !=
              std::string::npos);
        CHECK(test::error_of([] { ClipTokenizer t("/nonexistent/merges.txt.gz"); }).find("cannot open") !=
              std::string::npos);
        const std::string dir = std::filesystem::temp_directory_path().string();
        CHECK(test::error_of([&] {
                  ClipTokenizer t(dir);
              }).find("'" + dir + "' is a directory, not a file") != std::string::npos);
        CHECK(test::error_of([] { truncate_from_name("left"); }).find("accepted: eot, slip") !=
              std::string::npos);
    }
}

TEST_SUITE("data") {
    TEST_CASE("learned merges: deterministic, readable by the tokenizer, frequent words become one token") {
        std::vector<std::string> captions;
        for (int i = 0; i < 50; ++i) {
            captions.push_back("a large red circle at the top left");
            captions.push_back("a small blue star and a red square");
        }
        auto merges = learn_bpe(captions, 200);
        CHECK(merges == learn_bpe(captions, 200));
        CHECK(merges.size() < 200);  // stops when no pair occurs twice
        std::string path = std::filesystem::temp_directory_path().string() + "/aclip_test_merges.txt.gz";
        write_merges(path, merges);
        ClipTokenizer tok(path, 1000000);
        CHECK(tok.vocab_size() == 512 + static_cast<int64_t>(merges.size()) + 2);
        for (const char* word : {"circle", "square", "red", "a"}) {
            CAPTURE(word);
            CHECK(tok.encode(word).size() == 1);
        }
        CHECK(tok.encode("A large RED circle").size() == 4);
        CHECK(tok.encode("zebra").size() > 1);  // unseen: falls back to smaller pieces
        for (int32_t id : tok.encode("a large red circle, 42 zebras!")) CHECK((id >= 0 && id < tok.sot()));
    }
}
