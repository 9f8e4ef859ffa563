// test_models.cpp: properties of the models beyond the golden step: masking with every token kept is the
// plain forward, the EMA teacher stays off the tape and follows its momentum, checkpoints round-trip
// bitwise and load without their config, parameter counts match the published sizes, and the baselines
// of the paper's ablations run.
#include <unistd.h>

#include <array>
#include <filesystem>

#include "engine/autograd/grad_mode.h"
#include "engine/ops/autocast.h"
#include "models/attentive_mask.h"
#include "models/checkpoint.h"
#include "models/losses.h"
#include "models/presets.h"
#include "test_util.h"

using namespace aclip;
using aclip::test::error_of;
using aclip::test::random_tensor;

namespace {

AclipBatch random_batch(const AclipConfig& c, int64_t B, uint64_t seed) {
    const int64_t S = c.clip.vision.image_size;
    AclipBatch b;
    b.view1 = random_tensor({B, 3, S, S}, seed, -1, 1, DType::F32);
    b.view2 = random_tensor({B, 3, S, S}, seed + 1, -1, 1, DType::F32);
    b.ema_view = random_tensor({B, 3, S, S}, seed + 2, -1, 1, DType::F32);
    std::vector<int64_t> boxes;
    for (int64_t i = 0; i < B; ++i) {
        std::vector<int64_t> v = {4, 2, 30, 36, 10, 8, 28, 30, 0, 0, 40, 44};  // view 1, view 2, EMA box
        boxes.insert(boxes.end(), v.begin(), v.end());
    }
    b.boxes = from_vector(boxes, {B, 3, 4});
    std::vector<int64_t> ids(B * c.clip.text.context, 0);
    for (int64_t i = 0; i < B; ++i) {
        ids[i * c.clip.text.context] = c.clip.text.vocab - 2;
        for (int64_t j = 1; j < 5 + i; ++j) ids[i * c.clip.text.context + j] = 1 + (i * 7 + j) % 90;
        ids[i * c.clip.text.context + 5 + i] = c.clip.text.vocab - 1;
    }
    b.text = from_vector(ids, {B, c.clip.text.context});
    return b;
}

std::string temp_file(const std::string& name) {
    return std::filesystem::temp_directory_path().string() + "/aclip_models_" + std::to_string(getpid()) +
           "_" + name;
}

}  // namespace

TEST_SUITE("model") {
    TEST_CASE("keeping every patch is the unmasked forward") {
        Generator gen(3);
        AclipConfig c = model_preset("tiny");
        VisionTransformer vit(c.clip.vision, gen);
        Tensor images = random_tensor({2, 3, 32, 32}, 4, -1, 1, DType::F32);
        const int64_t N = c.clip.vision.num_patches();
        Tensor all = arange(N).unsqueeze(0).expand({2, N}).contiguous();
        VisionOutput plain = vit.forward(images), kept = vit.forward(images, all);
        CHECK_CLOSE(kept.embed, plain.embed, 0.0, 0.0);
        CHECK_CLOSE(kept.cls, plain.cls, 0.0, 0.0);
        // and a real mask changes the output
        Tensor half = arange(N / 2).unsqueeze(0).expand({2, N / 2}).contiguous();
        CHECK_FALSE(aclip::test::compare(vit.forward(images, half).embed, plain.embed, 1e-3, 0.0).ok);
    }

    TEST_CASE(
        "the attentive mask keeps 25 of 49 squares (100 of 196 patches) at 224/16, as the official code") {
        MaskConfig paper{14, 2, 0.5};
        CHECK(kept_blocks(paper) == 25);
        CHECK(kept_patches(paper) == 100);
        CHECK(kept_blocks(MaskConfig{14, 2, 1.0}) == 49);  // keep everything
    }

    TEST_CASE("a view's score map is the official two-stage resize, bit for bit, boxes inside and out") {
        const int64_t G = 14;
        // the official get_mask with the engine's ops: resize to the EMA box, cut the view's box out (zero
        // outside the EMA box), resize back
        auto two_stage = [G](const Tensor& row, const int64_t* e, const int64_t* o) {
            Tensor map = resize_bilinear(row.reshape({1, 1, G, G}), e[2], e[3]);
            Tensor crop = zeros({1, 1, o[2], o[3]}, row.dtype());
            const int64_t top = o[0] - e[0], left = o[1] - e[1];
            const int64_t r0 = std::max<int64_t>(top, 0), r1 = std::min<int64_t>(top + o[2], e[2]);
            const int64_t c0 = std::max<int64_t>(left, 0), c1 = std::min<int64_t>(left + o[3], e[3]);
            if (r1 > r0 && c1 > c0)
                crop.narrow(2, r0 - top, r1 - r0)
                    .narrow(3, c0 - left, c1 - c0)
                    .copy_(map.narrow(2, r0, r1 - r0).narrow(3, c0, c1 - c0));
            return resize_bilinear(crop, G, G).reshape({G, G});
        };
        // (EMA box, view box): inside, overlapping each edge, smaller than the grid, far outside
        const std::vector<std::array<int64_t, 8>> cases = {
            {0, 0, 224, 224, 20, 30, 150, 120},  {50, 40, 300, 280, 10, 0, 200, 260},
            {5, 7, 100, 90, 60, 70, 120, 150},   {0, 0, 9, 11, 2, 3, 5, 4},
            {100, 100, 50, 60, 0, 0, 40, 40},    {30, 20, 413, 377, 29, 19, 415, 380},
            {0, 0, 224, 224, -30, -20, 100, 90}, {12, 9, 97, 131, 15, 11, 13, 17}};
        std::vector<std::array<int64_t, 8>> boxes = cases;  // and random boxes, to reach every edge
        for (uint64_t i = 0; boxes.size() < cases.size() + 300; ++i) {
            auto draw = [i](uint64_t k, int64_t lo, int64_t hi) {
                return lo + static_cast<int64_t>(uniform_from_word(philox_word(77, i, k)) * (hi - lo));
            };
            const int64_t eh = draw(0, 3, 300), ew = draw(1, 3, 300);
            boxes.push_back({draw(2, 0, 50), draw(3, 0, 50), eh, ew, draw(4, -60, 110), draw(5, -60, 110),
                             draw(6, 3, 300), draw(7, 3, 300)});
        }
        for (DType dt : {DType::F32, DType::BF16}) {
            Tensor score = random_tensor({G * G}, 41, 0, 0.02, dt);
            for (const auto& b : boxes) {
                CAPTURE(dtype_name(dt));
                CAPTURE(b[0]);
                CAPTURE(b[4]);
                Tensor lazy = view_score_map(score, &b[0], &b[4], G), full = two_stage(score, &b[0], &b[4]);
                CHECK(lazy.dtype() == dt);
                CHECK(lazy.to_vector<double>() == full.to_vector<double>());
            }
        }
    }

    TEST_CASE("the attention score is a mean of softmax rows: it sums to at most 1 per sample") {
        Generator gen(5);
        VisionTransformer vit(model_preset("tiny").clip.vision, gen);
        VisionOutput out = vit.forward(random_tensor({3, 3, 32, 32}, 6, -1, 1, DType::F32), {}, true);
        REQUIRE(out.attn_cls.shape() == Shape{3, 64});
        REQUIRE(out.attn_cls_layers.size() == 2);
        CHECK(out.attn_cls_layers[1].shape() == Shape{3, 2, 64});  // per layer and head
        CHECK_CLOSE(
            out.attn_cls,
            mul_scalar(add(mean(out.attn_cls_layers[0], {1}), mean(out.attn_cls_layers[1], {1})), 0.5), 1e-7,
            0.0);
        for (double s : sum(out.attn_cls, {1}).to_vector<double>()) {
            CHECK(s > 0.0);
            CHECK(s < 1.0);  // the CLS key takes the rest
        }
    }

    TEST_CASE("the EMA teacher records nothing on the tape and never receives a gradient") {
        Generator gen(7);
        AclipConfig c = model_preset("tiny");
        Aclip model(c, gen);
        AclipStep out = model.forward(random_batch(c, 4, 8), 0.9);
        CHECK_FALSE(out.attn.requires_grad());
        out.loss.backward();
        for (auto& p : model.ema->named_parameters()) {
            CAPTURE(p.name);
            CHECK_FALSE(p.tensor->requires_grad());
            CHECK_FALSE(p.tensor->grad().defined());
        }
        CHECK(model.clip.visual.proj.grad().defined());
        CHECK_FALSE(model.clip.visual.conv1_weight.grad().defined());  // the patch embedding is frozen
    }

    TEST_CASE("EMA: m = 1 leaves the copy alone; m = 0 makes it the online weights") {
        Generator gen(9);
        Aclip model(model_preset("tiny"), gen);
        {
            NoGradGuard no_grad;
            model.clip.visual.proj.add_(ones_like(model.clip.visual.proj));  // make online and EMA differ
        }
        std::vector<float> before = model.ema->visual.proj.to_vector<float>();
        model.update_ema(1.0);
        CHECK(model.ema->visual.proj.to_vector<float>() == before);
        model.update_ema(0.0);
        CHECK(model.ema->visual.proj.to_vector<float>() == model.clip.visual.proj.to_vector<float>());
        // the EMA text path: EMA blocks and projection with the shared embeddings and ln_final
        Tensor ids = from_vector<int64_t>({98, 5, 6, 99}, {1, 4});
        CHECK_CLOSE(model.clip.text.forward(ids, &model.ema->transformer, &model.ema->text_projection),
                    model.clip.text.forward(ids), 0.0, 0.0);
        CHECK(ema_momentum(0, 100, 0.996) == doctest::Approx(0.996));
        CHECK(ema_momentum(50, 100, 0.996) == doctest::Approx(0.998));
        CHECK(ema_momentum(100, 100, 0.996) == doctest::Approx(1.0));
    }

    TEST_CASE("a saved model loads without its config and gives bitwise-equal outputs") {
        Generator gen(11);
        AclipConfig c = model_preset("tiny");
        Aclip model(c, gen);
        AclipBatch batch = random_batch(c, 4, 12);
        model.forward(batch, 0.5).loss.backward();  // move the BatchNorm statistics off their init
        std::string path = temp_file("tiny.model.safetensors");
        save_model(path, model, model_metadata(c, "[model]\nname = tiny\n"));
        SafetensorsFile file = load_safetensors(path);
        CHECK(file.metadata.at("vision.heads") == "2");
        CHECK(file.metadata.at("aclip.config") == "[model]\nname = tiny\n");
        for (const char* heads :
             {"two", "2.5", "99999999999999999999"}) {  // an error naming the key, no abort
            SafetensorsFile damaged = file;
            damaged.metadata["vision.heads"] = heads;
            CHECK(error_of([&] {
                      config_from_checkpoint(damaged);
                  }).find(": __metadata__ 'vision.heads' = '" + std::string(heads) + "' is not an integer") !=
                  std::string::npos);
        }
        AclipConfig loaded_cfg = config_from_checkpoint(file);
        CHECK(loaded_cfg.clip.vision.num_patches() == c.clip.vision.num_patches());
        CHECK(loaded_cfg.clip.text.vocab == c.clip.text.vocab);
        CHECK(loaded_cfg.ssl.byol_dim == c.ssl.byol_dim);
        Generator other(99);
        Aclip loaded(loaded_cfg, other);
        load_state(loaded, file);
        float a = static_cast<float>(model.forward(batch, 1.0).loss.item());
        float b = static_cast<float>(loaded.forward(batch, 1.0).loss.item());
        CHECK(a == b);
        // a checkpoint of another size is refused by name
        AclipConfig wider = c;
        wider.clip.text.width = 48;
        Aclip mismatched(wider, other);
        CHECK(error_of([&] { load_state(mismatched, file); }).find("token_embedding.weight") !=
              std::string::npos);
        std::filesystem::remove(path);
    }

    TEST_CASE("parameter counts: ViT-B/16 86.19 M (A-CLIP and OpenAI variants), the text tower 63.43 M") {
        Generator gen(0);
        AclipConfig b16 = model_preset("vit_b16");
        VisionTransformer vit(b16.clip.vision, gen);
        CHECK(vit.num_parameters() == 86191872);  // with the (frozen) patch embedding and its bias
        VisionTransformer openai(model_preset("openai_vit_b16").clip.vision, gen);
        CHECK(openai.num_parameters() == 86192640);  // no patch bias, plus ln_pre: open_clip's 86.19 M
        TextTransformer text(b16.clip.text, gen);
        CHECK(text.num_parameters() == 63428096);  // open_clip's ViT-B-16 text tower: 63.43 M
    }

    TEST_CASE("the ablation baselines run: plain CLIP, random masks, attentive mask without SSL") {
        AclipConfig base = model_preset("tiny");
        AclipBatch batch = random_batch(base, 4, 13);
        SUBCASE("plain CLIP: one view, no mask, no EMA") {
            AclipConfig c = base;
            c.mask = MaskMode::None;
            c.views = 1;
            c.ssl_losses = false;
            Generator gen(1);
            Aclip model(c, gen);
            CHECK(model.ema == nullptr);
            AclipStep out = model.forward(batch, 0.99);
            CHECK(out.loss.item() == doctest::Approx(out.clip1.item()));
            CHECK_FALSE(out.keep1.defined());
        }
        SUBCASE("random mask, 1 and 2 views") {
            for (int views : {1, 2}) {
                AclipConfig c = base;
                c.mask = MaskMode::Random;
                c.views = views;
                c.ssl_losses = false;
                Generator gen(2);
                Aclip model(c, gen);
                AclipStep out = model.forward(batch, 0.99);
                CHECK(out.keep1.shape() == Shape{4, 32});
                CHECK(out.keep2.defined() == (views == 2));
                if (views == 2) CHECK(out.keep1.to_vector<int64_t>() != out.keep2.to_vector<int64_t>());
                CHECK(std::isfinite(out.loss.item()));
            }
        }
        SUBCASE("attentive mask without the SSL losses") {
            AclipConfig c = base;
            c.ssl_losses = false;
            Generator gen(3);
            Aclip model(c, gen);
            AclipStep out = model.forward(batch, 0.99);
            CHECK_FALSE(out.simclr.defined());
            CHECK(out.keep1.shape() == Shape{4, 36});
            CHECK(out.loss.item() == doctest::Approx(0.5 * (out.clip1.item() + out.clip2.item())));
        }
        SUBCASE("SimCLR pairs as the official code: view 1 against itself") {
            AclipConfig c = base;
            c.simclr_pairs = SimclrPairs::Official;
            Generator gen(4);
            Aclip model(c, gen);
            AclipStep out = model.forward(batch, 0.99);
            CHECK(std::isfinite(out.simclr.item()));
            Tensor z = random_tensor({4, 8}, 5, -1, 1, DType::F64);
            // identical views: the positive logit is the constant 1/tau
            CHECK(simclr_loss(z, z, 0.1).item() <
                  simclr_loss(z, random_tensor({4, 8}, 6, -1, 1, DType::F64), 0.1).item());
        }
    }

    TEST_CASE("mixed precision: the A-CLIP step under autocast stays close to f32, gradients f32") {
        AclipConfig c = model_preset("tiny");
        // Random masks from the same stream keep the same patches in both runs; the attentive mask ranks
        // an EMA score whose near-ties bf16 may reorder, which would compare different crops.
        c.mask = MaskMode::Random;
        AclipBatch batch = random_batch(c, 4, 40);
        auto run = [&](bool mixed) {
            Generator gen(5);
            Aclip model(c, gen);
            AclipStep out;
            {
                AutocastGuard autocast(mixed);  // forward only, as the trainer does
                out = model.forward(batch, 0.99);
            }
            out.loss.backward();
            std::vector<Tensor> grads;
            for (Tensor& p : model.parameters())
                if (p.requires_grad() && p.grad().defined()) grads.push_back(p.grad().clone());
            return std::tuple{out, grads, model.clip.logit_scale.dtype()};
        };
        auto [f32, g32, dt32] = run(false);
        auto [mixed, g16, dt16] = run(true);
        CHECK(dt16 == DType::F32);  // master weights stay f32
        // A few bf16 roundings (2^-8 each): 2e-2. SimCLR's logits are cosines scaled by 1 / tau = 10, which
        // scales the features' rounding tenfold: 5e-2 (measured 1.8% here, 3.2% in the sanitizer build,
        // whose sums run in another order).
        for (auto [a, b, tol] : {std::tuple{mixed.clip1, f32.clip1, 2e-2},
                                 {mixed.simclr, f32.simclr, 5e-2},
                                 {mixed.byol, f32.byol, 2e-2}}) {
            INFO("mixed " << a.item() << " vs f32 " << b.item());
            CHECK(std::abs(a.item() - b.item()) / std::abs(b.item()) < tol);
        }
        REQUIRE(g16.size() == g32.size());
        for (size_t i = 0; i < g16.size(); ++i) {
            CHECK(g16[i].dtype() == DType::F32);
            for (double v : g16[i].to_vector<double>()) REQUIRE(std::isfinite(v));
        }
        CHECK_CLOSE(mixed.keep1, f32.keep1, 0.0, 0.0);
    }

    TEST_CASE("gradient checkpointing: the same A-CLIP step, bit for bit, holding less for backward") {
        AclipConfig c = model_preset("tiny");
        AclipBatch batch = random_batch(c, 4, 41);
        auto run = [&](bool checkpointed) {
            Generator gen(6);
            Aclip model(c, gen);
            model.set_grad_checkpointing(checkpointed);
            const size_t before = cpu_bytes_in_use();
            AclipStep out = model.forward(batch, 0.99);
            const size_t held = cpu_bytes_in_use() - before;
            out.loss.backward();
            std::vector<Tensor> grads;
            for (Tensor& p : model.parameters())
                if (p.requires_grad() && p.grad().defined()) grads.push_back(p.grad().clone());
            return std::tuple{out.loss.item(), grads, held};
        };
        auto [loss, grads, held] = run(false);
        auto [loss_c, grads_c, held_c] = run(true);
        CHECK(loss_c == loss);
        REQUIRE(grads_c.size() == grads.size());
        for (size_t i = 0; i < grads.size(); ++i) CHECK_CLOSE(grads_c[i], grads[i], 0.0, 0.0);
        INFO("held for backward: " << held << " bytes plain, " << held_c << " checkpointed");
        CHECK(held_c < held / 4);  // measured: 1.73 MB plain, 0.14 MB checkpointed
    }

    TEST_CASE("unknown presets and bad configurations are clear errors") {
        CHECK(error_of([] { model_preset("vit_h14"); }).find("accepted: tiny, vit_s16") != std::string::npos);
        AclipConfig c = model_preset("tiny");
        c.views = 1;
        Generator gen(0);
        CHECK(error_of([&] { Aclip m(c, gen); }).find("SSL losses need two views") != std::string::npos);
    }
}
