// small_run.h: the small synthetic training set and the tiny run that the trainer's tests share (the CPU
// ones in test_trainer.cpp, the GPU ones in tests/cuda/test_cuda_train.cpp): 80 rendered scenes in two
// shards with a BPE learnt from their captions, written once per test process.
#pragma once
#include <unistd.h>

#include <filesystem>
#include <string>

#include "data/bpe_train.h"
#include "data/image.h"
#include "data/shards.h"
#include "data/synthetic.h"
#include "engine/io/safetensors.h"
#include "test_util.h"
#include "train/config.h"
#include "train/run_state.h"
#include "train/trainer.h"

namespace aclip::test {

// The set's folder: train/{00000..00001}.tar (40 samples each, 32 px) and bpe.txt.
inline const std::string& small_set_dir() {
    static const std::string dir = [] {
        namespace fs = std::filesystem;
        std::string d = fs::temp_directory_path().string() + "/aclip_trainer_" + std::to_string(getpid());
        fs::remove_all(d);
        ShardSetWriter w(d + "/train", 40, "test");
        std::vector<std::string> captions;
        for (uint64_t i = 0; i < 80; ++i) {
            Scene s = render_scene(0, i, 32);
            w.write({"k" + std::to_string(i), {{"jpg", encode_jpeg(s.image)}, {"txt", s.captions[0]}}});
            captions.push_back(s.captions[0]);
        }
        w.close();
        write_merges(d + "/bpe.txt", learn_bpe(captions, 200));
        return d;
    }();
    return dir;
}

// Six steps of 4 samples with the tiny model, a log line every 3 steps and a checkpoint every 3, into
// small_set_dir()/RUN.
inline Config tiny_run(const std::string& run) {
    const std::string& d = small_set_dir();
    Config c;
    for (const std::string& kv :
         {"data.train=" + d + "/train/{00000..00001}.tar", "tokenizer.merges=" + d + "/bpe.txt",
          std::string("tokenizer.context=16"), std::string("train.steps=6"),
          std::string("train.batch_size=4"), std::string("train.log_every=3"), std::string("data.workers=2"),
          std::string("data.shuffle_buffer=16"), std::string("optim.lr=1e-3"),
          std::string("optim.warmup_steps=2"), std::string("checkpoint.every=3"),
          std::string("checkpoint.keep=5"), "checkpoint.dir=" + d + "/" + run})
        c.set_override(kv);
    return c;
}

// Removes a checkpoint (its model and state files), as if the run had stopped before writing it.
inline void forget_checkpoint(const std::string& model_file) {
    std::filesystem::remove(model_file);
    std::filesystem::remove(state_file_of(model_file));
}

// Checks that the newest checkpoints of two runs hold the same tensors, bit for bit.
inline void check_same_last_checkpoint(const std::string& run_a, const std::string& run_b) {
    SafetensorsFile a = load_safetensors(list_checkpoints(small_set_dir() + "/" + run_a).back());
    SafetensorsFile b = load_safetensors(list_checkpoints(small_set_dir() + "/" + run_b).back());
    REQUIRE(a.tensors.size() == b.tensors.size());
    for (size_t i = 0; i < a.tensors.size(); ++i) {
        CAPTURE(a.tensors[i].first);
        CHECK(a.tensors[i].first == b.tensors[i].first);
        CHECK(a.tensors[i].second.to_vector<double>() == b.tensors[i].second.to_vector<double>());
    }
}

}  // namespace aclip::test
