// aclip_eval: zero-shot classification and retrieval of a checkpoint, with its online and EMA weights.
//   aclip_eval --checkpoint runs/quickstart/step_00000600.model.safetensors [section.key=value ...]
// The model is rebuilt from the checkpoint alone; the evaluation data and tokenizer come from the run's
// config stored in the checkpoint (or --config FILE), with any key overridden on the command line.
#include <cstdio>
#include <string>

#include "engine/core/error.h"
#include "train/cli.h"
#include "train/inference.h"

using namespace aclip;

int main(int argc, char** argv) {
    std::string checkpoint, config_path;
    CommandLine cli("aclip_eval",
                    "Evaluates a checkpoint: zero-shot top-1/top-5 and retrieval R@1/5/10 (online and "
                    "EMA weights). Extra arguments section.key=value override the config.");
    cli.option("checkpoint", &checkpoint, "a NAME.model.safetensors file");
    cli.option("config", &config_path, "an INI config (default: the one stored in the checkpoint)");
    cli.parse(argc, argv);
    try {
        LoadedCheckpoint c = load_checkpoint(checkpoint, config_path, cli.positional);
        Aclip& model = *c.model;
        const EvalSettings& es = c.settings;
        AC_CHECK_HINT(!es.zeroshot.empty() || !es.retrieval.empty(), "set eval.zeroshot or eval.retrieval",
                      "nothing to evaluate");
        LocalComm one;
        const EvalResults results = evaluate(model, *c.tokenizer, es, one);
        for (bool ema : {false, true}) {
            if (ema && !results.ema) continue;
            const EvalResult& r = ema ? *results.ema : results.online;
            std::printf("%-6s | %s\n", ema ? "ema" : "online", eval_summary(r, true).c_str());
        }
    } catch (const Error& e) {
        std::fprintf(stderr, "aclip_eval: %s\n", e.what());
        return 1;
    }
    return 0;
}
