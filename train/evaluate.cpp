// evaluate.cpp: see evaluate.h.
#include "train/evaluate.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>

#include "data/shards.h"
#include "engine/autograd/grad_mode.h"
#include "engine/io/json_lite.h"
#include "engine/ops/ops.h"

namespace aclip {

namespace {}  // namespace

std::vector<std::string> first_list(const std::string& path) {
    std::ifstream in(path);
    AC_CHECK_HINT(in.good(), "set eval.classes and eval.templates", "cannot open '", path, "'");
    std::stringstream ss;
    ss << in.rdbuf();
    JsonValue v = json_parse(ss.str(), path);
    AC_CHECK(v.kind == JsonValue::Kind::Object && !v.object.empty() &&
                 v.object[0].second.kind == JsonValue::Kind::Array,
             path, ": expected {\"name\": [\"...\", ...]}");
    std::vector<std::string> out;
    for (const JsonValue& s : v.object[0].second.array) {
        AC_CHECK(s.kind == JsonValue::Kind::String, path, ": the list must hold strings");
        out.push_back(s.string);
    }
    return out;
}

namespace {

// For each row of scores (R, K), whether target (one index, or any of a set) is within the top k.
double recall_at(const Tensor& scores, const std::vector<std::vector<int64_t>>& targets, int64_t k) {
    const int64_t R = scores.size(0), K = scores.size(1);
    std::vector<float> s = scores.to_vector<float>();
    int64_t hits = 0;
    for (int64_t r = 0; r < R; ++r) {
        const float* row = s.data() + r * K;
        float best_target = -1e30f;
        for (int64_t t : targets[static_cast<size_t>(r)]) best_target = std::max(best_target, row[t]);
        int64_t better = 0;  // how many candidates score above the best target (ties count for it)
        for (int64_t j = 0; j < K; ++j) better += row[j] > best_target;
        hits += better < k;
    }
    return static_cast<double>(hits) / static_cast<double>(std::max<int64_t>(R, 1));
}

// Zero-shot samples from an ImageNet-style folder: DIR/<class>/<image>, classes in sorted order (the order
// of torchvision's ImageFolder, which SLIP's labels.json follows).
std::vector<Sample> read_class_folders(const std::string& dir) {
    std::vector<std::string> classes;
    for (const auto& e : std::filesystem::directory_iterator(dir))
        if (e.is_directory()) classes.push_back(e.path().filename().string());
    std::sort(classes.begin(), classes.end());
    std::vector<Sample> out;
    for (size_t c = 0; c < classes.size(); ++c) {
        std::vector<std::string> files;
        for (const auto& e : std::filesystem::directory_iterator(dir + "/" + classes[c]))
            if (e.is_regular_file()) files.push_back(e.path().string());
        std::sort(files.begin(), files.end());
        for (const std::string& f : files)
            out.push_back({f, {{"jpg", read_maybe_gzipped(f)}, {"cls", std::to_string(c)}}});
    }
    AC_CHECK(!out.empty(), "zero-shot folder '", dir, "' holds no DIR/<class>/<image> files");
    return out;
}

// Retrieval samples from a Karpathy-split JSON (Flickr30K, COCO): the "test" images, with their
// sentences; image files are found under the JSON's folder (filepath/filename).
std::vector<Sample> read_karpathy(const std::string& json_path) {
    JsonValue v = json_parse(read_maybe_gzipped(json_path), json_path);
    const JsonValue* images = v.find("images");
    AC_CHECK(images && images->kind == JsonValue::Kind::Array, json_path, ": expected {\"images\": [...]}");
    const std::string base = std::filesystem::path(json_path).parent_path().string();
    std::vector<Sample> out;
    for (const JsonValue& im : images->array) {
        const JsonValue* split = im.find("split");
        if (!split || split->string != "test") continue;
        const JsonValue* filepath = im.find("filepath");
        std::string path =
            base + "/" + (filepath ? filepath->string + "/" : "") + im.find("filename")->string;
        std::vector<std::string> caps;
        for (const JsonValue& sent : im.find("sentences")->array) caps.push_back(sent.find("raw")->string);
        out.push_back({path,
                       {{"jpg", read_maybe_gzipped(path)},
                        {"json", "{\"captions\": " + json_string_list(caps) + "}"}}});
    }
    AC_CHECK(!out.empty(), json_path, ": no image with split \"test\"");
    return out;
}

// Evaluation samples from shards, an ImageNet-style folder, or a Karpathy JSON.
std::vector<Sample> read_samples(const std::string& source) {
    if (std::filesystem::is_directory(source)) return read_class_folders(source);
    if (source.size() > 5 && source.compare(source.size() - 5, 5, ".json") == 0) return read_karpathy(source);
    std::vector<Sample> out;
    for (const std::string& path : expand_shard_list(source)) {
        ShardReader r(path);
        Sample s;
        while (r.next(s)) out.push_back(std::move(s));
        if (!r.error().empty())
            std::fprintf(stderr, "warning: eval shard %s: %s\n", path.c_str(), r.error().c_str());
    }
    return out;
}

const std::string& image_of(const Sample& s) {
    for (const char* ext : {"jpg", "jpeg", "png"})
        if (s.files.count(ext)) return s.files.at(ext);
    AC_FAIL("eval sample '", s.key, "' has no image");
}

}  // namespace

Embedder::Embedder(Aclip& model, bool use_ema, const ClipTokenizer& tokenizer, const EvalSettings& settings)
    : text_(&model.clip.text),
      device_(model.clip.logit_scale.device()),
      tokenizer_(tokenizer),
      settings_(settings) {
    AC_CHECK(!use_ema || model.ema, "the model has no EMA copy (mask none and no SSL losses)");
    visual_ = use_ema ? &model.ema->visual : &model.clip.visual;
    blocks_ = use_ema ? &model.ema->transformer : nullptr;
    projection_ = use_ema ? &model.ema->text_projection : nullptr;
}

Tensor Embedder::images(const std::vector<std::string>& image_bytes, const ProgressFn& progress) const {
    NoGradGuard no_grad;
    const int64_t S = settings_.transform.size, N = static_cast<int64_t>(image_bytes.size());
    std::vector<Tensor> parts;
    for (int64_t b = 0; b < N; b += settings_.batch_size) {
        const int64_t n = std::min(settings_.batch_size, N - b);
        Tensor batch = empty({n, 3, S, S}, DType::U8);  // (n, 3, S, S)
        for (int64_t i = 0; i < n; ++i) {
            const Bytes chw = eval_transform(image_bytes[static_cast<size_t>(b + i)], settings_.transform);
            std::copy(chw.begin(), chw.end(), batch.data<uint8_t>() + i * 3 * S * S);
        }
        const Tensor input =
            normalize_images(batch.to(device_), settings_.transform.mean, settings_.transform.std);
        parts.push_back(l2_normalize(visual_->forward(input).embed, -1));
        if (progress) progress(b + n);
    }
    return N ? concat(parts, 0) : empty({0, visual_->cfg.embed_dim});
}

Tensor Embedder::texts(const std::vector<std::string>& texts, const ProgressFn& progress) const {
    NoGradGuard no_grad;
    const int64_t M = static_cast<int64_t>(texts.size()), C = settings_.context;
    std::vector<Tensor> parts;
    for (int64_t b = 0; b < M; b += settings_.batch_size) {
        const int64_t n = std::min(settings_.batch_size, M - b);
        std::vector<int64_t> ids;
        for (int64_t i = 0; i < n; ++i)
            for (int32_t id : tokenizer_.tokenize(texts[static_cast<size_t>(b + i)], C, settings_.truncate))
                ids.push_back(id);
        Tensor tokens = from_vector(ids, {n, C}).to(device_);  // (n, C)
        parts.push_back(l2_normalize(text_->forward(tokens, blocks_, projection_), -1));
        if (progress) progress(b + n);
    }
    return M ? concat(parts, 0) : empty({0, visual_->cfg.embed_dim});
}

Tensor Embedder::classifier(const std::vector<std::string>& classes,
                            const std::vector<std::string>& templates) const {
    NoGradGuard no_grad;
    std::vector<Tensor> rows;
    for (const std::string& c : classes) {
        std::vector<std::string> prompts;
        for (const std::string& tpl : templates) {
            size_t at = tpl.find("{}");
            prompts.push_back(at == std::string::npos ? tpl : tpl.substr(0, at) + c + tpl.substr(at + 2));
        }
        rows.push_back(l2_normalize(mean(texts(prompts), {0}), -1));
    }
    return stack(rows, 0);
}

EvalResult evaluate(Aclip& model, bool use_ema, const ClipTokenizer& tok, const EvalSettings& s) {
    Embedder embed(model, use_ema, tok, s);
    NoGradGuard no_grad;
    EvalResult r;
    if (!s.zeroshot.empty()) {
        std::vector<std::string> classes = first_list(s.classes), templates = first_list(s.templates);
        Tensor text = embed.classifier(classes, templates);  // (K, E)
        std::vector<Sample> samples = read_samples(s.zeroshot);
        std::vector<std::string> images;
        std::vector<std::vector<int64_t>> labels;
        for (const Sample& smp : samples) {
            AC_CHECK(smp.files.count("cls"), "zero-shot sample '", smp.key, "' has no .cls");
            images.push_back(image_of(smp));
            labels.push_back({std::stoll(smp.files.at("cls"))});
        }
        Tensor scores = matmul(embed.images(images), text.transpose(0, 1));  // (N, K)
        r.top1 = recall_at(scores, labels, 1);
        r.top5 = recall_at(scores, labels, 5);
        r.zeroshot_images = static_cast<int64_t>(images.size());
        r.classes = static_cast<int64_t>(classes.size());
    }
    if (!s.retrieval.empty()) {
        std::vector<Sample> samples = read_samples(s.retrieval);
        std::vector<std::string> images, captions;
        std::vector<std::vector<int64_t>> image_captions, caption_image;
        for (const Sample& smp : samples) {
            AC_CHECK(smp.files.count("json"), "retrieval sample '", smp.key, "' has no .json");
            JsonValue v = json_parse(smp.files.at("json"), smp.key + ".json");
            const JsonValue* list = v.find("captions");
            AC_CHECK(list && list->kind == JsonValue::Kind::Array && !list->array.empty(), smp.key,
                     ".json: expected {\"captions\": [...]}");
            std::vector<int64_t> mine;
            for (const JsonValue& c : list->array) {
                mine.push_back(static_cast<int64_t>(captions.size()));
                caption_image.push_back({static_cast<int64_t>(images.size())});
                captions.push_back(c.string);
            }
            image_captions.push_back(mine);
            images.push_back(image_of(smp));
        }
        Tensor img = embed.images(images), txt = embed.texts(captions);
        Tensor i2t = matmul(img, txt.transpose(0, 1)), t2i = matmul(txt, img.transpose(0, 1));
        r.i2t_r1 = recall_at(i2t, image_captions, 1);
        r.i2t_r5 = recall_at(i2t, image_captions, 5);
        r.i2t_r10 = recall_at(i2t, image_captions, 10);
        r.t2i_r1 = recall_at(t2i, caption_image, 1);
        r.t2i_r5 = recall_at(t2i, caption_image, 5);
        r.t2i_r10 = recall_at(t2i, caption_image, 10);
        r.retrieval_images = static_cast<int64_t>(images.size());
    }
    return r;
}

}  // namespace aclip
