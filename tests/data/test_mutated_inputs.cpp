// test_mutated_inputs.cpp: every reader of outside bytes, fed seeded random damage to a valid input
// (bytes flipped, set, cut out, repeated; the file truncated or grown), either reads it or throws
// aclip::Error. Any other exception fails here, and under ASan + UBSan (tools/test.sh) a read out of
// bounds or an overflow fails too. The readers: JSON, safetensors, tar shards, JPEG and PNG (whole
// images and JPEG planes), INI configs, the tokenizer's text path and its merges file.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <random>

#include "data/image.h"
#include "data/shards.h"
#include "data/text_clean.h"
#include "data/tokenizer.h"
#include "engine/io/json_lite.h"
#include "engine/io/safetensors.h"
#include "test_util.h"
#include "train/config.h"

using namespace aclip;
namespace fs = std::filesystem;

namespace {

std::string temp_file(const std::string& name) {
    std::string dir = fs::temp_directory_path().string() + "/aclip_mutated_" + std::to_string(getpid());
    fs::create_directories(dir);
    return dir + "/" + name;
}

void write_bytes(const std::string& path, const std::string& bytes) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// One to four kinds of damage, each at a random place.
std::string mutate(std::string s, std::mt19937_64& rng) {
    auto below = [&](size_t n) { return n == 0 ? size_t{0} : static_cast<size_t>(rng() % n); };
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
        const size_t at = below(s.size());
        switch (rng() % 7) {
            case 0:  // one bit
                if (!s.empty()) s[at] = static_cast<char>(s[at] ^ (1 << (rng() % 8)));
                break;
            case 1:  // a byte set to a value readers treat specially
                if (!s.empty()) s[at] = "\x00\xff\x7f\x80{}[]\"\\0123456789-"[rng() % 20];
                break;
            case 2:  // a random byte
                if (!s.empty()) s[at] = static_cast<char>(rng());
                break;
            case 3:  // a run cut out
                s.erase(at, below(64) + 1);
                break;
            case 4:  // a run repeated
                s.insert(at, s.substr(at, below(64) + 1));
                break;
            case 5:  // truncated
                s.resize(at);
                break;
            default:  // random bytes appended
                for (size_t i = below(32) + 1; i > 0; --i) s.push_back(static_cast<char>(rng()));
        }
    }
    return s;
}

// Runs read(mutated) for `trials` mutations of `valid`: each must return or throw aclip::Error.
// Returns how many of them were read without an error (so a caller can see the damage was noticed).
int64_t survives_mutations(const std::string& what, const std::string& valid, int trials,
                           const std::function<void(const std::string&)>& read) {
    std::mt19937_64 rng(0x5eed0000 + valid.size());
    int64_t read_fine = 0;
    for (int t = 0; t < trials; ++t) {
        const std::string bytes = mutate(valid, rng);
        try {
            read(bytes);
            ++read_fine;
        } catch (const Error&) {
        } catch (const std::exception& e) {
            FAIL_CHECK(what, " mutation ", t, ": ", typeid(e).name(), ": ", e.what());
        }
    }
    return read_fine;
}

Image gradient_image(int64_t w, int64_t h) {
    Image img{w, h, std::vector<uint8_t>(static_cast<size_t>(w * h * 3))};
    for (int64_t i = 0; i < w * h * 3; ++i)
        img.rgb[static_cast<size_t>(i)] = static_cast<uint8_t>(i * 7 % 251);
    return img;
}

}  // namespace

TEST_SUITE("data") {
    TEST_CASE("damaged JSON, safetensors and configs: read, or an aclip::Error") {
        const std::string json = R"({"a": [1, -2, {"b": "x\u00e9\n"}], "c": null, "d": true})";
        CHECK(survives_mutations("json", json, 3000, [](const std::string& b) { (void)json_parse(b, "t"); }) <
              3000);

        const std::string st = temp_file("valid.safetensors");
        save_safetensors(st, {{"w", ones({3, 5})}, {"b", zeros({7}, DType::BF16)}}, {{"k", "v"}});
        const std::string st_bytes = read_maybe_gzipped(st), damaged = temp_file("damaged.safetensors");
        CHECK(survives_mutations("safetensors", st_bytes, 1500, [&](const std::string& b) {
                  write_bytes(damaged, b);
                  const SafetensorsFile f = load_safetensors(damaged);
                  for (const auto& [name, t] : f.tensors) CHECK(t.numel() >= 0);
              }) < 1500);

        const std::string ini = read_maybe_gzipped(std::string(ACLIP_SOURCE_DIR) + "/configs/quickstart.ini");
        CHECK(survives_mutations("config", ini, 1500, [](const std::string& b) {
                  Config c;
                  c.load_text(b, "damaged.ini");
              }) < 1500);
    }

    TEST_CASE("damaged shards: their whole samples, then a reason; never a read past the end") {
        const std::string shard = temp_file("valid.tar");
        ShardWriter w(shard);
        for (int i = 0; i < 3; ++i)
            w.write({"dir/" + std::string(90, 'k') + std::to_string(i),  // a PAX record for the long name
                     {{"jpg", std::string(700 + 300 * i, static_cast<char>(i))}, {"txt", "caption"}}});
        w.close();
        const std::string bytes = read_maybe_gzipped(shard), damaged = temp_file("damaged.tar");
        int64_t with_error = 0;
        survives_mutations("tar", bytes, 1500, [&](const std::string& b) {
            write_bytes(damaged, b);
            ShardReader r(damaged);
            Sample s;
            int n = 0;
            while (r.next(s)) ++n;
            CHECK(n <= 6);  // a damaged name may split a sample, never more
            with_error += !r.error().empty();
        });
        CHECK(with_error > 0);
    }

    TEST_CASE("damaged JPEG and PNG images: decoded, or an aclip::Error") {
        const Image img = gradient_image(40, 24);
        for (const bool subsample : {true, false}) {
            const std::string jpg = encode_jpeg(img, 80, subsample);
            CHECK(survives_mutations("jpeg", jpg, 1000, [](const std::string& b) {
                      (void)probe_image(b);
                      const Image d = decode_image(b, 2);
                      CHECK(d.rgb.size() == static_cast<size_t>(d.width * d.height * 3));
                      JpegPlanes planes;
                      (void)decode_jpeg_planes(b, kMaxImagePixels, planes);
                  }) < 1000);
        }
        CHECK(survives_mutations("png", encode_png(img), 1000, [](const std::string& b) {
                  const Image d = decode_image(b);
                  CHECK(d.rgb.size() == static_cast<size_t>(d.width * d.height * 3));
              }) < 1000);
    }

    TEST_CASE("arbitrary bytes as captions, and damaged merges files, through the tokenizer") {
        const std::string merges = read_maybe_gzipped(test::fixture_path("openai_tiny_merges.txt"));
        const std::string damaged = temp_file("damaged_merges.txt");
        survives_mutations("merges", merges, 300, [&](const std::string& b) {
            write_bytes(damaged, b);
            ClipTokenizer t(damaged);
            for (int32_t id : t.tokenize("a photo of a dog", 16, Truncate::Slip))
                CHECK((id >= 0 && id < t.vocab_size()));
        });
        write_bytes(damaged, merges);
        const ClipTokenizer tokenizer(damaged);
        const std::string caption =
            "A <b>caf\xc3\xa9</b> &amp; 2 dogs\xe2\x80\x94 \xf0\x9f\x90\xb6 it's 10:30pm!";
        CHECK(survives_mutations("caption", caption, 3000, [&](const std::string& b) {
                  (void)html_unescape(b);
                  for (int32_t id : tokenizer.tokenize(b, 77, Truncate::Eot))
                      CHECK((id >= 0 && id < tokenizer.vocab_size()));
              }) == 3000);  // any bytes are a caption
    }
}
