// loader.h: the training data loader. It streams this rank's shards (shuffled per epoch from the seed),
// passes samples through a seeded shuffle buffer, and decodes, augments and tokenizes them on worker
// threads, assembling batches in stream order so the batches never depend on thread timing. A cursor
// (epoch, position in this rank's stream) is all a checkpoint needs: a loader started from it yields
// exactly the batches an uninterrupted run would have. Bad samples (undecodable image, missing caption,
// truncated shard) are skipped, counted and named in one warning each.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "data/augment.h"
#include "data/shards.h"
#include "data/tokenizer.h"
#include "engine/core/tensor.h"

namespace aclip {

enum class CaptionSource { Txt, SlipJson };  // KEY.txt, or a coin flip of KEY.json's title / description
CaptionSource caption_source_from_name(const std::string& name);  // "txt" or "slip_json"

// A sample's caption. Txt: its .txt member. SlipJson: as SLIP reads YFCC-15M, the title or the
// description with probability 1/2 each (one draw of rng), an empty one included; from the "title" and
// "description" strings of its .json member, or from members .title.txt and .desc.txt. A sample with
// neither is an error naming what is missing (a JSON without those keys, as img2dataset's, must not
// turn every caption into an empty one).
std::string sample_caption(const std::map<std::string, std::string>& files, CaptionSource source,
                           SampleRng& rng);

struct LoaderConfig {
    std::string shards;  // a shard list: "/data/{00000..01535}.tar"
    int64_t batch_size = 64;
    int workers = 4;
    int64_t prefetch_batches = 2;
    int64_t shuffle_buffer = 1000;
    uint64_t seed = 0;
    int rank = 0, world = 1;
    // false: each rank reads its own shards (efficient). true: every rank reads every shard and takes
    // rows [rank * B, (rank + 1) * B) of each global batch of world * B, so the global batches do not
    // depend on the number of ranks (exact data-parallel equivalence; each rank decodes everything).
    bool split_batches = false;
    CaptionSource captions = CaptionSource::Txt;
    int64_t context = 77;
    Truncate truncate = Truncate::Eot;
    TransformConfig transform;
    bool pin_memory = false;  // batches in page-locked memory (when a GPU is present): for GPU training
};

// The samples in one epoch of this rank's stream, from the shards' sizes (sizes.json, or counted once and
// written there): the whole set when split_batches, else this rank's share.
int64_t epoch_samples(const LoaderConfig& cfg);

// Optimizer steps in an epoch of `samples` (epoch_samples), each taking `accumulate` batches (a partial
// last batch is dropped). The same on every rank: how "N epochs" in a config becomes steps.
int64_t steps_per_epoch(const LoaderConfig& cfg, int64_t samples, int64_t accumulate);

struct Batch {
    Tensor view1, view2, ema_view;  // (B, 3, S, S) u8 each: normalize_images makes the model's input
    Tensor boxes;                   // (B, 3, 4) i64: view 1, view 2, EMA crop in original pixels
    Tensor text;                    // (B, C) i64
    std::vector<std::string> keys;  // "shard.tar:key" of each row
    int64_t epoch = 0;
};

struct LoaderCursor {
    int64_t epoch = 0;
    int64_t position = 0;  // samples of this rank's epoch stream consumed by delivered batches
};

struct LoaderStats {
    int64_t samples = 0;           // delivered in batches
    int64_t skipped_samples = 0;   // bad image or caption
    int64_t truncated_shards = 0;  // shards that ended early (the rest of each is skipped)
    double wait_seconds = 0;       // time next() spent waiting for workers
};

class Loader {
  public:
    Loader(const LoaderConfig& cfg, const ClipTokenizer& tokenizer, LoaderCursor start = {});
    ~Loader();
    Loader(const Loader&) = delete;
    Loader& operator=(const Loader&) = delete;

    Batch next();  // the next full batch; epochs roll over (the last partial batch is dropped)
    LoaderCursor cursor() const { return cursor_; }  // where a resumed loader must start
    LoaderStats stats() const;

  private:
    struct Work;
    struct Result;
    void produce();
    void work();
    Result process(const Work& w) const;

    LoaderConfig cfg_;
    const ClipTokenizer& tokenizer_;
    std::vector<std::string> shards_;
    LoaderCursor cursor_;
    bool usable_this_epoch_ = false;  // a whole epoch without one usable sample is an error, not a hang

    mutable std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<Work> queue_;              // samples waiting for a worker, in stream order
    std::map<uint64_t, Result> results_;  // processed samples by sequence number
    uint64_t next_seq_ = 0;               // the sequence number the assembler needs next
    bool stop_ = false;
    LoaderStats stats_;
    std::vector<std::thread> threads_;
};

}  // namespace aclip
