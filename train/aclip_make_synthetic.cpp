// aclip_make_synthetic: writes the embedded default dataset (data/synthetic.h) as webdataset shards:
//   OUT/train, OUT/val      KEY.jpg, KEY.txt (caption), KEY.json (objects, all phrasings), KEY.mask.png
//   OUT/zeroshot            KEY.jpg, KEY.cls (class index); classes.json and templates.json beside them
//   OUT/retrieval           KEY.jpg, KEY.json ({"captions": [...]})
//   OUT/bpe.txt.gz          BPE merges learned from the training captions
// Deterministic by --seed; each split uses its own stream.
#include <cstdio>

#include "data/bpe_train.h"
#include "data/shards.h"
#include "data/synthetic.h"
#include "engine/core/error.h"
#include "engine/io/files.h"
#include "engine/io/json_lite.h"
#include "train/cli.h"

using namespace aclip;

namespace {

std::string scene_json(const Scene& sc) {
    std::string s = "{\"objects\": [";
    for (size_t i = 0; i < sc.objects.size(); ++i) {
        const SceneObject& o = sc.objects[i];
        s += (i ? ", " : "") + std::string("{\"color\": ") +
             json_quote(kSyntheticColors[static_cast<size_t>(o.color)]) +
             ", \"shape\": " + json_quote(kSyntheticShapes[static_cast<size_t>(o.shape)]) +
             ", \"large\": " + (o.large ? "true" : "false") + ", \"place\": " + std::to_string(o.place) + "}";
    }
    s += "], \"captions\": [";
    for (size_t i = 0; i < sc.captions.size(); ++i) s += (i ? ", " : "") + json_quote(sc.captions[i]);
    return s + "]}";
}

// Writes `count` scenes of one split; returns the captions written.
std::vector<std::string> write_split(const std::string& dir, const std::string& split, int64_t count,
                                     int64_t shard_size, uint64_t seed, int64_t size) {
    ShardSetWriter out(dir, shard_size, split);
    std::vector<std::string> captions;
    for (int64_t i = 0; i < count; ++i) {
        Scene sc = render_scene(seed, static_cast<uint64_t>(i), size, split == "zeroshot");
        char key[32];
        std::snprintf(key, sizeof key, "%08lld", static_cast<long long>(i));
        Sample sample{key, {{"jpg", encode_jpeg(sc.image, 92)}}};
        if (split == "zeroshot") {
            sample.files["cls"] = std::to_string(synthetic_class(sc.objects[0]));
        } else if (split == "retrieval") {
            sample.files["json"] = "{\"captions\": " + json_string_list(sc.captions) + "}";
        } else {
            sample.files["txt"] = sc.captions[0];
            sample.files["json"] = scene_json(sc);
            sample.files["mask.png"] = encode_png(sc.mask);
            captions.insert(captions.end(), sc.captions.begin(), sc.captions.end());
        }
        out.write(sample);
    }
    out.close();
    return captions;
}

}  // namespace

int main(int argc, char** argv) {
    std::string out;
    int64_t train = 20000, val = 1000, zeroshot = 960, retrieval = 500, size = 64, shard_size = 1000,
            seed = 0;
    CommandLine cli("aclip_make_synthetic", "Renders the embedded default dataset as webdataset shards.");
    cli.option("out", &out, "the output folder");
    cli.option("train", &train, "training scenes", 1);
    cli.option("val", &val, "validation scenes", 0);
    cli.option("zeroshot", &zeroshot, "single-object scenes for zero-shot classification (48 classes)", 0);
    cli.option("retrieval", &retrieval, "scenes for retrieval, several captions each", 0);
    cli.option("size", &size, "image side in pixels", 16);
    cli.option("shard-size", &shard_size, "samples per shard", 1);
    cli.option("seed", &seed, "the random seed; each split draws its own stream from it");
    cli.parse(argc, argv);
    return run_program("aclip_make_synthetic", [&] {
        if (out.empty()) AC_FAIL("--out is required");
        auto useed = static_cast<uint64_t>(seed);
        std::vector<std::string> captions =
            write_split(out + "/train", "train", train, shard_size, useed * 4 + 0, size);
        write_split(out + "/val", "val", val, shard_size, useed * 4 + 1, size);
        write_split(out + "/zeroshot", "zeroshot", zeroshot, shard_size, useed * 4 + 2, size);
        write_split(out + "/retrieval", "retrieval", retrieval, shard_size, useed * 4 + 3, size);
        write_file_atomic(out + "/zeroshot/classes.json",
                          "{\"synthetic\": " + json_string_list(synthetic_class_names()) + "}\n");
        write_file_atomic(out + "/zeroshot/templates.json",
                          "{\"synthetic\": " + json_string_list(synthetic_templates()) + "}\n");
        auto merges = learn_bpe(captions, 2000);
        write_merges(out + "/bpe.txt.gz", merges);
        std::fprintf(
            stderr, "wrote %s: %lld train, %lld val, %lld zero-shot, %lld retrieval scenes; %zu BPE merges\n",
            out.c_str(), static_cast<long long>(train), static_cast<long long>(val),
            static_cast<long long>(zeroshot), static_cast<long long>(retrieval), merges.size());
        return 0;
    });
}
