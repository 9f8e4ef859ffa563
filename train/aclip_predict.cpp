// aclip_predict: zero-shot classification of one image by a checkpoint.
//   aclip_predict --checkpoint M --image cat.jpg --labels "cat,dog,red circle" [--templates T.json]
// Each label becomes prompts (each template with {} replaced by the label; default "a photo of a {}.",
// or a list of a JSON file, SLIP's templates.json#imagenet say), embedded, averaged and normalised;
// the probabilities are the softmax of the model's logit scale times the cosine similarities. Prints a
// table, most probable first.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include "data/tokenizer.h"
#include "engine/autograd/grad_mode.h"
#include "engine/core/error.h"
#include "engine/ops/ops.h"
#include "train/cli.h"
#include "train/inference.h"

using namespace aclip;

namespace {

std::vector<std::string> split_labels(const std::string& s) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start <= s.size()) {
        size_t end = s.find(',', start);
        if (end == std::string::npos) end = s.size();
        std::string label = s.substr(start, end - start);
        label.erase(0, label.find_first_not_of(' '));
        label.erase(label.find_last_not_of(' ') + 1);
        if (!label.empty()) out.push_back(label);
        start = end + 1;
    }
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    std::string checkpoint, config_path, image, labels, templates_path, weights = "online";
    CommandLine cli("aclip_predict", "Zero-shot probabilities of labels for one image, as a table.");
    cli.option("checkpoint", &checkpoint, "a NAME.model.safetensors file, or a run's folder (its newest)");
    cli.option("config", &config_path, "an INI config (default: the one stored in the checkpoint)");
    cli.option("image", &image, "the image file");
    cli.option("labels", &labels, "comma-separated class names");
    cli.option("templates", &templates_path,
               "JSON {name: [\"a photo of a {}.\", ...]}, FILE#name to pick a list (default: one template)");
    cli.option("weights", &weights, "online or ema");
    cli.parse(argc, argv);
    return run_program("aclip_predict", [&] {
        AC_CHECK_HINT(!image.empty(), "pass --image FILE", "no image given");
        std::vector<std::string> names = split_labels(labels);
        AC_CHECK_HINT(names.size() >= 2, "pass --labels \"cat,dog,...\"", "need at least two labels, got ",
                      names.size());
        AC_CHECK_HINT(weights == "online" || weights == "ema", "use --weights online or --weights ema",
                      "--weights '", weights, "' is not online or ema");
        std::vector<std::string> templates = templates_path.empty()
                                                 ? std::vector<std::string>{"a photo of a {}."}
                                                 : string_list(templates_path);
        LoadedCheckpoint c = load_checkpoint(checkpoint, config_path, cli.positional);
        Embedder embed(*c.model, weights == "ema", *c.tokenizer, c.settings);
        NoGradGuard no_grad;
        Tensor classes = embed.classifier(names, templates);                  // (K, E)
        Tensor img = embed.images({read_maybe_gzipped(image)}, {}, {image});  // (1, E)
        const double scale = std::exp(c.model->clip.logit_scale.item());
        std::vector<double> p = softmax(mul_scalar(matmul(img, classes.transpose(0, 1)), scale), -1)
                                    .to_vector<double>();  // (1, K)
        std::vector<size_t> order(names.size());
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return p[a] > p[b]; });
        size_t width = 5;
        for (const std::string& n : names) width = std::max(width, n.size());
        std::printf("%-*s  %s\n", static_cast<int>(width), "label", "probability");
        for (size_t i : order)
            std::printf("%-*s  %10.2f%%\n", static_cast<int>(width), names[i].c_str(), 100 * p[i]);
        return 0;
    });
}
