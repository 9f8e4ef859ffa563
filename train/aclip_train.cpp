// aclip_train: trains A-CLIP (or a baseline of its ablations) from an INI config.
//   aclip_train configs/quickstart.ini [section.key=value ...] [--resume latest|PATH]
//   aclip_train --help      every config key, with its default and what it does
#include <cstdio>
#include <cstring>
#include <string>

#include "train/cli.h"
#include "train/trainer.h"

using namespace aclip;

int main(int argc, char** argv) {
    std::string config_path, resume;
    bool force_schedule = false;
    std::vector<std::string> overrides;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--help" || a == "-h") {
            std::printf(
                "usage: aclip_train CONFIG.ini [section.key=value ...] [--resume latest|PATH] "
                "[--force-schedule]\n"
                "Trains A-CLIP. The config keys, their defaults and meaning:\n%s",
                Config::help().c_str());
            return 0;
        }
        if (a == "--force-schedule") {
            force_schedule = true;
        } else if (a == "--resume") {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "aclip_train: --resume needs 'latest' or a checkpoint path\n");
                return 2;
            }
            resume = argv[++i];
        } else if (a.find('=') != std::string::npos) {
            overrides.push_back(a);
        } else if (config_path.empty()) {
            config_path = a;
        } else {
            std::fprintf(stderr, "aclip_train: unexpected argument '%s' (see --help)\n", a.c_str());
            return 2;
        }
    }
    if (config_path.empty()) {
        std::fprintf(stderr,
                     "usage: aclip_train CONFIG.ini [section.key=value ...] [--resume latest|PATH] "
                     "[--force-schedule]\n");
        return 2;
    }
    return run_program("aclip_train", [&] {
        Config cfg;
        cfg.load_file(config_path);
        for (const std::string& o : overrides) cfg.set_override(o);
        TrainResult r = train(cfg, resume, force_schedule);
        return r.interrupted ? 130 : 0;
    });
}
