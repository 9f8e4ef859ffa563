// trainer.cpp: see trainer.h.
#include "train/trainer.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "data/loader.h"
#include "engine/core/storage.h"
#include "engine/cpu/gemm.h"
#include "engine/cuda/cuda_ops.h"
#include "engine/dist/comm.h"
#include "engine/io/files.h"
#include "engine/ops/autocast.h"
#include "engine/optim/schedule.h"
#include "models/presets.h"
#include "train/progress.h"
#include "train/run_state.h"
#include "train/step_log.h"

namespace aclip {

namespace {

// SIGINT, SIGTERM or SIGUSR1: the step finishes, a checkpoint is written, the run ends. A second signal ends
// the process at once, as the signal's default action would (Ctrl-C twice, when the first is not soon
// enough). SIGUSR1 is for mpirun, which forwards it to every rank (SIGINT and SIGTERM it turns into a kill
// within a second), and for SLURM's --signal=USR1@SECONDS before a job's time limit.
// SIGPIPE (the reader of the output gone: Ctrl-C reaches `aclip_train | grep ...` too, and grep ends
// first) stops the run the same way, never at once, where its default would end it before the checkpoint.
std::atomic<int> g_signal{0};
std::atomic<bool> g_signal_note{true};  // rank 0 says what the first signal does
void on_signal(int sig) {
    if (sig == SIGPIPE) {
        int none = 0;
        g_signal.compare_exchange_strong(none, sig);
        return;
    }
    if (g_signal.exchange(sig) != 0) {
        std::signal(sig, SIG_DFL);
        std::raise(sig);
        return;
    }
    static const char kNote[] =
        "\naclip_train: stopping after this step, with a checkpoint (a second Ctrl-C stops at once, "
        "without)\n";
    if (g_signal_note.load()) (void)!::write(STDERR_FILENO, kNote, sizeof kNote - 1);  // async-signal-safe
}

std::array<float, 3> three_floats(const Config& c, const std::string& key) {
    const std::array<double, 3> v = c.numbers3(key);
    return {static_cast<float>(v[0]), static_cast<float>(v[1]), static_cast<float>(v[2])};
}

// What a resumed run does otherwise than the run that wrote its checkpoint, so that no change goes unseen
// (a checkpoint whose config this version cannot read is passed over in silence).
void print_changes_since(const ResumePoint& at, const Config& now) {
    Config before;
    try {
        before.load_text(at.config, at.path);
    } catch (const Error&) {
        return;
    }
    const std::vector<std::string> changes = now.changes_from(before);
    if (changes.empty()) return;
    std::printf("resume: %zu setting(s) changed since the checkpoint:\n", changes.size());
    for (const std::string& c : changes) std::printf("  %s\n", c.c_str());
}

int64_t override_or(const Config& c, const std::string& key, int64_t preset_value) {
    int64_t v = c.integer(key);
    return v > 0 ? v : preset_value;
}

}  // namespace

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
    AC_CHECK_HINT(a.views == 2 || !a.ssl_losses, "set aclip.ssl = false for one view, or aclip.views = 2",
                  "aclip.views = 1 with aclip.ssl = true: the SimCLR and BYOL losses compare two views");
    AC_CHECK(v.image_size % v.patch_size == 0, "model.image_size ", v.image_size,
             " is not a multiple of patch_size ", v.patch_size);
    AC_CHECK(v.width % v.heads == 0, "model: the image tower's width ", v.width, " is not a multiple of its ",
             v.heads, " heads (model.vision_width, model.vision_heads)");
    AC_CHECK(t.width % t.heads == 0, "model: the text tower's width ", t.width, " is not a multiple of its ",
             t.heads, " heads (model.text_width, model.text_heads)");
    AC_CHECK_HINT(t.context >= 3, "0 takes the model's", "tokenizer.context = ", t.context,
                  ": a caption needs room for the start token, a word and the end token");
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
    es.workers = static_cast<int>(cfg.integer("data.workers"));
    es.mixed_precision = cfg.str("train.precision") == "bf16";
    es.context = acfg.clip.text.context;
    es.truncate = truncate_from_name(cfg.str("tokenizer.truncate"));
    es.transform.size = acfg.clip.vision.image_size;
    es.transform.mean = three_floats(cfg, "data.mean");
    es.transform.std = three_floats(cfg, "data.std");
    return es;
}

LoaderConfig loader_config_from(const Config& cfg, const AclipConfig& acfg, const Comm& comm, Device device) {
    LoaderConfig lc;
    lc.shards = cfg.str("data.train");
    lc.batch_size = cfg.integer("train.batch_size");
    lc.workers = static_cast<int>(cfg.integer("data.workers"));
    lc.shuffle_buffer = cfg.integer("data.shuffle_buffer");
    lc.seed = static_cast<uint64_t>(cfg.integer("train.seed"));
    lc.rank = comm.rank();
    lc.world = comm.world();
    lc.split_batches = cfg.str("data.split") == "batch";
    lc.captions = caption_source_from_name(cfg.str("data.captions"));
    lc.context = acfg.clip.text.context;
    lc.truncate = truncate_from_name(cfg.str("tokenizer.truncate"));
    lc.transform.size = acfg.clip.vision.image_size;
    lc.transform.ema_crop = ema_crop_from_name(cfg.str("aclip.ema_crop"));
    lc.transform.mean = three_floats(cfg, "data.mean");
    lc.transform.std = three_floats(cfg, "data.std");
    lc.transform.jpeg_planes = cfg.boolean("data.jpeg_planes");
    lc.pin_memory = device == Device::CUDA;  // the views' copies to the GPU go at the link's full speed
    return lc;
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
        check_checkpoint_dir(dir, resume);  // before anything is written there
        create_directories(dir);
        write_file_atomic(dir + "/config.ini", cfg.text());
    }

    // The model, its optimizer and schedules, restored from a checkpoint when resuming.
    ClipTokenizer tokenizer(cfg.str("tokenizer.merges"), 48894);
    AclipConfig acfg = aclip_config_from(cfg, tokenizer.vocab_size());
    const uint64_t seed = static_cast<uint64_t>(cfg.integer("train.seed"));
    Generator gen(seed);
    Aclip model(acfg, gen);
    if (device == Device::CUDA) model.to(Device::CUDA);  // before the optimizer, which holds the parameters
    model.set_comm(comm.get());
    model.set_grad_checkpointing(cfg.boolean("train.grad_checkpointing"));
    std::vector<ParamGroup> groups = model.param_groups(cfg.number("optim.weight_decay"));
    AdamW opt(groups, cfg.number("optim.beta1"), cfg.number("optim.beta2"), cfg.number("optim.eps"));
    opt.keep_bf16_copies(cfg.str("train.precision") == "bf16");  // for the products under autocast
    std::vector<Tensor> trainable;
    for (const ParamGroup& g : groups) trainable.insert(trainable.end(), g.params.begin(), g.params.end());
    const std::vector<std::string> names = adamw_parameter_names(model, groups);
    // Lengths given in epochs become steps: an epoch is the full batches of the shards' samples.
    const LoaderConfig lc = loader_config_from(cfg, acfg, *comm, device);
    const int64_t accumulate = cfg.integer("train.accumulate");
    const int64_t samples = epoch_samples(lc), epoch_steps = steps_per_epoch(lc, samples, accumulate);
    auto steps_of = [&](const std::string& key) {
        const StepCount c = cfg.step_count(key);
        AC_CHECK_HINT(!c.epochs || c.count == 0 || epoch_steps > 0,
                      "use more data or a smaller batch, or give it in steps", key, " = ", cfg.str(key),
                      ": the ", samples, " samples of an epoch do not fill one step");
        return c.steps(epoch_steps);
    };
    const int64_t total_steps = steps_of("train.steps");
    CosineSchedule schedule{cfg.number("optim.lr"), cfg.number("optim.start_lr"), cfg.number("optim.end_lr"),
                            steps_of("optim.warmup_steps"), total_steps};
    ResumePoint at;
    if (!resume.empty()) {
        at = load_run_checkpoint(resume, dir, cfg, total_steps, force_schedule, comm->rank(), comm->world(),
                                 model, opt, names);
        if (rank0) {
            std::printf("resumed from %s at step %lld\n", at.path.c_str(), static_cast<long long>(at.step));
            print_changes_since(at, cfg);
        }
    }

    Loader loader(lc, tokenizer, at.cursor);
    const EvalSettings es = eval_settings_from(cfg, acfg);
    check_eval_inputs(es);  // now, not at the first evaluation
    if (rank0)
        std::printf(
            "aclip_train: %s, %.2f M trainable parameters, %lld steps of %lld samples x %d ranks "
            "(an epoch: %lld steps)%s\n",
            cfg.str("model.preset").c_str(),
            static_cast<double>(model.clip.num_parameters() + model.ssl.num_parameters()) / 1e6,
            static_cast<long long>(total_steps), static_cast<long long>(lc.batch_size * accumulate),
            comm->world(), static_cast<long long>(epoch_steps),
            (", on " + (device == Device::CUDA ? cuda::device_name() : "the CPU with " + cpu_gemm_kernels()))
                .c_str());
    std::ofstream metrics;
    if (rank0) metrics = open_metrics(dir + "/metrics.jsonl", at.step);
    // Every rank takes part in these decisions, or a rank would wait forever in a collective. One exchange
    // a micro-batch carries both: whether a rank's loss is not finite, and whether a rank was signalled.
    struct Flags {
        bool nonfinite = false, signalled = false;
    };
    auto any_rank = [&](bool nonfinite) {
        Tensor flags = from_vector<double>({nonfinite ? 1.0 : 0.0, g_signal.load() != 0 ? 1.0 : 0.0}, {2});
        comm->all_reduce_sum(flags);
        const std::vector<double> any = flags.to_vector<double>();
        return Flags{any[0] > 0, any[1] > 0};
    };
    g_signal_note.store(rank0);
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    std::signal(SIGPIPE, on_signal);
    std::signal(SIGUSR1, on_signal);

    TrainResult result;
    result.first_step = result.step = at.step;
    auto evaluate_now = [&](int64_t step) {  // every rank embeds its share of the evaluation sets
        if (es.zeroshot.empty() && es.retrieval.empty()) return;
        OnDemandProgressBar images;  // rank 0's share, on a terminal
        const EvalResults r = evaluate(model, tokenizer, es, *comm, [&](int64_t done, int64_t total) {
            if (rank0) images.update(done, total);
        });
        images.reset();
        result.online = r.online;
        if (rank0) report_eval(step, "online", result.online, metrics);
        if (!r.ema) return;
        result.ema = *r.ema;
        if (rank0) report_eval(step, "ema", result.ema, metrics);
    };
    // One micro-batch on the training device: 8-bit pixels cross to it and normalised floats are made
    // there; the random mask's stream is a function of the seed and the micro-step.
    auto to_device = [&](const Batch& b, int64_t micro_step) {
        auto on_device = [device](const Tensor& t) { return t.defined() ? t.to(device) : t; };
        auto images = [&](const Tensor& t) {
            return normalize_images(on_device(t), lc.transform.mean, lc.transform.std);
        };
        return AclipBatch{images(b.view1),
                          images(b.view2),
                          images(b.ema_view),
                          b.boxes,  // read on the host by the attentive mask
                          on_device(b.text),
                          seed,
                          static_cast<uint64_t>(micro_step) << 24};
    };

    const int64_t log_every = cfg.integer("train.log_every");
    const int64_t ckpt_every = steps_of("checkpoint.every"), eval_every = steps_of("eval.every");
    const bool skip_nonfinite = cfg.str("train.on_nonfinite") == "skip";
    const bool mixed_precision = cfg.str("train.precision") == "bf16";
    // The teacher moves once a step (momentum 1 for the later micro-batches), or as the official code does.
    const bool ema_every_micro_batch = cfg.str("aclip.ema_update") == "micro_batch";
    int64_t step = at.step;
    const auto run_start = std::chrono::steady_clock::now();
    ProgressBar bar(total_steps, step);
    auto window_start = run_start;  // the steps since the last log line
    double window_wait = loader.stats().wait_seconds;
    int64_t window_steps = 0;
    while (step < total_steps) {
        const double lr = schedule.at(step);
        const double m = ema_momentum(step, total_steps, acfg.ema_base);
        LossValues last;
        double loss_sum = 0;
        bool finite = true, stop = false;
        for (int64_t micro = 0; micro < accumulate; ++micro) {
            AclipBatch batch = to_device(loader.next(), step * accumulate + micro);
            AclipStep out;
            {
                AutocastGuard autocast(mixed_precision);  // train.precision = bf16
                out = model.forward(batch, micro == 0 || ema_every_micro_batch ? m : 1.0);
            }
            // The losses' copy is queued, then the backward pass, and only then does the host wait for
            // the copy: the GPU goes on with the backward pass meanwhile. A non-finite loss's gradients
            // are dropped below (skipped) or never used (the run stops).
            LossReadback losses(out);
            mul_scalar(out.loss, 1.0 / static_cast<double>(accumulate)).backward();
            last = losses.wait();
            const std::string bad = first_nonfinite(last);
            const Flags flags = any_rank(!bad.empty());
            stop = flags.signalled;  // the step finishes, then the run stops (every rank at the same step)
            if (flags.nonfinite) {
                finite = false;
                AC_CHECK_HINT(skip_nonfinite, "lower optim.lr, or set train.on_nonfinite = skip", "step ",
                              step, ": the ",
                              bad.empty() ? std::string("loss of another rank is not finite") : bad,
                              "; stopping (the last checkpoint in ", dir, " is intact)");
                break;
            }
            loss_sum += last.loss;
        }
        if (finite) {
            average_gradients(trainable, *comm);
            opt.step(lr);
            model.clip.clamp_logit_scale();
        } else if (rank0) {
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
            const auto now = std::chrono::steady_clock::now();
            const double secs = std::chrono::duration<double>(now - window_start).count();
            const double run_secs = std::chrono::duration<double>(now - run_start).count();
            StepLog s;
            s.step = step;
            s.total_steps = total_steps;
            s.epoch = loader.cursor().epoch;
            s.lr = lr;
            s.loss = result.loss;
            s.last = last;
            s.logit_scale = std::exp(model.clip.logit_scale.item());
            s.ema_momentum = m;
            s.ranks = comm->world();
            s.samples_per_s = static_cast<double>(window_steps * accumulate * lc.batch_size * s.ranks) / secs;
            s.data_wait = (loader.stats().wait_seconds - window_wait) / secs;
            s.ms_per_step = 1e3 * secs / static_cast<double>(window_steps);
            s.peak_mib = static_cast<double>(device == Device::CUDA ? cuda::memory_stats().peak_in_use
                                                                    : cpu_bytes_peak()) /
                         1048576.0;
            s.eta_s =
                run_secs / static_cast<double>(step - at.step) * static_cast<double>(total_steps - step);
            report_step(s, metrics);
            window_start = now;
            window_wait = loader.stats().wait_seconds;
            window_steps = 0;
        }
        if ((ckpt_every > 0 && step % ckpt_every == 0) || step == total_steps || stop) {
            const LoaderCursor c = loader.cursor();
            const std::vector<int64_t> all =  // (world, 2): every rank's cursor
                comm->all_gather(from_vector<int64_t>({c.epoch, c.position}, {1, 2})).to_vector<int64_t>();
            std::vector<LoaderCursor> cursors;
            for (size_t r = 0; r + 1 < all.size(); r += 2) cursors.push_back({all[r], all[r + 1]});
            if (rank0)
                save_run_checkpoint(dir, step, total_steps, model, opt, names, cursors, cfg, acfg,
                                    cfg.integer("checkpoint.keep"));
        }
        if (eval_every > 0 && step % eval_every == 0 && step < total_steps) evaluate_now(step);
        if (stop) {
            if (rank0)
                std::printf("signal %d: checkpoint written at step %lld; resume with --resume latest\n",
                            g_signal.load(), static_cast<long long>(step));
            result.interrupted = true;
            return result;
        }
    }
    evaluate_now(step);
    const LoaderStats ls = loader.stats();
    Tensor counts =
        from_vector<double>({static_cast<double>(ls.samples), static_cast<double>(ls.skipped_samples),
                             static_cast<double>(ls.truncated_shards)},
                            {3});
    comm->all_reduce_sum(counts);  // every rank's, as the log lines' samples/s
    const std::vector<double> all = counts.to_vector<double>();
    const std::string ranks = comm->world() > 1 ? " on " + std::to_string(comm->world()) + " ranks" : "";
    if (rank0)
        std::printf(
            "done: %lld steps, %.0f samples%s, %.0f skipped, %.0f truncated shards; checkpoints in %s\n",
            static_cast<long long>(step), all[0], ranks.c_str(), all[1], all[2], dir.c_str());
    return result;
}

}  // namespace aclip
