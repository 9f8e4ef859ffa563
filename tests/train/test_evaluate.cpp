// test_evaluate.cpp: evaluation inputs besides shards: an ImageNet-style class folder for zero-shot and a
// Karpathy-split JSON (Flickr30K/COCO) for retrieval; recall counts only the test split.
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "data/bpe_train.h"
#include "data/image.h"
#include "data/shards.h"
#include "engine/autograd/grad_mode.h"
#include "engine/io/safetensors.h"
#include "models/presets.h"
#include "test_util.h"
#include "thread_ranks.h"
#include "train/evaluate.h"
#include "train/inference.h"

using namespace aclip;
namespace fs = std::filesystem;

namespace {

// An evaluation of DIR/val (zero-shot, with DIR/classes.json and DIR/templates.json) and a Karpathy JSON by
// the tiny model at 32 px, in batches of 4.
EvalSettings small_eval(const std::string& dir, const std::string& karpathy) {
    EvalSettings s;
    s.zeroshot = dir + "/val";
    s.classes = dir + "/classes.json";
    s.templates = dir + "/templates.json";
    s.retrieval = karpathy;
    s.context = 16;
    s.batch_size = 4;
    s.transform.size = 32;
    return s;
}

std::vector<double> fields(const EvalResult& r) {
    return {r.top1,
            r.top5,
            r.i2t_r1,
            r.i2t_r5,
            r.i2t_r10,
            r.t2i_r1,
            r.t2i_r5,
            r.t2i_r10,
            static_cast<double>(r.zeroshot_images),
            static_cast<double>(r.retrieval_images),
            static_cast<double>(r.classes),
            static_cast<double>(r.skipped_images)};
}

}  // namespace

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
        EvalSettings s = small_eval(dir, dir + "/flickr/dataset_flickr30k.json");
        LocalComm one;
        const EvalResults both = evaluate(model, tok, s, one);
        REQUIRE(both.ema);
        const EvalResult& r = *both.ema;
        CHECK(r.zeroshot_images == 6);
        CHECK(r.classes == 3);
        CHECK((r.top1 >= 0 && r.top1 <= 1 && r.top5 == 1.0));  // 3 classes: every label is in the top 5
        CHECK(r.retrieval_images == 3);                        // the train-split image is left out
        CHECK(r.i2t_r10 == 1.0);                               // 6 captions: all within the top 10
        CHECK(r.t2i_r5 == 1.0);
        {  // a model whose image embeddings are NaN scores 0 everywhere, not 100%
            Aclip broken(cfg, gen);
            NoGradGuard no_grad;
            int filled = 0;
            for (const NamedTensor& p : broken.named_state())
                if (p.name.ends_with("visual.proj")) p.tensor->fill_(std::nan("")), ++filled;
            REQUIRE(filled == 2);  // the online tower's projection and the teacher's
            const EvalResults nan = evaluate(broken, tok, s, one);
            for (const EvalResult* e : {&nan.online, &*nan.ema})
                CHECK((e->top1 == 0 && e->top5 == 0 && e->i2t_r10 == 0 && e->t2i_r10 == 0));
        }
        {  // a model whose embeddings collapse to one (all zero) ties every score: ranked by index, chance
            Aclip collapsed(cfg, gen);
            NoGradGuard no_grad;
            for (const NamedTensor& p : collapsed.named_state())
                if (p.name.ends_with("visual.proj")) p.tensor->fill_(0.0);
            const EvalResult e = evaluate(collapsed, tok, s, one).online;
            CHECK(e.top1 == doctest::Approx(1.0 / 3));    // class 0's two images of six
            CHECK(e.top5 == 1.0);                         // 3 classes
            CHECK(e.i2t_r1 == doctest::Approx(1.0 / 3));  // image 0 of three, whose captions come first
            CHECK(e.t2i_r1 == doctest::Approx(2.0 / 6));  // image 0's two captions of six
            CHECK(e.i2t_r5 == 1.0);                       // 6 captions: the first 5 hold one of each image's
        }

        // What a run checks at its start, so that a mistake is not found at the first evaluation
        check_eval_inputs(s);
        EvalSettings bad = s;
        std::ofstream(dir + "/two.json") << "{\"x\": [\"cat\", \"dog\"]}";
        bad.classes = dir + "/two.json";
        CHECK(test::error_of([&] { check_eval_inputs(bad); }).find("has 3 class folders but eval.classes") !=
              std::string::npos);
        bad = s;
        bad.zeroshot = dir + "/none/{0..1}.tar";
        CHECK(test::error_of([&] {
                  check_eval_inputs(bad);
              }).find("shard " + dir + "/none/0.tar does not exist") != std::string::npos);
        // a file of several lists (SLIP's labels.json and templates.json: one a dataset) must name one
        std::ofstream(dir + "/slip.json")
            << R"({"food101": ["a photo of {}, a type of food."], "imagenet": ["a {}."]})";
        CHECK(string_list(dir + "/slip.json#imagenet") == std::vector<std::string>{"a {}."});
        CHECK(test::error_of([&] { string_list(dir + "/slip.json"); }).find("holds 2 lists; which one?") !=
              std::string::npos);
        CHECK(test::error_of([&] { string_list(dir + "/slip.json#nope"); }).find("has no list 'nope'") !=
              std::string::npos);
        bad = s;
        bad.templates = dir + "/slip.json";
        CHECK(test::error_of([&] { check_eval_inputs(bad); }).find("which one?") != std::string::npos);
        bad.templates = dir + "/slip.json#imagenet";
        check_eval_inputs(bad);
        bad = s;  // a template without {} would give every class the same prompt
        std::ofstream(dir + "/tpl.json") << "{\"x\": [\"a photo of a {}.\", \"a photo.\"]}";
        bad.templates = dir + "/tpl.json";
        CHECK(test::error_of([&] {
                  check_eval_inputs(bad);
              }).find(dir + "/tpl.json: the template 'a photo.' has no {}") != std::string::npos);
        bad = s;
        bad.retrieval = dir + "/missing.json";
        CHECK(test::error_of([&] { check_eval_inputs(bad); }).find("no such file") != std::string::npos);
        // a Karpathy JSON lacking a field, or with one of another kind, names the image and the field
        std::ofstream(dir + "/flickr/nofile.json") << R"({"images": [{"split": "test", "sentences": []}]})";
        std::ofstream(dir + "/flickr/rawnum.json")
            << R"({"images": [{"split": "test", "filename": "0.jpg", "sentences": [{"raw": 7}]}]})";
        const std::vector<std::pair<std::string, std::string>> karpathy_errors = {
            {"nofile.json", "nofile.json: images[0]: expected \"filename\" to be a string, it is missing"},
            {"rawnum.json",
             "rawnum.json: images[0].sentences: expected \"raw\" to be a string, it is an integer"}};
        for (const auto& [file, message] : karpathy_errors) {
            bad = s;
            bad.zeroshot = "";
            bad.retrieval = dir + "/flickr/" + file;
            CHECK(test::error_of([&] { evaluate(model, tok, bad, one); }).find(message) != std::string::npos);
        }
        // a sample of a class the names do not reach is an error, not a read past the scores
        {
            ShardWriter w(dir + "/cls.tar");
            w.write(
                {"a", {{"jpg", encode_jpeg(Image{8, 8, std::vector<uint8_t>(8 * 8 * 3, 9)})}, {"cls", "3"}}});
            w.close();
        }
        bad = s;
        bad.zeroshot = dir + "/cls.tar";
        bad.retrieval = "";
        CHECK(test::error_of([&] { evaluate(model, tok, bad, one); }).find("is of class 3 but") !=
              std::string::npos);
        {  // a .cls line with its newline is read as Python's int() reads it
            ShardWriter w(dir + "/cls.tar");
            w.write(
                {"a",
                 {{"jpg", encode_jpeg(Image{8, 8, std::vector<uint8_t>(8 * 8 * 3, 9)})}, {"cls", "3\n"}}});
            w.close();
        }
        CHECK(test::error_of([&] { evaluate(model, tok, bad, one); }).find("is of class 3 but") !=
              std::string::npos);
        for (const char* cls : {"n01440764", "99999999999999999999"}) {  // a class name, an overflow
            CAPTURE(cls);
            {
                ShardWriter w(dir + "/cls.tar");
                w.write(
                    {"a",
                     {{"jpg", encode_jpeg(Image{8, 8, std::vector<uint8_t>(8 * 8 * 3, 9)})}, {"cls", cls}}});
                w.close();
            }
            CHECK(test::error_of([&] {
                      evaluate(model, tok, bad, one);
                  }).find("zero-shot sample 'a': .cls '" + std::string(cls) + "' is not an integer") !=
                  std::string::npos);
        }
        // a folder without subfolders holds shards (aclip_convert's output), not classes
        fs::create_directories(dir + "/shard_folder");
        fs::copy_file(dir + "/cls.tar", dir + "/shard_folder/00000.tar");
        bad.zeroshot = dir + "/shard_folder";
        check_eval_inputs(bad);
        CHECK(test::error_of([&] { evaluate(model, tok, bad, one); }).find("zero-shot sample 'a': .cls") !=
              std::string::npos);  // its shard was read
    }

    TEST_CASE("eval_summary names what was measured and leaves out a set that was not") {
        EvalResult r;
        r.top1 = 0.214, r.top5 = 0.744, r.zeroshot_images = 960, r.classes = 48;
        CHECK(eval_summary(r, false) == "zero-shot top-1 21.4% top-5 74.4% (960 images, 48 classes)");
        r.i2t_r1 = 0.07, r.i2t_r5 = 0.212, r.i2t_r10 = 0.318, r.t2i_r1 = 0.0415, r.t2i_r5 = 0.186,
        r.t2i_r10 = 0.317;
        r.retrieval_images = 500;
        CHECK(eval_summary(r, false) ==
              "zero-shot top-1 21.4% top-5 74.4% (960 images, 48 classes) | retrieval R@1 "
              "image->text 7.0% text->image 4.2% (500 images)");
        r.top1 = -1;
        r.skipped_images = 2;
        CHECK(eval_summary(r, true) ==
              "retrieval image->text R@1 7.00% R@5 21.20% R@10 31.80%, text->image R@1 4.15% "
              "R@5 18.60% R@10 31.70% (500 images) | 2 unreadable images skipped");
    }

    TEST_CASE("decode_for_eval: several threads decode as one; a bad image is an error naming it") {
        std::vector<std::string> images;
        for (int i = 0; i < 7; ++i)
            images.push_back(encode_jpeg(
                Image{40 + i, 30, std::vector<uint8_t>((40 + i) * 30 * 3, static_cast<uint8_t>(30 * i))}));
        TransformConfig t;
        t.size = 24;
        const Tensor one = decode_for_eval(images, 1, 6, t, 1), three = decode_for_eval(images, 1, 6, t, 3);
        CHECK(one.shape() == Shape{6, 3, 24, 24});
        CHECK(one.to_vector<uint8_t>() == three.to_vector<uint8_t>());
        images[4] = "not an image";
        CHECK(test::error_of([&] { decode_for_eval(images, 0, 7, t, 3); }).starts_with("image 4: "));
        const std::vector<std::string> names = {"a.jpg", "b.jpg", "c.jpg", "d.jpg",
                                                "e.jpg", "f.jpg", "g.jpg"};
        CHECK(test::error_of([&] {
                  decode_for_eval(images, 2, 5, t, 3, nullptr, names);
              }).starts_with("e.jpg: "));
    }

    TEST_CASE("evaluation split over 2 and 3 ranks gives one rank's results on every rank") {
        std::string dir =
            fs::temp_directory_path().string() + "/aclip_eval_ranks_" + std::to_string(getpid());
        fs::remove_all(dir);
        const std::vector<std::string> classes = {"cat", "dog", "fox", "owl", "elk"};
        for (size_t c = 0; c < classes.size(); ++c) {
            fs::create_directories(dir + "/val/c" + std::to_string(c));
            for (int i = 0; i < 3; ++i) {
                std::vector<uint8_t> px(36 * 32 * 3);
                for (size_t p = 0; p < px.size(); ++p)
                    px[p] = static_cast<uint8_t>((p * (c + 2) + 37 * i) % 251);
                std::ofstream(dir + "/val/c" + std::to_string(c) + "/" + std::to_string(i) + ".jpg",
                              std::ios::binary)
                    << encode_jpeg(Image{36, 32, px});
            }
        }
        std::ofstream(dir + "/val/c3/9.jpg") << "not an image";  // skipped with a warning, on whichever rank
        std::ofstream(dir + "/classes.json") << "{\"x\": [\"cat\", \"dog\", \"fox\", \"owl\", \"elk\"]}";
        std::ofstream(dir + "/templates.json") << "{\"x\": [\"a photo of a {}.\", \"a {}.\"]}";
        fs::create_directories(dir + "/flickr");
        std::string json = "{\"images\": [";
        for (int i = 0; i < 9; ++i) {
            std::vector<uint8_t> px(32 * 32 * 3);
            for (size_t p = 0; p < px.size(); ++p) px[p] = static_cast<uint8_t>((p * (i + 3)) % 253);
            std::ofstream(dir + "/flickr/" + std::to_string(i) + ".jpg", std::ios::binary)
                << encode_jpeg(Image{32, 32, px});
            json += std::string(i ? ", " : "") + "{\"filename\": \"" + std::to_string(i) +
                    ".jpg\", \"split\": \"test\", \"sentences\": [{\"raw\": \"a " + classes[i % 5] +
                    "\"}, {\"raw\": \"a photo of a " + classes[(i + 2) % 5] + "\"}]}";
        }
        std::ofstream(dir + "/flickr/9.jpg") << "truncated";  // skipped, and its two captions with it
        json +=
            ", {\"filename\": \"9.jpg\", \"split\": \"test\", \"sentences\": [{\"raw\": \"a cat\"}, "
            "{\"raw\": \"a dog\"}]}";
        std::ofstream(dir + "/flickr/karpathy.json") << json << "]}";
        write_merges(dir + "/bpe.txt",
                     learn_bpe({"a photo of a cat", "a dog", "a fox", "an owl", "an elk"}, 60));
        ClipTokenizer tok(dir + "/bpe.txt", 1000);
        AclipConfig cfg = model_preset("tiny");
        cfg.clip.text.vocab = tok.vocab_size();
        // 15 images: four batches of 4, shared unevenly
        EvalSettings s = small_eval(dir, dir + "/flickr/karpathy.json");
        s.workers = 2;
        auto results_of = [&](int world) {
            std::vector<std::vector<double>> out(static_cast<size_t>(world));
            std::vector<std::unique_ptr<Aclip>> models;
            for (int r = 0; r < world; ++r) {
                Generator gen(4);  // the same weights on every rank
                models.push_back(std::make_unique<Aclip>(cfg, gen));
            }
            test::run_ranks(world, [&](int r, Comm& c) {
                const EvalResults both = evaluate(*models[static_cast<size_t>(r)], tok, s, c);
                REQUIRE(both.ema);
                out[static_cast<size_t>(r)] = fields(both.online);
                for (double v : fields(*both.ema)) out[static_cast<size_t>(r)].push_back(v);
            });
            return out;
        };
        const std::vector<double> alone = results_of(1)[0];
        CHECK(alone[8] == 15);  // zero-shot images: the unreadable sixteenth left out
        CHECK(alone[9] == 9);   // retrieval images: the unreadable tenth left out
        CHECK(alone[11] == 2);  // skipped
        for (int world : {2, 3})
            for (const std::vector<double>& rank : results_of(world)) {
                CAPTURE(world);
                CHECK(rank == alone);  // whole batches per rank: the same embeddings, bit for bit
            }
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
        EvalSettings bf16 = s;  // train.precision = bf16: bf16 products, f32 norms and embeddings
        bf16.mixed_precision = true;
        Embedder mixed(model, false, tok, bf16);
        for (auto [low, high] : {std::pair{mixed.images(images), a},
                                 std::pair{mixed.texts({"a dog", "cat"}), small.texts({"a dog", "cat"})}}) {
            CHECK(low.dtype() == DType::F32);
            const double err = test::norm_rel_error(low, high);
            CHECK(err > 0);     // it did compute in bf16
            CHECK(err < 2e-2);  // 8-bit mantissas through a few products: about 1e-2 at most
        }
        Tensor cls = small.classifier({"cat", "dog"}, {"a photo of a {}.", "a {}."});
        CHECK(test::error_of([&] {
                  small.classifier({"cat", "dog"}, {"a photo."});
              }).find("has no {}") != std::string::npos);
        CHECK(test::error_of([&] {
                  small.classifier({"cat", "dog"}, {});
              }).find("0 templates") != std::string::npos);
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
        // the model is the checkpoint's: a [model] override would go unheeded, so it is refused
        CHECK(test::error_of([&] {
                  load_checkpoint(fix + "/openai_tiny.model.safetensors", "", {"model.vision_width=96"});
              }).find("override 'model.vision_width=96': the model is built as the checkpoint was") !=
              std::string::npos);
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
