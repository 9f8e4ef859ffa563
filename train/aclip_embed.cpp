// aclip_embed: L2-normalised image and text embeddings of a checkpoint, for search, clustering or any
// downstream use.
//   aclip_embed --checkpoint M [--weights online|ema] --images a.jpg b.png ... --texts captions.txt
//               --out embeddings.safetensors [--npy]
// The output holds image_embeds (N, E) and text_embeds (M, E), f32, in input order, with the file names
// and texts in its metadata (JSON lists); --npy also writes OUT-stem.image_embeds.npy and
// .text_embeds.npy. Texts: one per line (UTF-8). Images: JPEG, PNG and the formats stb_image reads,
// resized and centre-cropped as for evaluation.
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "data/tokenizer.h"
#include "engine/core/error.h"
#include "engine/io/files.h"
#include "engine/io/json_lite.h"
#include "engine/io/npy.h"
#include "engine/io/safetensors.h"
#include "train/cli.h"
#include "train/inference.h"
#include "train/progress.h"

using namespace aclip;

namespace {

std::vector<std::string> read_lines(const std::string& path) {
    std::ifstream in = open_for_reading(path, "give --texts a text file with one caption per line");
    std::vector<std::string> lines;
    std::string line;
    while (std::getline(in, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        lines.push_back(line);
    }
    return lines;
}

}  // namespace

int main(int argc, char** argv) {
    std::string checkpoint, config_path, weights = "online", texts_path, out;
    std::vector<std::string> images;
    bool npy = false;
    CommandLine cli("aclip_embed",
                    "Writes L2-normalised image and text embeddings of a checkpoint as safetensors. Extra "
                    "arguments section.key=value override the config (eval.batch_size, ...).");
    cli.option("checkpoint", &checkpoint, "a NAME.model.safetensors file, or a run's folder (its newest)");
    cli.option("config", &config_path, "an INI config (default: the one stored in the checkpoint)");
    cli.option("weights", &weights, "online or ema");
    cli.list("images", &images, "image files");
    cli.option("texts", &texts_path, "a text file, one text per line");
    cli.option("out", &out, "the output .safetensors file");
    cli.flag("npy", &npy, "also write the embeddings as .npy files beside the output");
    cli.parse(argc, argv);
    return run_program("aclip_embed", [&] {
        AC_CHECK_HINT(!out.empty(), "pass --out FILE.safetensors", "no output file");
        AC_CHECK_HINT(weights == "online" || weights == "ema", "use --weights online or --weights ema",
                      "--weights '", weights, "' is not online or ema");
        AC_CHECK_HINT(!images.empty() || !texts_path.empty(), "pass --images FILES and/or --texts FILE",
                      "nothing to embed");
        check_can_write(out);  // before the work, not after it
        LoadedCheckpoint c = load_checkpoint(checkpoint, config_path, cli.positional);
        Embedder embed(*c.model, weights == "ema", *c.tokenizer, c.settings);
        std::vector<std::string> texts =
            texts_path.empty() ? std::vector<std::string>{} : read_lines(texts_path);
        AC_CHECK_HINT(texts_path.empty() || !texts.empty(), "give a file of one text per line", "--texts ",
                      texts_path, " holds no lines");
        const int64_t N = static_cast<int64_t>(images.size()), M = static_cast<int64_t>(texts.size());
        ProgressBar bar(N + M);
        std::vector<std::string> image_bytes;
        for (const std::string& path : images) image_bytes.push_back(read_maybe_gzipped(path));
        Tensor image_embeds = embed.images(
            image_bytes, [&](int64_t done) { bar.update(done); }, images);
        Tensor text_embeds = embed.texts(texts, [&](int64_t done) { bar.update(N + done); });
        bar.clear();
        std::vector<std::pair<std::string, Tensor>> tensors;
        if (N) tensors.emplace_back("image_embeds", image_embeds);
        if (M) tensors.emplace_back("text_embeds", text_embeds);
        save_safetensors(out, tensors,
                         {{"images", json_string_list(images)},
                          {"texts", json_string_list(texts)},
                          {"weights", weights},
                          {"checkpoint", checkpoint}});
        std::printf("wrote %s: %lld image and %lld text embeddings of dimension %lld\n", out.c_str(),
                    static_cast<long long>(N), static_cast<long long>(M),
                    static_cast<long long>(c.acfg.clip.vision.embed_dim));
        if (npy) {
            const std::string stem = out.size() > 12 && out.substr(out.size() - 12) == ".safetensors"
                                         ? out.substr(0, out.size() - 12)
                                         : out;
            for (const auto& [name, t] : tensors) {
                save_npy(stem + "." + name + ".npy", t);
                std::printf("wrote %s.%s.npy\n", stem.c_str(), name.c_str());
            }
        }
        return 0;
    });
}
