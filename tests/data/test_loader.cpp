// test_loader.cpp: the loader over real shards with real JPEGs, some broken: every good sample once per
// epoch, bad ones skipped and counted, batches independent of the number of workers, exact resume from
// a cursor, disjoint ranks.
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <set>
#include <thread>

#include "data/bpe_train.h"
#include "data/image.h"
#include "data/loader.h"
#include "test_util.h"

using namespace aclip;
namespace fs = std::filesystem;

namespace {

const char* kWords[] = {"red", "blue", "green", "circle", "square", "star"};

struct Dataset {
    std::string dir, pattern, merges;
    int64_t good = 0;
};

// 4 shards of 10 samples: shard 1 has a corrupt image and a sample without caption; shard 3 is cut short.
const Dataset& dataset() {
    static Dataset d = [] {
        Dataset d;
        d.dir = fs::temp_directory_path().string() + "/aclip_loader_" + std::to_string(getpid());
        fs::remove_all(d.dir);
        fs::create_directories(d.dir);
        std::vector<std::string> captions;
        for (int s = 0; s < 4; ++s) {
            ShardWriter w(d.dir + "/" + std::to_string(s) + ".tar");
            for (int i = 0; i < 10; ++i) {
                Image img{64, 48, std::vector<uint8_t>(64 * 48 * 3)};
                for (size_t p = 0; p < img.rgb.size(); ++p)
                    img.rgb[p] = static_cast<uint8_t>((p * (s + 3) + i * 17) % 251);
                std::string caption = std::string("a ") + kWords[(s + i) % 6] + " " + kWords[(s * 3 + i) % 6];
                captions.push_back(caption);
                Sample sample{"s" + std::to_string(s) + "_" + std::to_string(i),
                              {{"jpg", encode_jpeg(img, 85)}, {"txt", caption}}};
                if (s == 1 && i == 4) sample.files["jpg"] = "this is not a jpeg";
                if (s == 1 && i == 7) sample.files.erase("txt");
                w.write(sample);
            }
            w.close();
        }
        std::string last = d.dir + "/3.tar";
        fs::resize_file(last, fs::file_size(last) * 6 / 10);  // about 5 complete samples remain
        ShardReader r(last);
        Sample s;
        int64_t left = 0;
        while (r.next(s)) ++left;
        d.good = 30 - 2 + left;
        d.pattern = d.dir + "/{0..3}.tar";
        d.merges = d.dir + "/merges.txt";
        write_merges(d.merges, learn_bpe(captions, 100));
        return d;
    }();
    return d;
}

LoaderConfig config(int workers, uint64_t seed = 5) {
    LoaderConfig c;
    c.shards = dataset().pattern;
    c.batch_size = 4;
    c.workers = workers;
    c.shuffle_buffer = 6;
    c.seed = seed;
    c.context = 8;
    c.transform.size = 32;
    return c;
}

const ClipTokenizer& tokenizer() {
    static const ClipTokenizer t(dataset().merges, 1000000);
    return t;
}

}  // namespace

TEST_SUITE("data") {
    TEST_CASE("one epoch delivers every good sample once; bad ones are skipped and counted") {
        Loader loader(config(3), tokenizer());
        std::multiset<std::string> keys;
        while (true) {
            Batch b = loader.next();
            if (b.epoch != 0) break;
            CHECK(b.view1.shape() == Shape{4, 3, 32, 32});
            CHECK(b.text.shape() == Shape{4, 8});
            CHECK(b.boxes.shape() == Shape{4, 3, 4});
            keys.insert(b.keys.begin(), b.keys.end());
        }
        std::set<std::string> distinct(keys.begin(), keys.end());
        CHECK(distinct.size() == keys.size());
        CHECK(static_cast<int64_t>(keys.size()) == dataset().good / 4 * 4);  // drop_last
        CHECK_FALSE(distinct.count("1.tar:s1_4"));
        CHECK_FALSE(distinct.count("1.tar:s1_7"));
        LoaderStats st = loader.stats();
        CHECK(st.skipped_samples >= 2);
        CHECK(st.truncated_shards >= 1);
        CHECK(epoch_samples(config(1)) == dataset().good + 2);  // from sizes.json: complete samples
    }

    TEST_CASE("shards that cannot be read: one epoch of warnings, then an error") {
        LoaderConfig c = config(2);
        c.shards = dataset().dir + "/{7..9}.tar";  // gone (deleted under a running loader, say)
        Loader loader(c, tokenizer());
        CHECK(test::error_of([&] { loader.next(); }).find("no samples in this rank's shards") !=
              std::string::npos);
        std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the reading thread went no further
        CHECK(loader.stats().truncated_shards == 3);                  // (it had read 3 per empty epoch on)
    }

    TEST_CASE("batches do not depend on the number of workers") {
        Loader one(config(1), tokenizer()), many(config(4), tokenizer());
        for (int i = 0; i < 5; ++i) {
            Batch a = one.next(), b = many.next();
            CHECK(a.keys == b.keys);
            CHECK(a.view1.to_vector<uint8_t>() == b.view1.to_vector<uint8_t>());
            CHECK(a.text.to_vector<int64_t>() == b.text.to_vector<int64_t>());
        }
        Loader other_seed(config(2, 6), tokenizer());
        Loader same_seed(config(2, 5), tokenizer());
        CHECK(other_seed.next().keys != same_seed.next().keys);
    }

    TEST_CASE("a loader started from a cursor yields exactly the batches of an uninterrupted run") {
        Loader full(config(2), tokenizer());
        std::vector<Batch> seen;
        LoaderCursor cursor;
        for (int i = 0; i < 10; ++i) {  // crosses the end of epoch 0
            seen.push_back(full.next());
            if (i == 3) cursor = full.cursor();
        }
        CHECK(seen.back().epoch == 1);
        Loader resumed(config(3), tokenizer(), cursor);
        for (int i = 4; i < 10; ++i) {
            CAPTURE(i);
            Batch b = resumed.next();
            CHECK(b.keys == seen[static_cast<size_t>(i)].keys);
            CHECK(b.epoch == seen[static_cast<size_t>(i)].epoch);
            CHECK(b.view2.to_vector<uint8_t>() == seen[static_cast<size_t>(i)].view2.to_vector<uint8_t>());
            CHECK(b.boxes.to_vector<int64_t>() == seen[static_cast<size_t>(i)].boxes.to_vector<int64_t>());
        }
    }

    TEST_CASE("a loader started from a cursor at the very end of an epoch goes on into the next") {
        LoaderConfig c = config(2);
        c.shards = dataset().dir + "/0.tar";  // 10 good samples: two whole batches of 5
        c.batch_size = 5;
        Loader full(c, tokenizer());
        std::vector<Batch> seen;
        for (int i = 0; i < 4; ++i) seen.push_back(full.next());
        CHECK(seen[2].epoch == 1);
        Loader first(c, tokenizer());
        first.next();
        first.next();
        const LoaderCursor end = first.cursor();
        CHECK(end.epoch == 0);  // every sample of epoch 0 delivered, its end not yet seen
        CHECK(end.position == 10);
        Loader resumed(c, tokenizer(), end);
        for (int i = 2; i < 4; ++i) {
            Batch b = resumed.next();
            CHECK(b.keys == seen[static_cast<size_t>(i)].keys);
            CHECK(b.epoch == 1);
        }
    }

    TEST_CASE("ranks read disjoint shards") {
        LoaderConfig c0 = config(2), c1 = config(2);
        c0.world = c1.world = 2;
        c1.rank = 1;
        Loader r0(c0, tokenizer()), r1(c1, tokenizer());
        std::set<std::string> k0, k1;
        for (int i = 0; i < 2; ++i) {
            for (auto& k : r0.next().keys) k0.insert(k.substr(0, k.find(':')));
            for (auto& k : r1.next().keys) k1.insert(k.substr(0, k.find(':')));
        }
        for (const auto& shard : k0) CHECK_FALSE(k1.count(shard));
        LoaderConfig too_many = config(1);
        too_many.world = 5;
        CHECK(test::error_of([&] { Loader l(too_many, tokenizer()); }).find("cannot feed 5 ranks") !=
              std::string::npos);
    }
}

TEST_SUITE("data") {
    TEST_CASE("captions: .txt, or SLIP's coin flip of title and description from .json or members") {
        SampleRng rng(3, 0);
        const std::map<std::string, std::string> txt = {{"txt", "a red circle"}},
                                                 json = {{"json", R"({"title": "red", "description": ""})"}},
                                                 members = {{"title.txt", "green"},
                                                            {"desc.txt", "a green star"}};
        CHECK(sample_caption(txt, CaptionSource::Txt, rng) == "a red circle");
        int titles = 0, empties = 0, member_titles = 0;
        for (int i = 0; i < 400; ++i) {
            const std::string a = sample_caption(json, CaptionSource::SlipJson, rng);
            CHECK((a == "red" || a.empty()));  // the empty description too, as SLIP
            titles += a == "red";
            empties += a.empty();
            const std::string b = sample_caption(members, CaptionSource::SlipJson, rng);
            CHECK((b == "green" || b == "a green star"));
            member_titles += b == "green";
        }
        CHECK(titles > 150);  // p = 1/2 over 400 draws: 200, standard deviation 10
        CHECK(empties > 150);
        CHECK(member_titles > 150);
        CHECK(member_titles < 250);
        SampleRng a(7, 9), b(7, 9);  // the same draws from the same seed and sample
        for (int i = 0; i < 20; ++i)
            CHECK(sample_caption(json, CaptionSource::SlipJson, a) ==
                  sample_caption(json, CaptionSource::SlipJson, b));
        // what must not pass silently
        CHECK(test::error_of([&] { sample_caption(json, CaptionSource::Txt, rng); }).find("no .txt") !=
              std::string::npos);
        const std::map<std::string, std::string> img2dataset = {
            {"json", R"({"caption": "a cat", "key": "0"})"}};
        CHECK(test::error_of([&] {
                  sample_caption(img2dataset, CaptionSource::SlipJson, rng);
              }).find("no \"title\" and \"description\"") != std::string::npos);
        CHECK(test::error_of([&] { sample_caption(txt, CaptionSource::SlipJson, rng); }).find(".title.txt") !=
              std::string::npos);
    }

    TEST_CASE("split_batches: ranks take slices of the same global batches, whatever the number of ranks") {
        LoaderConfig one = config(2);
        one.split_batches = true;
        one.batch_size = 8;
        LoaderConfig r0 = config(1), r1 = config(3);
        for (LoaderConfig* c : {&r0, &r1}) {
            c->split_batches = true;
            c->world = 2;
            c->batch_size = 4;
        }
        r1.rank = 1;
        Loader a(one, tokenizer()), b0(r0, tokenizer()), b1(r1, tokenizer());
        for (int i = 0; i < 3; ++i) {
            Batch g = a.next(), x = b0.next(), y = b1.next();
            std::vector<std::string> joined = x.keys;
            joined.insert(joined.end(), y.keys.begin(), y.keys.end());
            CHECK(joined == g.keys);
            CHECK(concat({x.view1, y.view1}, 0).to_vector<uint8_t>() == g.view1.to_vector<uint8_t>());
        }
    }
}
