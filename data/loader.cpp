// loader.cpp: see loader.h. Three roles: one producer thread reads shards and the shuffle buffer and
// numbers the samples; worker threads turn samples into views and token ids; next() takes results in
// number order. The producer runs at most a window of samples ahead of next(), which bounds memory. The
// threads catch every exception (std::bad_alloc from one sample too), since one escaping a thread aborts.
#include "data/loader.h"

#include <chrono>
#include <cstdio>
#include <cstring>

#include "engine/io/json_lite.h"

namespace aclip {

CaptionSource caption_source_from_name(const std::string& name) {
    if (name == "txt") return CaptionSource::Txt;
    if (name == "slip_json") return CaptionSource::SlipJson;
    AC_FAIL("unknown data.captions '", name, "'; accepted: txt, slip_json");
}

std::string sample_caption(const std::map<std::string, std::string>& files, CaptionSource source,
                           SampleRng& rng) {
    auto member = [&](const char* ext) -> const std::string* {
        auto it = files.find(ext);
        return it == files.end() ? nullptr : &it->second;
    };
    if (source == CaptionSource::Txt) {
        const std::string* txt = member("txt");
        AC_CHECK(txt, "missing caption (no .txt)");
        return *txt;
    }
    std::string title, description;
    if (const std::string* json = member("json")) {
        const JsonValue meta = json_parse(*json, "caption json");
        const JsonValue *t = meta.find("title"), *d = meta.find("description");
        AC_CHECK(t && d && t->kind == JsonValue::Kind::String && d->kind == JsonValue::Kind::String,
                 "data.captions = slip_json: the .json has no \"title\" and \"description\" strings");
        title = t->string;
        description = d->string;
    } else {
        const std::string *t = member("title.txt"), *d = member("desc.txt");
        AC_CHECK(t || d,
                 "data.captions = slip_json: no .json with a title and description, nor .title.txt or "
                 ".desc.txt");
        title = t ? *t : "";
        description = d ? *d : "";
    }
    return rng.coin(0.5) ? title : description;  // SLIP: either, an empty one included
}

struct Loader::Work {
    uint64_t seq = 0;
    int64_t epoch = 0, position = 0;
    bool end_of_epoch = false;
    std::string where;  // "shard.tar:key"
    Sample sample;
};

struct Loader::Result {
    int64_t epoch = 0, position = 0;
    bool end_of_epoch = false, ok = false;
    std::string where, error;
    AclipViews views;
    std::vector<int32_t> ids;
};

namespace {

uint64_t mix(uint64_t a, uint64_t b) {  // a seed for one (stream, purpose): splitmix-style
    uint64_t z = a * 0x9E3779B97F4A7C15ull + b + 0x632BE59BD9B4E019ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

std::string basename_of(const std::string& path) {
    size_t slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

int64_t epoch_samples(const LoaderConfig& cfg) {
    int64_t total = 0;
    for (int64_t n : shard_sizes(expand_shard_list(cfg.shards))) total += n;
    return cfg.split_batches ? total : total / cfg.world;  // shards rotate among ranks
}

int64_t steps_per_epoch(const LoaderConfig& cfg, int64_t samples, int64_t accumulate) {
    const int64_t batch = cfg.split_batches ? cfg.batch_size * cfg.world : cfg.batch_size;  // of the stream
    return samples / (batch * accumulate);
}

Loader::Loader(const LoaderConfig& cfg, const ClipTokenizer& tokenizer, LoaderCursor start)
    : cfg_(cfg),
      tokenizer_(tokenizer),
      cursor_(start),
      usable_this_epoch_(start.position > 0) {  // the samples before the cursor made whole batches
    reuse_large_buffers();
    AC_CHECK(cfg.batch_size > 0 && cfg.workers > 0 && cfg.shuffle_buffer >= 1,
             "Loader: batch_size, workers and "
             "shuffle_buffer must be positive");
    AC_CHECK(cfg.world >= 1 && cfg.rank >= 0 && cfg.rank < cfg.world, "Loader: rank ", cfg.rank, " of world ",
             cfg.world);
    shards_ = expand_shard_list(cfg.shards);
    AC_CHECK_HINT(static_cast<int>(shards_.size()) >= cfg.world, "use at least as many shards as ranks",
                  "Loader: ", shards_.size(), " shards cannot feed ", cfg.world, " ranks");
    for (int i = 0; i < cfg.workers; ++i) threads_.emplace_back([this] { work(); });
    threads_.emplace_back([this] { produce(); });
}

Loader::~Loader() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
}

LoaderStats Loader::stats() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
}

void Loader::produce() {
    const uint64_t window = static_cast<uint64_t>(cfg_.prefetch_batches * cfg_.batch_size + 2 * cfg_.workers);
    uint64_t seq = 0;
    int64_t epoch = cursor_.epoch, skip = cursor_.position;
    auto push = [&](Work w) -> bool {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [&] { return stop_ || seq < next_seq_ + window; });
        if (stop_) return false;
        w.seq = seq++;
        queue_.push_back(std::move(w));
        cv_.notify_all();
        return true;
    };
    auto warn = [&](const std::string& msg, bool truncated) {
        std::fprintf(stderr, "warning: %s\n", msg.c_str());
        std::lock_guard<std::mutex> lock(mutex_);
        if (truncated) ++stats_.truncated_shards;
    };
    while (true) {
        // This epoch's shards for this rank: one shuffle of all shards (the same on every rank), then
        // every world-th shard from this rank's offset.
        std::vector<std::string> order = shards_;
        SampleRng shard_rng(mix(cfg_.seed, 1), static_cast<uint64_t>(epoch));
        for (size_t i = order.size(); i > 1; --i)
            std::swap(order[i - 1], order[shard_rng.randint(0, static_cast<int64_t>(i) - 1)]);
        const uint64_t stream = cfg_.split_batches ? 0 : static_cast<uint64_t>(cfg_.rank);  // whose order
        SampleRng buffer_rng(mix(cfg_.seed, 2), static_cast<uint64_t>(epoch) * 65536 + stream);
        std::vector<Work> buffer;
        int64_t position = 0;
        auto emit = [&](Work w) -> bool {
            w.epoch = epoch;
            w.position = position++;
            if (w.position < skip) return true;  // replaying up to a resumed cursor
            return push(std::move(w));
        };
        const size_t first = cfg_.split_batches ? 0 : static_cast<size_t>(cfg_.rank);
        const size_t stride = cfg_.split_batches ? 1 : static_cast<size_t>(cfg_.world);
        for (size_t i = first; i < order.size(); i += stride) {
            try {
                ShardReader reader(order[i]);
                Sample s;
                while (reader.next(s)) {
                    Work w;
                    w.where = basename_of(order[i]) + ":" + s.key;
                    w.sample = std::move(s);
                    if (static_cast<int64_t>(buffer.size()) < cfg_.shuffle_buffer) {
                        buffer.push_back(std::move(w));
                        continue;
                    }
                    size_t j =
                        static_cast<size_t>(buffer_rng.randint(0, static_cast<int64_t>(buffer.size()) - 1));
                    std::swap(buffer[j], w);
                    if (!emit(std::move(w))) return;
                }
                if (!reader.error().empty())
                    warn("shard " + order[i] + ": " + reader.error() + "; skipping the rest of it", true);
            } catch (const std::exception& e) {
                warn(std::string("skipping shard: ") + e.what(), true);
            }
            std::lock_guard<std::mutex> lock(mutex_);
            if (stop_) return;
        }
        while (!buffer.empty()) {
            size_t j = static_cast<size_t>(buffer_rng.randint(0, static_cast<int64_t>(buffer.size()) - 1));
            Work w = std::move(buffer[j]);
            buffer.erase(buffer.begin() + static_cast<std::ptrdiff_t>(j));
            if (!emit(std::move(w))) return;
        }
        const bool no_samples = position == 0;
        Work end;
        end.end_of_epoch = true;
        end.where = no_samples ? "no samples in this rank's shards" : "";
        if (!emit(std::move(end)) || no_samples) return;  // the consumer stops there: no more epochs
        skip = 0;
        ++epoch;
    }
}

Loader::Result Loader::process(const Work& w) const {
    Result r;
    r.epoch = w.epoch;
    r.position = w.position;
    r.where = w.where;
    if (w.end_of_epoch) {
        r.end_of_epoch = true;
        r.error = w.where;
        return r;
    }
    try {
        const uint64_t stream = cfg_.split_batches ? 0 : static_cast<uint64_t>(cfg_.rank);
        SampleRng rng(mix(mix(cfg_.seed, 3), static_cast<uint64_t>(w.epoch) * 65536 + stream),
                      static_cast<uint64_t>(w.position));
        const auto& files = w.sample.files;
        const std::string caption = sample_caption(files, cfg_.captions, rng);
        const std::string* image = image_of(w.sample);
        AC_CHECK(image != nullptr, "no image (.jpg, .jpeg or .png)");
        r.views = aclip_train_transform(*image, cfg_.transform, rng);
        r.ids = tokenizer_.tokenize(caption, cfg_.context, cfg_.truncate);
        r.ok = true;
    } catch (const std::exception& e) {
        r.error = e.what();
    }
    return r;
}

void Loader::work() {
    while (true) {
        Work w;
        {
            std::unique_lock<std::mutex> lock(mutex_);
            cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
            if (stop_) return;
            w = std::move(queue_.front());
            queue_.pop_front();
        }
        Result r = process(w);
        std::lock_guard<std::mutex> lock(mutex_);
        results_.emplace(w.seq, std::move(r));
        cv_.notify_all();
    }
}

Batch Loader::next() {
    const int64_t B = cfg_.batch_size, S = cfg_.transform.size, C = cfg_.context;
    const int64_t global = cfg_.split_batches ? B * cfg_.world : B;
    std::vector<Result> rows;
    while (static_cast<int64_t>(rows.size()) < global) {
        Result r;
        {
            std::unique_lock<std::mutex> lock(mutex_);
            auto t0 = std::chrono::steady_clock::now();
            cv_.wait(lock, [&] { return results_.count(next_seq_) > 0; });
            stats_.wait_seconds +=
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            auto it = results_.find(next_seq_);
            r = std::move(it->second);
            results_.erase(it);
            ++next_seq_;
        }
        cv_.notify_all();  // the producer may run further ahead now
        if (r.end_of_epoch) {
            AC_CHECK_HINT(r.error.empty(), "check the shard list and sizes.json", "Loader: epoch ", r.epoch,
                          " of rank ", cfg_.rank, ": ", r.error);
            AC_CHECK_HINT(usable_this_epoch_ || cursor_.position == 0,
                          "check the shards and the warnings above", "Loader: epoch ", r.epoch, " of rank ",
                          cfg_.rank, " had no usable sample");
            usable_this_epoch_ = false;
            rows.clear();  // drop_last: a partial batch at the end of an epoch is not used
            cursor_ = {r.epoch + 1, 0};
            continue;
        }
        cursor_ = {r.epoch, r.position + 1};
        if (!r.ok) {
            std::fprintf(stderr, "warning: skipping %s: %s\n", r.where.c_str(), r.error.c_str());
            std::lock_guard<std::mutex> lock(mutex_);
            ++stats_.skipped_samples;
            continue;
        }
        usable_this_epoch_ = true;
        rows.push_back(std::move(r));
    }
    if (cfg_.split_batches)  // this rank's slice of the global batch
        rows = std::vector<Result>(std::make_move_iterator(rows.begin() + cfg_.rank * B),
                                   std::make_move_iterator(rows.begin() + (cfg_.rank + 1) * B));
    Batch b;
    b.epoch = rows.front().epoch;
    auto images = [&] {
        return cfg_.pin_memory ? empty_pinned({B, 3, S, S}, DType::U8) : empty({B, 3, S, S}, DType::U8);
    };
    b.view1 = images();
    b.view2 = images();
    b.ema_view = images();
    b.boxes = empty({B, 3, 4}, DType::I64);
    b.text = empty({B, C}, DType::I64);
    for (int64_t i = 0; i < B; ++i) {
        const Result& r = rows[static_cast<size_t>(i)];
        std::memcpy(b.view1.data<uint8_t>() + i * 3 * S * S, r.views.view1.data(), 3 * S * S);
        std::memcpy(b.view2.data<uint8_t>() + i * 3 * S * S, r.views.view2.data(), 3 * S * S);
        std::memcpy(b.ema_view.data<uint8_t>() + i * 3 * S * S, r.views.ema.data(), 3 * S * S);
        int64_t* box = b.boxes.data<int64_t>() + i * 12;
        for (int v = 0; v < 3; ++v) {
            const Box& x = r.views.boxes[static_cast<size_t>(v)];
            box[v * 4 + 0] = x.top, box[v * 4 + 1] = x.left, box[v * 4 + 2] = x.height,
                        box[v * 4 + 3] = x.width;
        }
        for (int64_t j = 0; j < C; ++j) b.text.data<int64_t>()[i * C + j] = r.ids[static_cast<size_t>(j)];
        b.keys.push_back(r.where);
    }
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.samples += B;
    return b;
}

}  // namespace aclip
