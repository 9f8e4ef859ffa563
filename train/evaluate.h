// evaluate.h: zero-shot classification and image-text retrieval (data-and-eval.md, aclip-method.md 8),
// for the online or the EMA weights of a model. Zero-shot: each class's prompts ("a photo of a {}.")
// are encoded, normalised, averaged and normalised again; images are assigned to the most similar
// class (top-1, top-5). Retrieval: recall at 1, 5 and 10 of image->text (any of the image's captions)
// and text->image.
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "data/augment.h"
#include "data/tokenizer.h"
#include "engine/dist/comm.h"
#include "models/aclip.h"

namespace aclip {

struct EvalSettings {
    // zeroshot: shards of KEY.jpg + KEY.cls, or an ImageNet-style folder DIR/<class>/<image> (classes in
    // sorted order); retrieval: shards of KEY.jpg + KEY.json {"captions"}, or a Karpathy-split JSON
    // (Flickr30K, COCO: its "test" images). classes, templates: JSON files. Empty: skip.
    std::string zeroshot, classes, templates, retrieval;
    int64_t batch_size = 64;
    int workers = 1;               // threads decoding the images of a batch
    bool mixed_precision = false;  // bf16 products, as under train.precision = bf16 (the official code
                                   // evaluates under autocast too)
    int64_t context = 77;
    Truncate truncate = Truncate::Eot;
    TransformConfig transform;  // size, mean, std
};

struct EvalResult {
    double top1 = -1, top5 = -1;  // zero-shot, fractions
    double i2t_r1 = -1, i2t_r5 = -1, i2t_r10 = -1, t2i_r1 = -1, t2i_r5 = -1, t2i_r10 = -1;  // retrieval
    int64_t zeroshot_images = 0, retrieval_images = 0, classes = 0;  // images that were evaluated
    int64_t skipped_images = 0;  // could not be decoded (warned about, as the loader does), both sets
};

// Checks, without reading images, that the evaluation inputs a run will need are there: the class and
// template lists parse and are not empty, and each source exists (a folder, a JSON file, or every shard of
// a list). A run checks at its start, so that a typo is not found an epoch later.
void check_eval_inputs(const EvalSettings& settings);

// One line of what was measured: "zero-shot top-1 ... | retrieval R@1 image->text ..." (a set that was not
// evaluated is left out). detailed: R@1/5/10 both ways and two decimals (aclip_eval), else R@1 (the log).
std::string eval_summary(const EvalResult& r, bool detailed);

struct EvalResults {
    EvalResult online;
    std::optional<EvalResult> ema;  // when the model has an EMA teacher
};

// Evaluates the online weights and the EMA teacher's, decoding each image once for both; an image that
// cannot be decoded is skipped with a warning (a retrieval image with its captions) and counted. Every rank
// of comm must call it: each embeds its share of the images and texts (whole batches, so the embeddings are
// bitwise those of one rank), and every rank receives the results of the whole set.
// progress(done, total), if given, after each batch: this rank's images embedded so far, of its total.
using EvalProgress = std::function<void(int64_t done, int64_t total)>;
EvalResults evaluate(Aclip& model, const ClipTokenizer& tokenizer, const EvalSettings& settings, Comm& comm,
                     const EvalProgress& progress = {});

// The images [begin, begin + n) decoded and transformed for evaluation (resize, centre crop), on
// `workers` threads: (n, 3, S, S) u8. A bad image is an error naming it (names[i], its file, where names
// are given; else its index); when `errors` is given, it gets one entry per image instead (why it failed;
// "" when decoded) and a failed image's pixels are 0.
Tensor decode_for_eval(const std::vector<std::string>& image_bytes, int64_t begin, int64_t n,
                       const TransformConfig& transform, int workers,
                       std::vector<std::string>* errors = nullptr,
                       const std::vector<std::string>& names = {});

// L2-normalised embeddings from a model's online towers or its EMA teacher (whose text side is the
// online text transformer's embedding with the EMA blocks and projection), batched by
// settings.batch_size, on the model's device. Used by evaluate(), aclip_embed and aclip_predict.
class Embedder {
  public:
    using ProgressFn = std::function<void(int64_t done)>;  // called after each batch
    Embedder(Aclip& model, bool use_ema, const ClipTokenizer& tokenizer, const EvalSettings& settings);
    // (N, E); a bad image is an error naming it by names[i] (its file) where given
    Tensor images(const std::vector<std::string>& image_bytes, const ProgressFn& progress = {},
                  const std::vector<std::string>& names = {}) const;
    Tensor images(const Tensor& decoded) const;  // (n, 3, S, S) u8 from decode_for_eval -> (n, E)
    Tensor texts(const std::vector<std::string>& texts, const ProgressFn& progress = {}) const;  // (M, E)
    // (K, E): per class, its prompts (each template with {} replaced by the class name) embedded,
    // averaged and normalised again.
    Tensor classifier(const std::vector<std::string>& classes,
                      const std::vector<std::string>& templates) const;

  private:
    const TextTransformer* text_;
    Device device_;
    const ClipTokenizer& tokenizer_;
    const EvalSettings& settings_;
    const VisionTransformer* visual_ = nullptr;
    const Transformer* blocks_ = nullptr;  // EMA blocks, or null for the online ones
    const Tensor* projection_ = nullptr;   // EMA text projection, or null
};

// A list of strings from a JSON object {name: [strings], ...}: "FILE.json" when it holds one list,
// "FILE.json#name" to pick one (SLIP's labels.json and templates.json hold one a dataset: FILE#imagenet).
std::vector<std::string> string_list(const std::string& spec);

}  // namespace aclip
