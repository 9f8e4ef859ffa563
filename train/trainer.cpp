// trainer.cpp: see trainer.h.
#include "train/trainer.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "data/loader.h"
#include "engine/autograd/grad_mode.h"
#include "engine/dist/comm.h"
#include "engine/io/json_lite.h"
#include "engine/ops/autocast.h"
#include "engine/optim/schedule.h"
#include "models/checkpoint.h"
#include "models/presets.h"
#include "train/progress.h"

namespace aclip {

namespace {

std::atomic<int> g_signal{0};
void on_signal(int sig) {
    g_signal.store(sig);
}

std::array<float, 3> three_floats(const std::string& s, const std::string& key) {
    std::array<float, 3> v{};
    std::stringstream ss(s);
    std::string item;
    int i = 0;
    while (std::getline(ss, item, ',')) {
        AC_CHECK(i < 3, key, " = '", s, "': expected three comma-separated numbers");
        v[static_cast<size_t>(i++)] = std::stof(item);
    }
    AC_CHECK(i == 3, key, " = '", s, "': expected three comma-separated numbers");
    return v;
}

int64_t override_or(const Config& c, const std::string& key, int64_t preset_value) {
    int64_t v = c.integer(key);
    return v > 0 ? v : preset_value;
}

std::string checkpoint_stem(const std::string& dir, int64_t step) {
    char name[64];
    std::snprintf(name, sizeof name, "/step_%08lld", static_cast<long long>(step));
    return dir + name;
}

struct Names {  // the parameters AdamW updates, by name, in its order
    std::vector<std::string> names;
};

Names adamw_names(Aclip& model, const std::vector<ParamGroup>& groups) {
    Names n;
    for (const ParamGroup& g : groups)
        for (const Tensor& p : g.params)
            for (auto& np : model.named_parameters())
                if (np.tensor->same(p)) n.names.push_back(np.name);
    return n;
}

void save_checkpoint(const std::string& dir, int64_t step, Aclip& model, AdamW& opt, const Names& names,
                     const std::vector<int64_t>& cursors, const Config& cfg, const AclipConfig& acfg,
                     int64_t keep) {
    const std::string stem = checkpoint_stem(dir, step);
    save_model(stem + ".model.safetensors", model, model_metadata(acfg, cfg.text()));
    std::vector<std::pair<std::string, Tensor>> state;
    for (size_t i = 0; i < names.names.size(); ++i) {
        state.emplace_back("adamw.exp_avg." + names.names[i], opt.exp_avg()[i]);
        state.emplace_back("adamw.exp_avg_sq." + names.names[i], opt.exp_avg_sq()[i]);
    }
    std::map<std::string, std::string> meta = {{"step", std::to_string(step)},
                                               {"optimizer.steps", std::to_string(opt.steps())},
                                               {"train.steps", cfg.str("train.steps")},
                                               {"dist.world", std::to_string(cursors.size() / 2)},
                                               {"aclip.config", cfg.text()}};
    for (size_t r = 0; r < cursors.size() / 2; ++r) {  // every rank's data cursor
        meta["loader.rank" + std::to_string(r) + ".epoch"] = std::to_string(cursors[2 * r]);
        meta["loader.rank" + std::to_string(r) + ".position"] = std::to_string(cursors[2 * r + 1]);
    }
    save_safetensors(stem + ".state.safetensors", state, meta);
    std::vector<std::string> all = list_checkpoints(dir);
    for (size_t i = 0; i + static_cast<size_t>(keep) < all.size(); ++i) {  // keep the newest `keep`
        std::string s = all[i].substr(0, all[i].size() - std::string(".model.safetensors").size());
        std::filesystem::remove(s + ".model.safetensors");
        std::filesystem::remove(s + ".state.safetensors");
    }
}

std::string fmt(double v, int precision = 4) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.*g", precision, v);
    return buf;
}

// The run's metrics file, opened for appending from `step`: rows of later steps, left by an earlier run in
// this directory or by the interrupted part of this one, are dropped first (rewritten atomically), so the
// file always describes the run whose checkpoints sit beside it.
std::ofstream open_metrics(const std::string& path, int64_t step) {
    std::string kept, line;
    std::ifstream old(path);
    while (step > 0 && std::getline(old, line)) {
        // a line torn by a crash (no closing brace, or no step) is dropped with the rest
        const size_t at = line.find("\"step\": ");
        if (at == std::string::npos || line.empty() || line.back() != '}') continue;
        char* end = nullptr;
        const long long row_step = std::strtoll(line.c_str() + at + 8, &end, 10);
        if (end != line.c_str() + at + 8 && row_step <= step) kept += line + "\n";
    }
    old.close();
    if (std::filesystem::exists(path)) write_file_atomic(path, kept);
    std::ofstream out(path, std::ios::app);
    AC_CHECK_HINT(out.good(), "check the checkpoint directory's permissions", "cannot write ", path);
    return out;
}

}  // namespace

std::vector<std::string> list_checkpoints(const std::string& dir) {
    std::vector<std::string> out;
    if (!std::filesystem::exists(dir)) return out;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
        std::string name = e.path().filename().string();
        if (name.rfind("step_", 0) == 0 && name.size() > 18 &&
            name.compare(name.size() - 18, 18, ".model.safetensors") == 0)
            out.push_back(e.path().string());
    }
    std::sort(out.begin(), out.end());
    return out;
}

AclipConfig aclip_config_from(const Config& c, int64_t vocab) {
    AclipConfig a = model_preset(c.str("model.preset"));
    VisionConfig& v = a.clip.vision;
    TextConfig& t = a.clip.text;
    v.image_size = override_or(c, "model.image_size", v.image_size);
    v.patch_size = override_or(c, "model.patch_size", v.patch_size);
    v.width = override_or(c, "model.vision_width", v.width);
    v.layers = override_or(c, "model.vision_layers", v.layers);
    v.heads = override_or(c, "model.vision_heads", v.heads);
    t.width = override_or(c, "model.text_width", t.width);
    t.layers = override_or(c, "model.text_layers", t.layers);
    t.heads = override_or(c, "model.text_heads", t.heads);
    v.embed_dim = t.embed_dim = override_or(c, "model.embed_dim", v.embed_dim);
    t.context = override_or(c, "tokenizer.context", t.context);
    t.vocab = vocab;
    a.ssl.simclr_hidden = a.ssl.byol_hidden = override_or(c, "model.ssl_hidden", a.ssl.simclr_hidden);
    a.ssl.simclr_dim = a.ssl.byol_dim = override_or(c, "model.ssl_dim", a.ssl.simclr_dim);
    const std::string mask = c.str("aclip.mask");
    a.mask = mask == "attentive" ? MaskMode::Attentive : mask == "random" ? MaskMode::Random : MaskMode::None;
    a.views = static_cast<int>(c.integer("aclip.views"));
    a.ssl_losses = c.boolean("aclip.ssl");
    a.keep_ratio = c.number("aclip.keep_ratio");
    a.mask_block = c.integer("aclip.mask_block");
    a.clip_weight = c.number("aclip.clip_weight");
    a.simclr_weight = c.number("aclip.simclr_weight");
    a.byol_weight = c.number("aclip.byol_weight");
    a.simclr_tau = c.number("aclip.simclr_tau");
    a.simclr_pairs = c.str("aclip.simclr_pairs") == "views" ? SimclrPairs::Views : SimclrPairs::Official;
    a.ema_base = c.number("aclip.ema_momentum");
    AC_CHECK(v.image_size % v.patch_size == 0, "model.image_size ", v.image_size,
             " is not a multiple of patch_size ", v.patch_size);
    AC_CHECK(v.width % v.heads == 0 && t.width % t.heads == 0,
             "model: widths must be multiples of their heads");
    AC_CHECK(a.mask != MaskMode::Attentive || v.grid() % a.mask_block == 0, "aclip.mask_block ", a.mask_block,
             " must divide the patch grid ", v.grid());
    return a;
}

EvalSettings eval_settings_from(const Config& cfg, const AclipConfig& acfg) {
    EvalSettings es;
    es.zeroshot = cfg.str("eval.zeroshot");
    es.classes = cfg.str("eval.classes");
    es.templates = cfg.str("eval.templates");
    es.retrieval = cfg.str("eval.retrieval");
    es.batch_size = cfg.integer("eval.batch_size");
    es.context = acfg.clip.text.context;
    es.truncate = truncate_from_name(cfg.str("tokenizer.truncate"));
    es.transform.size = acfg.clip.vision.image_size;
    es.transform.mean = three_floats(cfg.str("data.mean"), "data.mean");
    es.transform.std = three_floats(cfg.str("data.std"), "data.std");
    return es;
}

TrainResult train(const Config& cfg, const std::string& resume, bool force_schedule) {
    const std::string dir = cfg.str("checkpoint.dir");
    const Device device = cfg.str("train.device") == "cuda" ? Device::CUDA : Device::CPU;
    std::unique_ptr<Comm> comm = make_comm_from_environment(device);  // NCCL between GPUs
    const bool rank0 = comm->rank() == 0;
    if (rank0) std::printf("# resolved config (%s)\n%s\n", cfg.source().c_str(), cfg.text().c_str());
    AC_CHECK_HINT(!cfg.str("data.train").empty(), "set data.train to a shard list", "data.train is empty");
    AC_CHECK_HINT(!cfg.str("tokenizer.merges").empty(), "set tokenizer.merges to a BPE merges file",
                  "tokenizer.merges is empty");
    if (rank0) {
        std::filesystem::create_directories(dir);
        write_file_atomic(dir + "/config.ini", cfg.text());
    }

    ClipTokenizer tokenizer(cfg.str("tokenizer.merges"), 48894);
    AclipConfig acfg = aclip_config_from(cfg, tokenizer.vocab_size());
    const uint64_t seed = static_cast<uint64_t>(cfg.integer("train.seed"));
    Generator gen(seed);
    Aclip model(acfg, gen);
    if (device == Device::CUDA) model.to(Device::CUDA);  // before the optimizer, which holds the parameters
    model.set_comm(comm.get());
    std::vector<ParamGroup> groups = model.param_groups(cfg.number("optim.weight_decay"));
    AdamW opt(groups, cfg.number("optim.beta1"), cfg.number("optim.beta2"), cfg.number("optim.eps"));
    Names names = adamw_names(model, groups);
    const int64_t total_steps = cfg.integer("train.steps");
    CosineSchedule schedule{cfg.number("optim.lr"), cfg.number("optim.start_lr"), cfg.number("optim.end_lr"),
                            cfg.integer("optim.warmup_steps"), total_steps};

    int64_t step = 0;
    LoaderCursor cursor;
    if (!resume.empty()) {
        std::string model_path = resume;
        if (resume == "latest") {
            std::vector<std::string> all = list_checkpoints(dir);
            AC_CHECK_HINT(!all.empty(), "start without --resume", "--resume latest: no checkpoint in ", dir);
            model_path = all.back();
        }
        const std::string stem = model_path.substr(0, model_path.rfind(".model.safetensors"));
        load_state(model, load_safetensors(model_path));
        SafetensorsFile state = load_safetensors(stem + ".state.safetensors");
        AC_CHECK_HINT(state.metadata.at("train.steps") == cfg.str("train.steps"),
                      "the learning-rate and EMA schedules depend on train.steps; keep it, start a new run, "
                      "or pass --force-schedule",
                      "resume: the checkpoint was written for train.steps = ",
                      state.metadata.at("train.steps"), " but the config says ", cfg.str("train.steps"));
        NoGradGuard no_grad;
        for (size_t i = 0; i < names.names.size(); ++i) {
            opt.exp_avg()[i].copy_(state.get("adamw.exp_avg." + names.names[i]));
            opt.exp_avg_sq()[i].copy_(state.get("adamw.exp_avg_sq." + names.names[i]));
        }
        step = std::stoll(state.metadata.at("step"));
        opt.set_steps(std::stoll(state.metadata.at("optimizer.steps")));
        AC_CHECK_HINT(std::stoi(state.metadata.at("dist.world")) == comm->world(),
                      "resume with the number of ranks the run had", "resume: the checkpoint was written by ",
                      state.metadata.at("dist.world"), " ranks, this run has ", comm->world());
        const std::string r = "loader.rank" + std::to_string(comm->rank());
        cursor = {std::stoll(state.metadata.at(r + ".epoch")),
                  std::stoll(state.metadata.at(r + ".position"))};
        if (rank0)
            std::printf("resumed from %s at step %lld\n", model_path.c_str(), static_cast<long long>(step));
    }

    LoaderConfig lc;
    lc.shards = cfg.str("data.train");
    lc.batch_size = cfg.integer("train.batch_size");
    lc.workers = static_cast<int>(cfg.integer("data.workers"));
    lc.shuffle_buffer = cfg.integer("data.shuffle_buffer");
    lc.seed = seed;
    lc.rank = comm->rank();
    lc.world = comm->world();
    lc.split_batches = cfg.str("data.split") == "batch";
    lc.captions = caption_source_from_name(cfg.str("data.captions"));
    lc.context = acfg.clip.text.context;
    lc.truncate = truncate_from_name(cfg.str("tokenizer.truncate"));
    lc.transform.size = acfg.clip.vision.image_size;
    lc.transform.ema_crop = ema_crop_from_name(cfg.str("aclip.ema_crop"));
    lc.transform.mean = three_floats(cfg.str("data.mean"), "data.mean");
    lc.transform.std = three_floats(cfg.str("data.std"), "data.std");
    lc.transform.jpeg_planes = cfg.boolean("data.jpeg_planes");
    lc.pin_memory = device == Device::CUDA;  // the views' copies to the GPU go at the link's full speed
    Loader loader(lc, tokenizer, cursor);

    EvalSettings es = eval_settings_from(cfg, acfg);

    if (rank0)
        std::printf("aclip_train: %s, %.2f M trainable parameters, %lld steps of %lld samples x %d ranks\n",
                    cfg.str("model.preset").c_str(),
                    static_cast<double>(model.clip.num_parameters() + model.ssl.num_parameters()) / 1e6,
                    static_cast<long long>(total_steps), static_cast<long long>(lc.batch_size),
                    comm->world());
    std::ofstream metrics;
    if (rank0) metrics = open_metrics(dir + "/metrics.jsonl", step);
    std::vector<Tensor> trainable;
    for (const ParamGroup& g : groups) trainable.insert(trainable.end(), g.params.begin(), g.params.end());
    // every rank takes part in these decisions, or a rank would wait forever in a collective
    auto any_rank = [&](bool mine) {
        Tensor flag = full({1}, mine ? 1.0 : 0.0, DType::F64);
        comm->all_reduce_sum(flag);
        return flag.item() > 0;
    };
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);

    TrainResult result;
    const int64_t accumulate = cfg.integer("train.accumulate"), log_every = cfg.integer("train.log_every");
    const int64_t ckpt_every = cfg.integer("checkpoint.every"), eval_every = cfg.integer("eval.every");
    const bool skip_nonfinite = cfg.str("train.on_nonfinite") == "skip";
    const bool mixed_precision = cfg.str("train.precision") == "bf16";
    auto run_start = std::chrono::steady_clock::now();
    const int64_t first_step = step;
    ProgressBar bar(total_steps, first_step);
    auto window_start = run_start;
    double window_wait = loader.stats().wait_seconds;
    int64_t window_steps = 0;
    auto do_eval = [&](int64_t at) {
        if (!rank0 || (es.zeroshot.empty() && es.retrieval.empty())) return;
        result.online = evaluate(model, false, tokenizer, es);
        if (model.ema) result.ema = evaluate(model, true, tokenizer, es);
        for (auto [label, r] : {std::pair{"online", result.online}, {"ema", result.ema}}) {
            if (r.top1 < 0 && r.t2i_r1 < 0) continue;
            std::printf(
                "eval step %lld %-6s | zero-shot top-1 %.1f%% top-5 %.1f%% (%lld images, %lld classes) | "
                "retrieval R@1 image->text %.1f%% text->image %.1f%% (%lld images)\n",
                static_cast<long long>(at), label, 100 * r.top1, 100 * r.top5,
                static_cast<long long>(r.zeroshot_images), static_cast<long long>(r.classes), 100 * r.i2t_r1,
                100 * r.t2i_r1, static_cast<long long>(r.retrieval_images));
            metrics << "{\"step\": " << at << ", \"eval\": \"" << label << "\", \"top1\": " << r.top1
                    << ", \"top5\": " << r.top5 << ", \"i2t_r1\": " << r.i2t_r1
                    << ", \"i2t_r5\": " << r.i2t_r5 << ", \"i2t_r10\": " << r.i2t_r10
                    << ", \"t2i_r1\": " << r.t2i_r1 << ", \"t2i_r5\": " << r.t2i_r5
                    << ", \"t2i_r10\": " << r.t2i_r10 << "}\n";
        }
        metrics.flush();
    };

    while (step < total_steps) {
        const double lr = schedule.at(step);
        const double m = ema_momentum(step, total_steps, acfg.ema_base);
        AclipStep out;
        double loss_sum = 0;
        bool finite = true;
        for (int64_t micro = 0; micro < accumulate; ++micro) {
            Batch b = loader.next();
            auto on_device = [device](const Tensor& t) { return t.defined() ? t.to(device) : t; };
            // 8-bit pixels cross to the device, normalised floats are made there
            auto images = [&](const Tensor& t) {
                return normalize_images(on_device(t), lc.transform.mean, lc.transform.std);
            };
            AclipBatch ab{images(b.view1),
                          images(b.view2),
                          images(b.ema_view),
                          b.boxes,  // read on the host by the attentive mask
                          on_device(b.text),
                          seed,
                          static_cast<uint64_t>(step * accumulate + micro) << 24};
            {
                AutocastGuard autocast(mixed_precision);  // train.precision = bf16
                out = model.forward(ab, m);
            }
            std::string bad;  // the first non-finite term of this rank
            for (auto [name, term] : {std::pair{"loss", out.loss},
                                      {"clip1", out.clip1},
                                      {"clip2", out.clip2},
                                      {"simclr", out.simclr},
                                      {"byol", out.byol}})
                if (term.defined() && !std::isfinite(term.item()) && bad.empty())
                    bad = std::string(name) + " loss is " + std::to_string(term.item());
            if (any_rank(!bad.empty())) {
                finite = false;
                AC_CHECK_HINT(skip_nonfinite, "lower optim.lr, or set train.on_nonfinite = skip", "step ",
                              step, ": the ",
                              bad.empty() ? std::string("loss of another rank is not finite") : bad,
                              "; stopping (the last checkpoint in ", dir, " is intact)");
                break;
            }
            mul_scalar(out.loss, 1.0 / static_cast<double>(accumulate)).backward();
            loss_sum += out.loss.item();
        }
        if (finite) {
            average_gradients(trainable, *comm);
            opt.step(lr);
            model.clip.clamp_logit_scale();
        } else {
            if (rank0)
                std::printf("step %lld: non-finite loss, step skipped\n", static_cast<long long>(step));
        }
        opt.zero_grad();
        ++step;
        ++window_steps;
        result.step = step;
        result.loss = loss_sum / static_cast<double>(accumulate);

        if (rank0) bar.update(step);  // between log lines, when stderr is a terminal
        if (rank0 && (step % log_every == 0 || step == total_steps)) {
            bar.clear();
            auto now = std::chrono::steady_clock::now();
            const double secs = std::chrono::duration<double>(now - window_start).count();
            const double wait = loader.stats().wait_seconds - window_wait;
            const double samples_per_s =
                static_cast<double>(window_steps * accumulate * lc.batch_size) / secs;
            const double eta = std::chrono::duration<double>(now - run_start).count() /
                               static_cast<double>(step - first_step) *
                               static_cast<double>(total_steps - step);
            const double scale = std::exp(model.clip.logit_scale.item());
            std::printf(
                "step %lld/%lld | epoch %lld | lr %s | loss %.4f (clip %.3f/%s simclr %s byol %s) | "
                "scale %.1f | m %.5f | %.1f samples/s | data %.0f%% | %.0f ms/step | peak %.0f MiB | "
                "eta %.0fs\n",
                static_cast<long long>(step), static_cast<long long>(total_steps),
                static_cast<long long>(loader.cursor().epoch), fmt(lr, 3).c_str(), result.loss,
                out.clip1.item(), out.clip2.defined() ? fmt(out.clip2.item()).c_str() : "-",
                out.simclr.defined() ? fmt(out.simclr.item()).c_str() : "-",
                out.byol.defined() ? fmt(out.byol.item()).c_str() : "-", scale, m, samples_per_s,
                100 * wait / secs, 1e3 * secs / static_cast<double>(window_steps),
                static_cast<double>(cpu_bytes_peak()) / 1048576.0, eta);
            std::fflush(stdout);
            metrics << "{\"step\": " << step << ", \"epoch\": " << loader.cursor().epoch << ", \"lr\": " << lr
                    << ", \"loss\": " << result.loss << ", \"clip1\": " << out.clip1.item()
                    << (out.clip2.defined() ? ", \"clip2\": " + fmt(out.clip2.item(), 8) : "")
                    << (out.simclr.defined() ? ", \"simclr\": " + fmt(out.simclr.item(), 8) : "")
                    << (out.byol.defined() ? ", \"byol\": " + fmt(out.byol.item(), 8) : "")
                    << ", \"logit_scale\": " << scale << ", \"ema_momentum\": " << m
                    << ", \"samples_per_s\": " << samples_per_s << ", \"data_wait\": " << wait / secs
                    << "}\n";
            window_start = now;
            window_wait = loader.stats().wait_seconds;
            window_steps = 0;
        }
        const bool stop = any_rank(g_signal.load() != 0);
        if ((ckpt_every > 0 && step % ckpt_every == 0) || step == total_steps || stop) {
            LoaderCursor c = loader.cursor();
            Tensor cursors =
                comm->all_gather(from_vector<int64_t>({c.epoch, c.position}, {1, 2}));  // (world, 2)
            if (rank0)
                save_checkpoint(dir, step, model, opt, names, cursors.to_vector<int64_t>(), cfg, acfg,
                                cfg.integer("checkpoint.keep"));
        }
        if (eval_every > 0 && step % eval_every == 0 && step < total_steps) do_eval(step);
        if (stop) {
            if (rank0)
                std::printf("signal %d: checkpoint written at step %lld; resume with --resume latest\n",
                            g_signal.load(), static_cast<long long>(step));
            result.interrupted = true;
            return result;
        }
    }
    do_eval(step);
    LoaderStats ls = loader.stats();
    if (rank0)
        std::printf(
            "done: %lld steps, %lld samples, %lld skipped, %lld truncated shards; checkpoints in %s\n",
            static_cast<long long>(step), static_cast<long long>(ls.samples),
            static_cast<long long>(ls.skipped_samples), static_cast<long long>(ls.truncated_shards),
            dir.c_str());
    return result;
}

}  // namespace aclip
