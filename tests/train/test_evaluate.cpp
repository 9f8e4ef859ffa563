// test_evaluate.cpp: evaluation inputs besides shards: an ImageNet-style class folder for zero-shot and a
// Karpathy-split JSON (Flickr30K/COCO) for retrieval; recall counts only the test split.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "data/bpe_train.h"
#include "data/image.h"
#include "models/presets.h"
#include "test_util.h"
#include "train/evaluate.h"

using namespace aclip;
namespace fs = std::filesystem;

TEST_SUITE("train") {
    TEST_CASE("zero-shot from DIR/<class>/<image>, retrieval from a Karpathy JSON") {
        std::string dir = fs::temp_directory_path().string() + "/aclip_eval_" + std::to_string(getpid());
        fs::remove_all(dir);
        const std::vector<std::string> classes = {"cat", "dog", "fox"};
        for (size_t c = 0; c < classes.size(); ++c) {
            fs::create_directories(dir + "/val/n0" + std::to_string(c));
            for (int i = 0; i < 2; ++i)
                std::ofstream(dir + "/val/n0" + std::to_string(c) + "/" + std::to_string(i) + ".JPEG",
                              std::ios::binary)
                    << encode_jpeg(Image{
                           40, 30, std::vector<uint8_t>(40 * 30 * 3, static_cast<uint8_t>(60 * c + i))});
        }
        std::ofstream(dir + "/classes.json") << "{\"imagenet\": [\"cat\", \"dog\", \"fox\"]}";
        std::ofstream(dir + "/templates.json") << "{\"imagenet\": [\"a photo of a {}.\", \"a {}.\"]}";
        fs::create_directories(dir + "/flickr/images");
        std::string json = "{\"images\": [";
        for (int i = 0; i < 4; ++i) {
            std::ofstream(dir + "/flickr/images/" + std::to_string(i) + ".jpg", std::ios::binary)
                << encode_jpeg(
                       Image{32, 32, std::vector<uint8_t>(32 * 32 * 3, static_cast<uint8_t>(50 * i))});
            json += std::string(i ? ", " : "") + "{\"filepath\": \"images\", \"filename\": \"" +
                    std::to_string(i) + ".jpg\", \"split\": \"" + (i == 3 ? "train" : "test") +
                    "\", \"sentences\": [{\"raw\": \"a cat\"}, {\"raw\": \"a dog\"}]}";
        }
        std::ofstream(dir + "/flickr/dataset_flickr30k.json") << json << "]}";
        write_merges(dir + "/bpe.txt",
                     learn_bpe({"a photo of a cat", "a photo of a dog", "a photo of a fox"}, 50));
        ClipTokenizer tok(dir + "/bpe.txt", 1000);
        AclipConfig cfg = model_preset("tiny");
        cfg.clip.text.vocab = tok.vocab_size();
        Generator gen(1);
        Aclip model(cfg, gen);
        EvalSettings s;
        s.zeroshot = dir + "/val";
        s.classes = dir + "/classes.json";
        s.templates = dir + "/templates.json";
        s.retrieval = dir + "/flickr/dataset_flickr30k.json";
        s.context = 16;
        s.batch_size = 4;
        s.transform.size = 32;
        EvalResult r = evaluate(model, true, tok, s);
        CHECK(r.zeroshot_images == 6);
        CHECK(r.classes == 3);
        CHECK((r.top1 >= 0 && r.top1 <= 1 && r.top5 == 1.0));  // 3 classes: every label is in the top 5
        CHECK(r.retrieval_images == 3);                        // the train-split image is left out
        CHECK(r.i2t_r10 == 1.0);                               // 6 captions: all within the top 10
        CHECK(r.t2i_r5 == 1.0);
    }
}
