// aclip_eval: zero-shot classification and retrieval of a checkpoint, with its online and EMA weights.
//   aclip_eval --checkpoint runs/quickstart/step_00000600.model.safetensors [section.key=value ...]
// The model is rebuilt from the checkpoint alone; the evaluation data and tokenizer come from the run's
// config stored in the checkpoint (or --config FILE), with any key overridden on the command line. Under
// mpirun (or torchrun-style RANK / WORLD_SIZE on GPUs) the ranks share the evaluation sets; rank 0 prints.
#include <cstdio>
#include <string>

#include "engine/core/error.h"
#include "engine/dist/comm.h"
#include "train/cli.h"
#include "train/inference.h"
#include "train/progress.h"

using namespace aclip;

int main(int argc, char** argv) {
    std::string checkpoint, config_path;
    CommandLine cli("aclip_eval",
                    "Evaluates a checkpoint: zero-shot top-1/top-5 and retrieval R@1/5/10 (online and "
                    "EMA weights). Extra arguments section.key=value override the config.");
    cli.option("checkpoint", &checkpoint, "a NAME.model.safetensors file, or a run's folder (its newest)");
    cli.option("config", &config_path, "an INI config (default: the one stored in the checkpoint)");
    cli.parse(argc, argv);
    return run_program("aclip_eval", [&] {
        LoadedCheckpoint c = load_checkpoint(checkpoint, config_path, cli.positional, /*to_device=*/false);
        const Device device = training_device(c.cfg);
        std::unique_ptr<Comm> comm = make_comm_from_environment(device);  // picks this rank's GPU
        Aclip& model = *c.model;
        if (device == Device::CUDA) model.to(Device::CUDA);
        const EvalSettings& es = c.settings;
        AC_CHECK_HINT(!es.zeroshot.empty() || !es.retrieval.empty(), "set eval.zeroshot or eval.retrieval",
                      "nothing to evaluate");
        OnDemandProgressBar images;  // rank 0's share, on a terminal
        const EvalResults results =
            evaluate(model, *c.tokenizer, es, *comm, [&](int64_t done, int64_t total) {
                if (comm->rank() == 0) images.update(done, total);
            });
        images.reset();
        for (bool ema : {false, true}) {
            if (comm->rank() != 0) break;  // rank 0 prints
            if (ema && !results.ema) continue;
            const EvalResult& r = ema ? *results.ema : results.online;
            std::printf("%-6s | %s\n", ema ? "ema" : "online", eval_summary(r, true).c_str());
        }
        return 0;
    });
}
