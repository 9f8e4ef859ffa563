// bench_data.cpp: samples per second per core of A-CLIP's input pipeline: JPEG decode + the three crops +
// colour augmentation + normalisation at 224 px, on one thread, over a shard of 500x375 JPEGs.
// tools/bench/bench_data_torch.py does the same with PIL + torchvision on the same shard, and
// tools/bench/compare_data.sh prints both with the ratio.
// Usage: aclip_bench_data --shard PATH [--make N]   (--make writes the shard first: N rendered scenes)
#include <chrono>
#include <cstdio>

#include "data/augment.h"
#include "data/shards.h"
#include "data/synthetic.h"
#include "engine/core/error.h"
#include "train/cli.h"

using namespace aclip;

int main(int argc, char** argv) {
    std::string shard;
    int64_t make = 0, repeats = 3;
    CommandLine cli("aclip_bench_data",
                    "Times decode + three crops + augmentation per sample on one thread.");
    cli.option("shard", &shard, "the shard of JPEGs to read");
    cli.option("make", &make, "first write the shard: this many 500x375 JPEGs of rendered scenes");
    cli.option("repeats", &repeats, "passes over the shard (the best one is reported)");
    cli.parse(argc, argv);
    try {
        AC_CHECK(!shard.empty(), "--shard is required");
        reuse_large_buffers();  // as the loader does
        if (make > 0) {
            ShardWriter w(shard);
            for (int64_t i = 0; i < make; ++i) {
                Scene sc = render_scene(42, static_cast<uint64_t>(i), 500);
                Image img{500, 375,
                          std::vector<uint8_t>(sc.image.rgb.begin(), sc.image.rgb.begin() + 500 * 375 * 3)};
                char key[32];
                std::snprintf(key, sizeof key, "%06lld", static_cast<long long>(i));
                w.write({key, {{"jpg", encode_jpeg(img, 90)}, {"txt", sc.captions[0]}}});
            }
            w.close();
        }
        std::vector<std::string> images;
        ShardReader reader(shard);
        Sample s;
        while (reader.next(s)) images.push_back(s.files.at("jpg"));
        AC_CHECK(!images.empty(), shard, ": no samples");
        TransformConfig cfg;
        double best = 1e30;
        for (int64_t r = 0; r < repeats; ++r) {
            auto t0 = std::chrono::steady_clock::now();
            for (size_t i = 0; i < images.size(); ++i) {
                SampleRng rng(static_cast<uint64_t>(r), i);
                AclipViews v = aclip_train_transform(images[i], cfg, rng);
                if (v.view1.empty()) return 1;
            }
            best =
                std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        }
        std::printf("aclip %.1f samples/s/core (%zu samples of %s)\n",
                    static_cast<double>(images.size()) / best, images.size(), shard.c_str());
    } catch (const Error& e) {
        std::fprintf(stderr, "aclip_bench_data: %s\n", e.what());
        return 1;
    }
    return 0;
}
