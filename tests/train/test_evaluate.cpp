// test_evaluate.cpp: evaluation inputs besides shards: an ImageNet-style class folder for zero-shot and a
// Karpathy-split JSON (Flickr30K/COCO) for retrieval; recall counts only the test split.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "data/bpe_train.h"
#include "data/image.h"
#include "engine/io/safetensors.h"
#include "models/presets.h"
#include "test_util.h"
#include "train/evaluate.h"
#include "train/inference.h"

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

    TEST_CASE("Embedder: unit-norm embeddings, batch size does not change them, classes average prompts") {
        std::string dir = fs::temp_directory_path().string() + "/aclip_embedder_" + std::to_string(getpid());
        fs::create_directories(dir);
        write_merges(dir + "/bpe.txt", learn_bpe({"a photo of a cat", "a photo of a dog"}, 40));
        ClipTokenizer tok(dir + "/bpe.txt", 1000);
        AclipConfig cfg = model_preset("tiny");
        cfg.clip.text.vocab = tok.vocab_size();
        Generator gen(2);
        Aclip model(cfg, gen);
        std::vector<std::string> images;
        for (int i = 0; i < 5; ++i)
            images.push_back(
                encode_jpeg(Image{36, 32, std::vector<uint8_t>(36 * 32 * 3, static_cast<uint8_t>(40 * i))}));
        EvalSettings s;
        s.context = 16;
        s.transform.size = 32;
        s.batch_size = 2;
        Embedder small(model, false, tok, s);
        Tensor a = small.images(images), t = small.texts({"a photo of a cat", "a dog", "cat"});
        CHECK(a.shape() == Shape{5, cfg.clip.vision.embed_dim});
        for (const Tensor& e : {a, t})
            for (double n : sum(mul(e, e), {1}).to_vector<double>())
                CHECK(n == doctest::Approx(1.0).epsilon(1e-5));
        EvalSettings big = s;
        big.batch_size = 64;
        Embedder one_batch(model, false, tok, big);
        CHECK_CLOSE(one_batch.images(images), a, 1e-6, 0.0);  // batching is invisible (no cross-sample op)
        Tensor cls = small.classifier({"cat", "dog"}, {"a photo of a {}.", "a {}."});
        Tensor cat = l2_normalize(mean(small.texts({"a photo of a cat.", "a cat."}), {0}), -1);
        CHECK_CLOSE(cls.select(0, 0), cat, 1e-6, 0.0);
        AclipConfig plain = cfg;  // plain CLIP: no EMA teacher to embed with
        plain.mask = MaskMode::None;
        plain.ssl_losses = false;
        Aclip clip_only(plain, gen);
        CHECK(test::error_of([&] { Embedder(clip_only, true, tok, s); }).find("no EMA copy") !=
              std::string::npos);
    }

    TEST_CASE("an OpenAI-layout CLIP converted by tools/convert_openai_clip.py embeds as PyTorch does") {
        // Fixture: tools/reference/make_openai_fixture.py (PyTorch model with OpenAI's modules, fp16 .pt,
        // converted; PyTorch's embeddings of three PNGs and three texts).
        const std::string fix = ACLIP_FIXTURES_DIR;
        LoadedCheckpoint c = load_checkpoint(fix + "/openai_tiny.model.safetensors", "",
                                             {"tokenizer.merges=" + fix + "/openai_tiny_merges.txt"});
        CHECK(c.acfg.clip.vision.ln_pre);
        CHECK(c.acfg.clip.vision.act == Activation::QuickGELU);
        CHECK_FALSE(c.model->ema);  // plain CLIP: no teacher, no SSL heads
        SafetensorsFile ref = load_safetensors(fix + "/openai_tiny_ref.safetensors");
        std::vector<std::string> texts, images;
        std::istringstream lines(ref.metadata.at("texts"));
        for (std::string line; std::getline(lines, line);) texts.push_back(line);
        for (int i = 0; i < 3; ++i)
            images.push_back(read_maybe_gzipped(fix + "/openai_tiny_" + std::to_string(i) + ".png"));
        Embedder embed(*c.model, false, *c.tokenizer, c.settings);
        // The same token ids as PyTorch was given.
        std::vector<int64_t> ids;
        for (const std::string& t : texts)
            for (int32_t id : c.tokenizer->tokenize(t, 16, Truncate::Eot)) ids.push_back(id);
        CHECK(ids == ref.get("text_ids").to_vector<int64_t>());
        // f32 on both sides, sums in different orders: agreement to ~1e-6; 1e-4 leaves room.
        CHECK_CLOSE(embed.images(images), ref.get("image_embeds"), 1e-4, 0.0);
        CHECK_CLOSE(embed.texts(texts), ref.get("text_embeds"), 1e-4, 0.0);

        // And the program a user runs gives the same embeddings (in builds that have it: the sanitizer
        // build compiles the test binary alone).
        const std::string program = std::string(ACLIP_BINARY_DIR) + "/aclip_embed";
        if (!fs::exists(program)) {
            MESSAGE("aclip_embed is not built in " << ACLIP_BINARY_DIR
                                                   << ": its run is checked by the main build");
            return;
        }
        const std::string dir =
            fs::temp_directory_path().string() + "/aclip_openai_" + std::to_string(getpid());
        fs::create_directories(dir);
        std::ofstream(dir + "/texts.txt") << texts[0] << "\n" << texts[1] << "\n" << texts[2] << "\n";
        std::string cmd = program + " --checkpoint " + fix + "/openai_tiny.model.safetensors --images " +
                          fix + "/openai_tiny_0.png " + fix + "/openai_tiny_1.png " + fix +
                          "/openai_tiny_2.png --texts " + dir + "/texts.txt --out " + dir +
                          "/e.safetensors tokenizer.merges=" + fix + "/openai_tiny_merges.txt > " + dir +
                          "/log 2>&1";
        REQUIRE(std::system(cmd.c_str()) == 0);
        SafetensorsFile out = load_safetensors(dir + "/e.safetensors");
        CHECK_CLOSE(out.get("image_embeds"), ref.get("image_embeds"), 1e-4, 0.0);
        CHECK_CLOSE(out.get("text_embeds"), ref.get("text_embeds"), 1e-4, 0.0);
        fs::remove_all(dir);
    }
}
