// evaluate.h: zero-shot classification and image-text retrieval (data-and-eval.md, aclip-method.md 8),
// for the online or the EMA weights of a model. Zero-shot: each class's prompts ("a photo of a {}.")
// are encoded, normalised, averaged and normalised again; images are assigned to the most similar
// class (top-1, top-5). Retrieval: recall at 1, 5 and 10 of image->text (any of the image's captions)
// and text->image.
#pragma once
#include <string>

#include "data/augment.h"
#include "data/tokenizer.h"
#include "models/aclip.h"

namespace aclip {

struct EvalSettings {
    // zeroshot: shards of KEY.jpg + KEY.cls, or an ImageNet-style folder DIR/<class>/<image> (classes in
    // sorted order); retrieval: shards of KEY.jpg + KEY.json {"captions"}, or a Karpathy-split JSON
    // (Flickr30K, COCO: its "test" images). classes, templates: JSON files. Empty: skip.
    std::string zeroshot, classes, templates, retrieval;
    int64_t batch_size = 64;
    int64_t context = 77;
    Truncate truncate = Truncate::Eot;
    TransformConfig transform;  // size, mean, std
};

struct EvalResult {
    double top1 = -1, top5 = -1;  // zero-shot, fractions
    double i2t_r1 = -1, i2t_r5 = -1, i2t_r10 = -1, t2i_r1 = -1, t2i_r5 = -1, t2i_r10 = -1;  // retrieval
    int64_t zeroshot_images = 0, retrieval_images = 0, classes = 0;
};

EvalResult evaluate(Aclip& model, bool use_ema, const ClipTokenizer& tokenizer, const EvalSettings& settings);

}  // namespace aclip
