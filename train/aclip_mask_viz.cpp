// aclip_mask_viz: pictures of the attentive mask (the paper's figure 3) and, on the synthetic dataset,
// how often it keeps the objects.
//   aclip_mask_viz --checkpoint M [--config C] --out DIR [--n 16] [--shards LIST] [--seed S]
// For each of the first n samples of the training shards (or --shards), the three crops of A-CLIP's
// training transform are drawn side by side in DIR/mask_NNN.png: the EMA teacher's zoom-out crop with its
// CLS attention as a heat map, then view 1 and view 2 with the patches the attentive mask removes
// greyed out (colour augmentation is left out of the pictures, not out of the masks' inputs). When the
// samples carry object masks (KEY.mask.png, as aclip_make_synthetic writes), it prints the precision:
// the share of kept patches that overlap an object, for the attentive mask and for a random mask that
// keeps as many, beside the share of all patches that overlap an object.
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "data/augment.h"
#include "data/image.h"
#include "data/shards.h"
#include "engine/autograd/grad_mode.h"
#include "engine/core/error.h"
#include "engine/io/files.h"
#include "models/attentive_mask.h"
#include "train/cli.h"
#include "train/inference.h"
#include "train/progress.h"

using namespace aclip;

namespace {

constexpr int kZoom = 4;  // panel pixels per view pixel (views are small in the quickstart)

struct Counts {
    int64_t kept = 0, kept_on_object = 0, patches = 0, patches_on_object = 0;
};

// Whether patch (gy, gx) of a view (G x G patches over box b of the original image) touches an object.
bool on_object(const Image& mask, const Box& b, int64_t G, int64_t gy, int64_t gx) {
    const int64_t y0 = b.top + gy * b.height / G, y1 = b.top + ((gy + 1) * b.height + G - 1) / G;
    const int64_t x0 = b.left + gx * b.width / G, x1 = b.left + ((gx + 1) * b.width + G - 1) / G;
    for (int64_t y = std::max<int64_t>(y0, 0); y < std::min(y1, mask.height); ++y)
        for (int64_t x = std::max<int64_t>(x0, 0); x < std::min(x1, mask.width); ++x)
            if (mask.pixel(y, x)[0] > 127) return true;
    return false;
}

void count(Counts& c, const Image& mask, const Box& b, int64_t G, const std::vector<int64_t>& kept) {
    for (int64_t p = 0; p < G * G; ++p) {
        const bool hit = on_object(mask, b, G, p / G, p % G);
        c.patches++;
        c.patches_on_object += hit;
    }
    for (int64_t p : kept) {
        c.kept++;
        c.kept_on_object += on_object(mask, b, G, p / G, p % G);
    }
}

// One panel: the crop of box b, S x S, zoomed; patches not in `kept` greyed out, or a heat map of
// `heat` (G * G values in [0, 1]) blended in.
void draw_panel(Image& canvas, int64_t x_off, const Image& img, const Box& b, int64_t S, int64_t G,
                const std::vector<bool>* kept, const std::vector<float>* heat) {
    std::vector<float> planes =
        crop_resize(img, static_cast<double>(b.top), static_cast<double>(b.left),
                    static_cast<double>(b.height), static_cast<double>(b.width), S, S);
    const int64_t P = S / G;
    for (int64_t y = 0; y < S * kZoom; ++y)
        for (int64_t x = 0; x < S * kZoom; ++x) {
            const int64_t sy = y / kZoom, sx = x / kZoom, patch = (sy / P) * G + sx / P;
            float c[3];
            for (int k = 0; k < 3; ++k) c[k] = planes[(k * S + sy) * S + sx];  // (3, S, S)
            if (kept && !(*kept)[patch])
                for (float& v : c) v = 0.25f * v + 0.75f * 0.55f;  // removed: faded to grey
            if (heat) {
                const float a = (*heat)[patch];
                const float hot[3] = {1.f, std::max(0.f, 2 * a - 1), 0.f};  // red, to yellow at the peak
                const float alpha = 0.75f * a;                              // unattended patches stay clear
                for (int k = 0; k < 3; ++k) c[k] = (1 - alpha) * c[k] + alpha * hot[k];
            }
            uint8_t* px = canvas.pixel(y, x_off + x);
            for (int k = 0; k < 3; ++k)
                px[k] = static_cast<uint8_t>(std::clamp(c[k], 0.f, 1.f) * 255.f + 0.5f);
        }
}

}  // namespace

int main(int argc, char** argv) {
    std::string checkpoint, config_path, out_dir, shards;
    int64_t n = 16, seed = 0;
    CommandLine cli(
        "aclip_mask_viz",
        "Pictures of the attentive mask: the EMA crop with its attention, both views with the removed "
        "patches greyed; with object masks, its precision against a random mask.");
    cli.option("checkpoint", &checkpoint, "a NAME.model.safetensors file, or a run's folder (its newest)");
    cli.option("config", &config_path, "an INI config (default: the one stored in the checkpoint)");
    cli.option("out", &out_dir, "the folder for the PNGs");
    cli.option("n", &n, "how many samples", 1);
    cli.option("shards", &shards, "shards to draw samples from (default: the config's data.train)");
    cli.option("seed", &seed, "the seed of the crops and of the random mask");
    cli.parse(argc, argv);
    return run_program("aclip_mask_viz", [&] {
        AC_CHECK_HINT(!out_dir.empty(), "pass --out DIR", "no output folder");
        LoadedCheckpoint c = load_checkpoint(checkpoint, config_path, cli.positional);
        AC_CHECK_HINT(c.model->ema, "use an A-CLIP checkpoint (aclip.mask = attentive)", checkpoint,
                      " has no EMA teacher, so no attentive mask");
        if (shards.empty()) shards = c.cfg.str("data.train");
        TransformConfig tc = c.settings.transform;
        tc.ema_crop = ema_crop_from_name(c.cfg.str("aclip.ema_crop"));
        const int64_t S = tc.size, G = c.acfg.clip.vision.grid(), N = G * G;

        std::vector<Sample> samples;
        for (const std::string& path : expand_shard_list(shards)) {
            ShardReader r(path);
            Sample s;
            while (static_cast<int64_t>(samples.size()) < n && r.next(s))
                if (s.files.count("jpg") || s.files.count("png")) samples.push_back(s);
            if (static_cast<int64_t>(samples.size()) >= n) break;
        }
        AC_CHECK_HINT(!samples.empty(), "check --shards or data.train", "no image samples in '", shards, "'");
        const int64_t B = static_cast<int64_t>(samples.size());

        // The batch A-CLIP trains on, built by its own transform, and the teacher's masks for it.
        std::vector<Image> originals, masks;
        std::vector<AclipViews> views;
        Tensor v1 = empty({B, 3, S, S}, DType::U8), v2 = empty({B, 3, S, S}, DType::U8),
               ve = empty({B, 3, S, S}, DType::U8);
        std::vector<int64_t> boxes;
        for (int64_t i = 0; i < B; ++i) {
            const Sample& s = samples[static_cast<size_t>(i)];
            const std::string& bytes = s.files.count("jpg") ? s.files.at("jpg") : s.files.at("png");
            SampleRng rng(static_cast<uint64_t>(seed), static_cast<uint64_t>(i));
            views.push_back(aclip_train_transform(bytes, tc, rng));
            originals.push_back(decode_image(bytes));
            masks.push_back(s.files.count("mask.png") ? decode_image(s.files.at("mask.png")) : Image{});
            const AclipViews& v = views.back();
            std::copy(v.view1.begin(), v.view1.end(), v1.data<uint8_t>() + i * 3 * S * S);
            std::copy(v.view2.begin(), v.view2.end(), v2.data<uint8_t>() + i * 3 * S * S);
            std::copy(v.ema.begin(), v.ema.end(), ve.data<uint8_t>() + i * 3 * S * S);
            for (const Box& b : v.boxes)
                for (int64_t x : {b.top, b.left, b.height, b.width}) boxes.push_back(x);
        }
        std::vector<int64_t> ids(static_cast<size_t>(B * c.acfg.clip.text.context), 0);  // text is not used
        AclipBatch batch{normalize_images(v1, tc.mean, tc.std),
                         normalize_images(v2, tc.mean, tc.std),
                         normalize_images(ve, tc.mean, tc.std),
                         from_vector(boxes, {B, 3, 4}),
                         from_vector(ids, {B, c.acfg.clip.text.context}),
                         static_cast<uint64_t>(seed),
                         0};
        NoGradGuard no_grad;
        AclipStep step = c.model->forward(batch, 1.0);
        AC_CHECK(step.attn.defined() && step.keep1.defined(), checkpoint,
                 ": the model's mask is not attentive (aclip.mask = attentive is needed)");
        std::vector<float> attn = step.attn.to_vector<float>();  // (B, N)
        std::vector<int64_t> keep1 = step.keep1.to_vector<int64_t>(),
                             keep2 = step.keep2.defined() ? step.keep2.to_vector<int64_t>() : keep1;
        const int64_t K = step.keep1.size(1);
        std::vector<int64_t> random = random_keep(2 * B, N, static_cast<double>(K) / static_cast<double>(N),
                                                  static_cast<uint64_t>(seed) + 1, 0)
                                          .to_vector<int64_t>();

        create_directories(out_dir);
        Counts attentive, uniform;
        bool have_masks = false;
        ProgressBar bar(B);
        for (int64_t i = 0; i < B; ++i) {
            const AclipViews& v = views[static_cast<size_t>(i)];
            std::vector<float> heat(attn.begin() + i * N, attn.begin() + (i + 1) * N);
            const float hi = *std::max_element(heat.begin(), heat.end()),
                        lo = *std::min_element(heat.begin(), heat.end());
            for (float& h : heat) h = hi > lo ? (h - lo) / (hi - lo) : 0.f;
            Image canvas{3 * S * kZoom + 2 * 8, S * kZoom, {}};
            canvas.rgb.assign(static_cast<size_t>(canvas.width * canvas.height * 3), 255);
            draw_panel(canvas, 0, originals[static_cast<size_t>(i)], v.boxes[2], S, G, nullptr, &heat);
            for (int view = 0; view < 2; ++view) {
                const std::vector<int64_t>& keep = view == 0 ? keep1 : keep2;
                std::vector<bool> kept(static_cast<size_t>(N), false);
                std::vector<int64_t> mine(keep.begin() + i * K, keep.begin() + (i + 1) * K);
                for (int64_t p : mine) kept[static_cast<size_t>(p)] = true;
                draw_panel(canvas, (view + 1) * (S * kZoom + 8), originals[static_cast<size_t>(i)],
                           v.boxes[view], S, G, &kept, nullptr);
                const Image& mask = masks[static_cast<size_t>(i)];
                if (mask.width == 0) continue;
                have_masks = true;
                count(attentive, mask, v.boxes[view], G, mine);
                const int64_t r = 2 * i + view;
                count(uniform, mask, v.boxes[view], G,
                      std::vector<int64_t>(random.begin() + r * K, random.begin() + (r + 1) * K));
            }
            char name[32];
            std::snprintf(name, sizeof name, "/mask_%03lld.png", static_cast<long long>(i));
            write_file_atomic(out_dir + name, encode_png(canvas));
            bar.update(i + 1);
        }
        bar.clear();
        std::printf(
            "wrote %lld pictures to %s (EMA crop with attention | view 1 | view 2; %lld of %lld patches "
            "kept per view)\n",
            static_cast<long long>(B), out_dir.c_str(), static_cast<long long>(K), static_cast<long long>(N));
        if (have_masks) {
            auto pct = [](int64_t a, int64_t b) {
                return b ? 100.0 * static_cast<double>(a) / static_cast<double>(b) : 0.0;
            };
            std::printf(
                "precision (kept patches on an object): attentive mask %.1f%%, random mask %.1f%%; objects "
                "cover %.1f%% of all patches (%lld samples, both views)\n",
                pct(attentive.kept_on_object, attentive.kept), pct(uniform.kept_on_object, uniform.kept),
                pct(attentive.patches_on_object, attentive.patches), static_cast<long long>(B));
        }
        return 0;
    });
}
