// evaluate.cpp: see evaluate.h.
#include "train/evaluate.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <numeric>
#include <thread>

#include "data/shards.h"
#include "engine/autograd/grad_mode.h"
#include "engine/core/parse.h"
#include "engine/io/files.h"
#include "engine/io/json_lite.h"
#include "engine/ops/autocast.h"
#include "engine/ops/ops.h"

namespace aclip {

std::vector<std::string> string_list(const std::string& spec) {
    const size_t hash = spec.rfind('#');
    const std::string path = hash == std::string::npos ? spec : spec.substr(0, hash),
                      key = hash == std::string::npos ? "" : spec.substr(hash + 1);
    JsonValue v = json_parse(read_file(path, "check the path of the JSON file"), path);
    AC_CHECK(v.kind == JsonValue::Kind::Object && !v.object.empty(), path,
             ": expected {\"name\": [\"...\", ...]}");
    std::string names;
    for (const auto& [name, value] : v.object) names += (names.empty() ? "" : ", ") + name;
    const JsonValue* list = nullptr;
    if (!key.empty()) {
        for (const auto& [name, value] : v.object)
            if (name == key) list = &value;
        AC_CHECK_HINT(list, "name one of: " + names, path, " has no list '", key, "'");
    } else {
        // SLIP's labels.json and templates.json hold one list a dataset: taking the first (food101) for
        // ImageNet would evaluate with the wrong names or prompts in silence
        AC_CHECK_HINT(v.object.size() == 1, "name one as " + path + "#NAME, of: " + names, path, " holds ",
                      v.object.size(), " lists; which one?");
        list = &v.object[0].second;
    }
    AC_CHECK(list->kind == JsonValue::Kind::Array, spec, ": expected a list of strings");
    std::vector<std::string> out;
    for (const JsonValue& s : list->array) {
        AC_CHECK(s.kind == JsonValue::Kind::String, spec, ": the list must hold strings");
        out.push_back(s.string);
    }
    return out;
}

namespace {

// A prompt template names where the class goes, or every class would get the same prompt (50/50 odds).
void check_template(const std::string& tpl, const std::string& where) {
    AC_CHECK_HINT(tpl.find("{}") != std::string::npos, "write {} where the class name goes", where,
                  "the template '", tpl, "' has no {} for the class name");
}

// For each row of scores (R, K), whether target (one index, or any of a set) is within the top k, the
// candidates ranked by score, equal scores by index (a stable sort's order, which torch.topk's follows):
// a tie is not a hit for every candidate in it, or a model whose embeddings all collapse to one would score
// 100%. A NaN score ranks below every number: a target whose scores are all NaN is a miss (a model that
// outputs NaN scores 0, not 100%).
double recall_at(const Tensor& scores, const std::vector<std::vector<int64_t>>& targets, int64_t k) {
    const int64_t R = scores.size(0), K = scores.size(1);
    std::vector<float> s = scores.to_vector<float>();
    int64_t hits = 0;
    for (int64_t r = 0; r < R; ++r) {
        const float* row = s.data() + r * K;
        auto ranks_before = [row](int64_t a, int64_t b) {  // candidate a ahead of candidate b
            return row[a] > row[b] || (row[a] == row[b] && a < b);
        };
        int64_t best = -1;  // the target ranked first
        for (int64_t t : targets[static_cast<size_t>(r)])
            if (!std::isnan(row[t]) && (best < 0 || ranks_before(t, best))) best = t;
        if (best < 0) continue;
        int64_t ahead = 0;  // candidates ranked before the best target
        for (int64_t j = 0; j < K; ++j) ahead += ranks_before(j, best);
        hits += ahead < k;
    }
    return static_cast<double>(hits) / static_cast<double>(std::max<int64_t>(R, 1));
}

// Whether to read the image of the i-th sample (this rank embeds it); the others keep an empty image.
using KeepImage = std::function<bool(int64_t)>;

// Zero-shot samples from an ImageNet-style folder: DIR/<class>/<image>, classes in sorted order (the order
// of torchvision's ImageFolder, which SLIP's labels.json follows).
std::vector<Sample> read_class_folders(const std::string& dir, const KeepImage& keep) {
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
        for (const std::string& f : files) {
            const bool mine = keep(static_cast<int64_t>(out.size()));
            out.push_back({f, {{"jpg", mine ? read_maybe_gzipped(f) : ""}, {"cls", std::to_string(c)}}});
        }
    }
    AC_CHECK(!out.empty(), "zero-shot folder '", dir, "' holds no DIR/<class>/<image> files");
    return out;
}

// Retrieval samples from a Karpathy-split JSON (Flickr30K, COCO): the "test" images, with their
// sentences; image files are found under the JSON's folder (filepath/filename).
std::vector<Sample> read_karpathy(const std::string& json_path, const KeepImage& keep) {
    using Kind = JsonValue::Kind;
    const JsonValue v = json_parse(read_maybe_gzipped(json_path), json_path);
    AC_CHECK(v.kind == Kind::Object, json_path, ": expected {\"images\": [...]}");
    const std::string base = std::filesystem::path(json_path).parent_path().string();
    std::vector<Sample> out;
    const std::vector<JsonValue>& images = v.member("images", Kind::Array, json_path).array;
    for (size_t i = 0; i < images.size(); ++i) {
        const JsonValue& im = images[i];
        const std::string where = json_path + ": images[" + std::to_string(i) + "]";
        if (im.member("split", Kind::String, where).string != "test") continue;
        const JsonValue* filepath = im.find("filepath");  // Flickr30K's has none, COCO's has
        const std::string path = base + "/" +
                                 (filepath ? im.member("filepath", Kind::String, where).string + "/" : "") +
                                 im.member("filename", Kind::String, where).string;
        std::vector<std::string> caps;
        for (const JsonValue& sent : im.member("sentences", Kind::Array, where).array)
            caps.push_back(sent.member("raw", Kind::String, where + ".sentences").string);
        const bool mine = keep(static_cast<int64_t>(out.size()));
        out.push_back({path,
                       {{"jpg", mine ? read_maybe_gzipped(path) : ""},
                        {"json", "{\"captions\": " + json_string_list(caps) + "}"}}});
    }
    AC_CHECK(!out.empty(), json_path, ": no image with split \"test\"");
    return out;
}

// An ImageNet-style folder (a subfolder a class), where a folder without subfolders holds shards.
bool is_class_folders(const std::string& source) {
    std::error_code error;
    if (!std::filesystem::is_directory(source, error)) return false;
    for (const auto& e : std::filesystem::directory_iterator(source))
        if (e.is_directory()) return true;
    return false;
}

// Evaluation samples from shards (a list or a folder of them), an ImageNet-style folder, or a Karpathy
// JSON; images only where kept.
std::vector<Sample> read_samples(const std::string& source, const KeepImage& keep) {
    if (is_class_folders(source)) return read_class_folders(source, keep);
    if (source.ends_with(".json")) return read_karpathy(source, keep);
    std::vector<Sample> out;
    for (const std::string& path : expand_shard_list(source)) {
        ShardReader r(path);
        Sample s;
        while (r.next(s)) {
            if (std::string* image = image_of(s); image && !keep(static_cast<int64_t>(out.size())))
                std::string().swap(*image);
            out.push_back(std::move(s));
        }
        if (!r.error().empty())
            std::fprintf(stderr, "warning: eval shard %s: %s\n", path.c_str(), r.error().c_str());
    }
    return out;
}

const std::string& image_bytes(const Sample& s) {
    const std::string* image = image_of(s);
    AC_CHECK(image != nullptr, "eval sample '", s.key, "' has no image");
    return *image;
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

Tensor decode_for_eval(const std::vector<std::string>& image_bytes, int64_t begin, int64_t n,
                       const TransformConfig& transform, int workers, std::vector<std::string>* errors,
                       const std::vector<std::string>& names) {
    const int64_t S = transform.size;
    Tensor batch = zeros({n, 3, S, S}, DType::U8);  // (n, 3, S, S)
    uint8_t* out = batch.data<uint8_t>();
    std::vector<std::string> why(static_cast<size_t>(n));  // per image: "" when decoded
    auto decode = [&](int64_t i) {
        try {
            const Bytes chw = eval_transform(image_bytes[static_cast<size_t>(begin + i)], transform);
            std::copy(chw.begin(), chw.end(), out + i * 3 * S * S);
        } catch (const std::exception& e) {
            why[static_cast<size_t>(i)] = e.what();
        }
    };
    const int64_t threads = std::max<int64_t>(1, std::min<int64_t>(workers, n));
    std::vector<std::thread> pool;
    for (int64_t t = 1; t < threads; ++t)
        pool.emplace_back([&, t] {
            for (int64_t i = t; i < n; i += threads) decode(i);
        });
    for (int64_t i = 0; i < n; i += threads) decode(i);  // this thread's share
    for (std::thread& t : pool) t.join();
    for (int64_t i = 0; i < n && !errors; ++i)
        AC_CHECK(why[static_cast<size_t>(i)].empty(),
                 names.empty() ? "image " + std::to_string(begin + i) : names[static_cast<size_t>(begin + i)],
                 ": ", why[static_cast<size_t>(i)]);
    if (errors) *errors = std::move(why);
    return batch;
}

Tensor Embedder::images(const Tensor& decoded) const {
    NoGradGuard no_grad;
    AutocastGuard autocast(settings_.mixed_precision);
    const Tensor input =
        normalize_images(decoded.to(device_), settings_.transform.mean, settings_.transform.std);
    return l2_normalize(visual_->forward(input).embed, -1);
}

Tensor Embedder::images(const std::vector<std::string>& image_bytes, const ProgressFn& progress,
                        const std::vector<std::string>& names) const {
    const int64_t N = static_cast<int64_t>(image_bytes.size());
    std::vector<Tensor> parts;
    for (int64_t b = 0; b < N; b += settings_.batch_size) {
        const int64_t n = std::min(settings_.batch_size, N - b);
        parts.push_back(images(
            decode_for_eval(image_bytes, b, n, settings_.transform, settings_.workers, nullptr, names)));
        if (progress) progress(b + n);
    }
    return N ? concat(parts, 0) : empty({0, visual_->cfg.embed_dim});
}

Tensor Embedder::texts(const std::vector<std::string>& texts, const ProgressFn& progress) const {
    NoGradGuard no_grad;
    AutocastGuard autocast(settings_.mixed_precision);
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
    const int64_t K = static_cast<int64_t>(classes.size()), T = static_cast<int64_t>(templates.size());
    AC_CHECK_HINT(K > 0 && T > 0, "give class names and at least one template", "a zero-shot classifier of ",
                  K, " classes and ", T, " templates");
    for (const std::string& tpl : templates) check_template(tpl, "");
    std::vector<std::string> prompts;  // class-major: every template of class 0, then of class 1, ...
    for (const std::string& c : classes)
        for (const std::string& tpl : templates) {
            const size_t at = tpl.find("{}");
            prompts.push_back(tpl.substr(0, at) + c + tpl.substr(at + 2));
        }
    // every class's prompts in full batches (not a batch of T per class), then averaged per class
    const Tensor embedded = texts(prompts);                            // (K T, E)
    return l2_normalize(mean(embedded.reshape({K, T, -1}), {1}), -1);  // (K, E)
}

void check_eval_inputs(const EvalSettings& s) {
    auto check_source = [](const std::string& source, const char* key) {
        if (is_class_folders(source) || source.ends_with(".json")) {
            AC_CHECK_HINT(std::filesystem::exists(source), std::string("check ") + key, key, " = ", source,
                          ": no such file or folder");
            return;
        }
        for (const std::string& shard : expand_shard_list(source))
            AC_CHECK_HINT(std::filesystem::exists(shard), std::string("check ") + key, key, " = ", source,
                          ": shard ", shard, " does not exist");
    };
    if (!s.zeroshot.empty()) {
        check_source(s.zeroshot, "eval.zeroshot");
        const size_t names = string_list(s.classes).size();
        AC_CHECK_HINT(names > 0, "check eval.classes", s.classes, ": no class names");
        const std::vector<std::string> templates = string_list(s.templates);
        AC_CHECK_HINT(!templates.empty(), "check eval.templates", s.templates, ": no templates");
        for (const std::string& tpl : templates) check_template(tpl, s.templates + ": ");
        if (is_class_folders(s.zeroshot)) {
            size_t folders = 0;
            for (const auto& e : std::filesystem::directory_iterator(s.zeroshot)) folders += e.is_directory();
            AC_CHECK_HINT(folders == names, "give the folder of one subfolder per class, in the names' order",
                          "eval.zeroshot = ", s.zeroshot, " has ", folders,
                          " class folders but eval.classes (", s.classes, ") names ", names, " classes");
        }
    }
    if (!s.retrieval.empty()) check_source(s.retrieval, "eval.retrieval");
}

std::string eval_summary(const EvalResult& r, bool detailed) {
    const int digits = detailed ? 2 : 1;
    auto pct = [&](double v) {
        char b[32];
        std::snprintf(b, sizeof b, "%.*f%%", digits, 100 * v);
        return std::string(b);
    };
    std::vector<std::string> parts;
    if (r.top1 >= 0)
        parts.push_back("zero-shot top-1 " + pct(r.top1) + " top-5 " + pct(r.top5) + " (" +
                        std::to_string(r.zeroshot_images) + " images, " + std::to_string(r.classes) +
                        " classes)");
    if (r.i2t_r1 >= 0)
        parts.push_back(
            detailed ? "retrieval image->text R@1 " + pct(r.i2t_r1) + " R@5 " + pct(r.i2t_r5) + " R@10 " +
                           pct(r.i2t_r10) + ", text->image R@1 " + pct(r.t2i_r1) + " R@5 " + pct(r.t2i_r5) +
                           " R@10 " + pct(r.t2i_r10) + " (" + std::to_string(r.retrieval_images) + " images)"
                     : "retrieval R@1 image->text " + pct(r.i2t_r1) + " text->image " + pct(r.t2i_r1) + " (" +
                           std::to_string(r.retrieval_images) + " images)");
    if (r.skipped_images) parts.push_back(std::to_string(r.skipped_images) + " unreadable images skipped");
    std::string line;
    for (const std::string& p : parts) line += (line.empty() ? "" : " | ") + p;
    return line;
}

namespace {

// Images [lo, hi) embedded by every tower, side by side, and a last column that is 1 where the image
// decoded: (hi - lo, towers * E + 1). One that cannot be decoded is skipped with a warning, as the loader
// skips one, and the column tells every rank.
Tensor embed_images(const std::vector<Embedder>& towers, const std::vector<std::string>& images,
                    const std::vector<std::string>& keys, int64_t lo, int64_t hi, const EvalSettings& s,
                    Device device) {
    std::vector<std::string> errors;
    const Tensor decoded = decode_for_eval(images, lo, hi - lo, s.transform, s.workers, &errors);
    std::vector<float> decoded_ok;
    for (int64_t i = lo; i < hi; ++i) {
        const std::string& why = errors[static_cast<size_t>(i - lo)];
        if (!why.empty())
            std::fprintf(stderr, "warning: evaluation skips %s: %s\n", keys[static_cast<size_t>(i)].c_str(),
                         why.c_str());
        decoded_ok.push_back(why.empty() ? 1.0f : 0.0f);
    }
    std::vector<Tensor> columns;
    for (const Embedder& e : towers) columns.push_back(e.images(decoded));
    columns.push_back(from_vector(decoded_ok, {hi - lo, 1}).to(device));
    return concat(columns, 1);
}

}  // namespace

EvalResults evaluate(Aclip& model, const ClipTokenizer& tok, const EvalSettings& s, Comm& comm,
                     const EvalProgress& progress) {
    NoGradGuard no_grad;
    std::vector<Embedder> towers = {Embedder(model, false, tok, s)};
    if (model.ema) towers.emplace_back(model, true, tok, s);
    const int64_t E = model.clip.visual.cfg.embed_dim, W = E * static_cast<int64_t>(towers.size());
    const Device device = model.clip.logit_scale.device();
    // Every tower's embeddings of the same rows side by side, (rows, towers * E); the images of a batch
    // are decoded once for all towers.
    auto side_by_side = [](const std::vector<Tensor>& per_tower) { return concat(per_tower, 1); };
    auto tower = [&](const Tensor& rows, size_t t) {
        return rows.narrow(1, static_cast<int64_t>(t) * E, E).contiguous();  // (rows, E)
    };
    // A rank reads and embeds the images of its batches only (their bytes are empty elsewhere).
    const KeepImage mine = [&](int64_t row) { return owns_row(row, s.batch_size, comm); };
    const std::vector<Sample> zeroshot =
        s.zeroshot.empty() ? std::vector<Sample>() : read_samples(s.zeroshot, mine);
    const std::vector<Sample> retrieval =
        s.retrieval.empty() ? std::vector<Sample>() : read_samples(s.retrieval, mine);
    int64_t embedded = 0, to_embed = 0;  // this rank's images, for the progress report
    for (const std::vector<Sample>* set : {&zeroshot, &retrieval})
        for (int64_t i = 0; i < static_cast<int64_t>(set->size()); ++i) to_embed += mine(i);
    auto image_rows = [&](const std::vector<std::string>& images, const std::vector<std::string>& keys) {
        return rows_across_ranks(static_cast<int64_t>(images.size()), s.batch_size, W + 1, device, comm,
                                 [&](int64_t lo, int64_t hi) {
                                     const Tensor rows =
                                         embed_images(towers, images, keys, lo, hi, s, device);
                                     embedded += hi - lo;
                                     if (progress) progress(embedded, to_embed);
                                     return rows;
                                 });
    };
    auto decoded_rows = [&](const Tensor& rows) {  // the indices of the images that decoded
        std::vector<int64_t> kept;
        const std::vector<float> ok = rows.narrow(1, W, 1).contiguous().to_vector<float>();
        for (size_t i = 0; i < ok.size(); ++i)
            if (ok[i] > 0.5f) kept.push_back(static_cast<int64_t>(i));
        return kept;
    };
    auto rows_at = [&](const Tensor& rows, const std::vector<int64_t>& at) {
        if (static_cast<int64_t>(at.size()) == rows.size(0)) return rows;
        return index_select(rows, 0, from_vector(at, {static_cast<int64_t>(at.size())}).to(device));
    };
    auto text_rows = [&](const std::vector<std::string>& texts) {
        return rows_across_ranks(
            static_cast<int64_t>(texts.size()), s.batch_size, W, device, comm, [&](int64_t lo, int64_t hi) {
                const std::vector<std::string> part(texts.begin() + lo, texts.begin() + hi);
                std::vector<Tensor> per_tower;
                for (const Embedder& e : towers) per_tower.push_back(e.texts(part));
                return side_by_side(per_tower);
            });
    };
    std::vector<EvalResult> results(towers.size());
    int64_t skipped = 0;  // images that could not be decoded
    if (!s.zeroshot.empty()) {
        const std::vector<std::string> classes = string_list(s.classes), templates = string_list(s.templates);
        AC_CHECK_HINT(!classes.empty() && !templates.empty(), "check eval.classes and eval.templates",
                      "zero-shot needs class names and templates: ", s.classes, " names ", classes.size(),
                      ", ", s.templates, " holds ", templates.size());
        // classes shared in chunks whose prompts fill about a batch
        const int64_t classes_a_chunk =
            std::max<int64_t>(1, s.batch_size / static_cast<int64_t>(templates.size()));
        const Tensor text = rows_across_ranks(static_cast<int64_t>(classes.size()), classes_a_chunk, W,
                                              device, comm, [&](int64_t lo, int64_t hi) {
                                                  const std::vector<std::string> part(classes.begin() + lo,
                                                                                      classes.begin() + hi);
                                                  std::vector<Tensor> per_tower;
                                                  for (const Embedder& e : towers)
                                                      per_tower.push_back(e.classifier(part, templates));
                                                  return side_by_side(per_tower);
                                              });  // (K, towers * E)
        std::vector<std::string> images, keys;
        std::vector<std::vector<int64_t>> all_labels, labels;
        for (const Sample& smp : zeroshot) {
            AC_CHECK(smp.files.count("cls"), "zero-shot sample '", smp.key, "' has no .cls");
            const std::optional<int64_t> parsed = parse_int64(smp.files.at("cls"));
            AC_CHECK_HINT(parsed, "a zero-shot sample's .cls holds its class index, 0 .. classes - 1",
                          "zero-shot sample '", smp.key, "': .cls '", smp.files.at("cls"),
                          "' is not an integer");
            const int64_t label = *parsed;
            AC_CHECK_HINT(label >= 0 && label < static_cast<int64_t>(classes.size()),
                          "eval.classes must name every class of the zero-shot set", "zero-shot sample '",
                          smp.key, "' is of class ", label, " but ", s.classes, " names ", classes.size(),
                          " classes");
            images.push_back(image_bytes(smp));
            keys.push_back(smp.key);
            all_labels.push_back({label});
        }
        const Tensor rows = image_rows(images, keys);  // (N, towers * E + 1)
        const std::vector<int64_t> kept = decoded_rows(rows);
        for (int64_t i : kept) labels.push_back(all_labels[static_cast<size_t>(i)]);
        const Tensor img = rows_at(rows, kept);
        skipped += static_cast<int64_t>(images.size() - kept.size());
        for (size_t t = 0; t < towers.size(); ++t) {
            Tensor scores = matmul(tower(img, t), tower(text, t).transpose(0, 1));  // (N, K)
            results[t].top1 = recall_at(scores, labels, 1);
            results[t].top5 = recall_at(scores, labels, 5);
            results[t].zeroshot_images = static_cast<int64_t>(kept.size());
            results[t].classes = static_cast<int64_t>(classes.size());
        }
    }
    if (!s.retrieval.empty()) {
        std::vector<std::string> images, keys, captions;
        std::vector<std::vector<std::string>> captions_of;  // per image
        for (const Sample& smp : retrieval) {
            AC_CHECK(smp.files.count("json"), "retrieval sample '", smp.key, "' has no .json");
            JsonValue v = json_parse(smp.files.at("json"), smp.key + ".json");
            const JsonValue* list = v.find("captions");
            AC_CHECK(list && list->kind == JsonValue::Kind::Array && !list->array.empty(), smp.key,
                     ".json: expected {\"captions\": [...]}");
            captions_of.emplace_back();
            for (const JsonValue& c : list->array) {
                AC_CHECK(c.kind == JsonValue::Kind::String, smp.key, ".json: a caption that is not a string");
                captions_of.back().push_back(c.string);
            }
            images.push_back(image_bytes(smp));
            keys.push_back(smp.key);
        }
        const Tensor rows = image_rows(images, keys);
        const std::vector<int64_t> kept = decoded_rows(rows);  // a skipped image's captions are left out too
        skipped += static_cast<int64_t>(images.size() - kept.size());
        std::vector<std::vector<int64_t>> image_captions, caption_image;
        for (int64_t i : kept) {
            image_captions.emplace_back();
            for (const std::string& c : captions_of[static_cast<size_t>(i)]) {
                image_captions.back().push_back(static_cast<int64_t>(captions.size()));
                caption_image.push_back({static_cast<int64_t>(image_captions.size()) - 1});
                captions.push_back(c);
            }
        }
        const Tensor img = rows_at(rows, kept), txt = text_rows(captions);
        for (size_t t = 0; t < towers.size(); ++t) {
            EvalResult& r = results[t];
            Tensor i = tower(img, t), c = tower(txt, t);
            Tensor i2t = matmul(i, c.transpose(0, 1)), t2i = matmul(c, i.transpose(0, 1));
            r.i2t_r1 = recall_at(i2t, image_captions, 1);
            r.i2t_r5 = recall_at(i2t, image_captions, 5);
            r.i2t_r10 = recall_at(i2t, image_captions, 10);
            r.t2i_r1 = recall_at(t2i, caption_image, 1);
            r.t2i_r5 = recall_at(t2i, caption_image, 5);
            r.t2i_r10 = recall_at(t2i, caption_image, 10);
            r.retrieval_images = static_cast<int64_t>(kept.size());
        }
    }
    for (EvalResult& r : results) r.skipped_images = skipped;
    EvalResults out{results[0], std::nullopt};
    if (results.size() > 1) out.ema = results[1];
    return out;
}

}  // namespace aclip
