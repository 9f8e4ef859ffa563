// test_trainer.cpp: training runs end to end on a small synthetic set: a run stopped and resumed from
// its checkpoint ends bitwise-equal to an uninterrupted one; a non-finite loss stops the run naming the
// step and the term; a resume with another schedule length is refused.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "engine/dist/comm.h"
#include "engine/io/files.h"
#include "engine/io/safetensors.h"
#include "model/aclip_compare.h"
#include "test_util.h"
#include "tests/train/small_run.h"
#include "train/step_log.h"
#include "train/trainer.h"

using namespace aclip;
namespace fs = std::filesystem;
using test::tiny_run;

namespace {
const std::string& data_dir() {
    return test::small_set_dir();
}
}  // namespace

TEST_SUITE("train") {
    TEST_CASE("a run resumed from a checkpoint ends bitwise-equal to an uninterrupted run") {
        TrainResult full = train(tiny_run("full"));
        CHECK(full.step == 6);
        CHECK(std::isfinite(full.loss));
        Config parted = tiny_run("parted");
        train(parted);
        std::vector<std::string> ckpts = list_checkpoints(data_dir() + "/parted");
        REQUIRE(ckpts.size() == 2);  // steps 3 and 6
        // The run stopped (SIGKILL) while writing step 6: only its state file had been written, and the
        // model's temporary file was left half-written; the metrics file's last row is torn.
        const std::string dir = data_dir() + "/parted";
        std::filesystem::rename(ckpts.back(), ckpts.back() + ".tmp.999999999");
        {
            std::ofstream torn(dir + "/metrics.jsonl", std::ios::app);
            torn << "{\"step\": 2, \"lr\": 0.0";
        }
        CHECK(list_checkpoints(dir) == std::vector<std::string>{ckpts[0]});  // step 6 is incomplete
        TrainResult resumed = train(parted, "latest");
        CHECK(resumed.first_step == 3);  // resumed, not started afresh (which would end in the same place)
        CHECK(resumed.step == 6);
        CHECK(resumed.loss == full.loss);
        test::check_same_last_checkpoint("full", "parted");
        std::vector<std::string> files;  // the stopped run's leftovers are gone
        for (const auto& e : std::filesystem::directory_iterator(dir))
            if (e.path().filename().string().starts_with("step_"))
                files.push_back(e.path().filename().string());
        std::sort(files.begin(), files.end());
        CHECK(files ==
              std::vector<std::string>{"step_00000003.model.safetensors", "step_00000003.state.safetensors",
                                       "step_00000006.model.safetensors", "step_00000006.state.safetensors"});
        {  // a checkpoint whose state cannot be written leaves no model file: the state is written first
            test::forget_checkpoint(dir + "/step_00000006.model.safetensors");
            const std::string blocker =
                dir + "/step_00000006.state.safetensors.tmp." + std::to_string(getpid());
            std::filesystem::create_directory(blocker);  // open() of the temporary file fails
            CHECK(test::error_of([&] { train(parted, "latest"); }).find("cannot create") !=
                  std::string::npos);
            std::filesystem::remove(blocker);
            CHECK(!std::filesystem::exists(dir + "/step_00000006.model.safetensors"));
            std::ofstream(dir + "/step_00000006.model.safetensors") << "a model without its state";
            CHECK(list_checkpoints(dir) == std::vector<std::string>{ckpts[0]});  // passed over
            CHECK(train(parted, "latest").first_step == 3);
        }
        // the metrics file describes the run beside it: the resumed run's rows replace the forgotten half's
        // (and the torn row)
        auto steps_logged = [](const std::string& run) {
            std::vector<std::string> steps;
            std::ifstream in(data_dir() + "/" + run + "/metrics.jsonl");
            for (std::string line; std::getline(in, line);) steps.push_back(line.substr(0, line.find(',')));
            return steps;
        };
        CHECK(!steps_logged("full").empty());
        CHECK(steps_logged("parted") == steps_logged("full"));
        // A fresh run is refused beside an earlier run's checkpoints (pruning and --resume latest go by step
        // number: they would mix the two runs); one that stopped before any checkpoint leaves only its rows,
        // which the fresh run replaces.
        const std::string full_dir = data_dir() + "/full";
        CHECK(test::error_of([&] { train(tiny_run("full")); })
                  .find("checkpoint.dir " + full_dir +
                        " holds the checkpoints of an earlier run (the newest: "
                        "step_00000006.model.safetensors)") != std::string::npos);
        for (const std::string& c : list_checkpoints(full_dir)) test::forget_checkpoint(c);
        train(tiny_run("full"));
        CHECK(steps_logged("parted") == steps_logged("full"));
        Config longer = tiny_run("parted");
        longer.set_override("train.steps=12");
        CHECK(test::error_of([&] {
                  train(longer, "latest");
              }).find("written for a run of 6 steps but this one has 12") != std::string::npos);
        const TrainResult forced = train(longer, "latest", /*force_schedule=*/true);  // the new schedule
        CHECK(forced.first_step == 6);
        CHECK(forced.step == 12);
        CHECK(test::error_of([&] {
                  train(longer, data_dir() + "/parted/config.ini");
              }).find("not a checkpoint's model file") != std::string::npos);
        // Back to step 3, where the folder holds later ones (another future of the run): refused, or
        // resumed into another folder, the later ones kept.
        const std::string step3 = dir + "/step_00000003.model.safetensors";
        CHECK(test::error_of([&] { train(parted, step3); })
                  .find("checkpoint.dir " + dir +
                        " holds checkpoints past the one resumed (step_00000003.model.safetensors): "
                        "step_00000006.model.safetensors") != std::string::npos);
        Config elsewhere = parted;
        elsewhere.set_override("checkpoint.dir=" + data_dir() + "/parted_again");
        CHECK(train(elsewhere, step3).loss == full.loss);
        CHECK(list_checkpoints(dir).size() == 4);  // steps 3, 6, and 9 and 12 of the longer schedule
    }

    TEST_CASE("lengths in epochs: an epoch is the full steps of the shards' samples") {
        Config c = tiny_run("epochs");
        for (const char* kv : {"train.batch_size=8", "train.accumulate=2", "train.steps=2 epochs",
                               "optim.warmup_steps=1 epoch", "checkpoint.every=1 epoch", "train.log_every=5"})
            c.set_override(kv);
        LocalComm local;
        const AclipConfig acfg = aclip_config_from(c, 300);
        LoaderConfig lc = loader_config_from(c, acfg, local, Device::CPU);
        CHECK(steps_per_epoch(lc, epoch_samples(lc), 2) == 5);  // 80 samples, 16 a step
        lc.world = 2;  // two ranks of 8 x 2: 32 samples a step, however the ranks split them
        CHECK(steps_per_epoch(lc, epoch_samples(lc), 2) == 2);
        lc.split_batches = true;
        CHECK(steps_per_epoch(lc, epoch_samples(lc), 2) == 2);
        TrainResult r = train(c);
        CHECK(r.step == 10);
        std::vector<std::string> ckpts = list_checkpoints(data_dir() + "/epochs");
        REQUIRE(ckpts.size() == 2);  // after each epoch
        CHECK(ckpts[0].find("step_00000005") != std::string::npos);
        CHECK(ckpts[1].find("step_00000010") != std::string::npos);
        // The checkpoint holds the length in steps: a resume that gives it in steps is the same schedule.
        test::forget_checkpoint(ckpts[1]);
        Config in_steps = c;
        in_steps.set_override("train.steps=10");
        const TrainResult resumed = train(in_steps, "latest");
        CHECK(resumed.first_step == 5);
        CHECK(resumed.step == 10);
        Config too_big = c;
        too_big.set_override("train.batch_size=48");  // 96 samples a step from 80
        too_big.set_override("checkpoint.dir=" + data_dir() + "/epochs_too_big");
        CHECK(test::error_of([&] { train(too_big); })
                  .find("train.steps = 2 epochs: the 80 samples of an epoch "
                        "do not fill one step") != std::string::npos);
    }

    TEST_CASE("train.grad_checkpointing trains to the same weights, bit for bit") {
        auto weights_after = [&](const std::string& run, const char* checkpointing) {
            Config c = tiny_run(run);
            for (const char* kv : {"train.steps=2", "checkpoint.every=0"}) c.set_override(kv);
            c.set_override(std::string("train.grad_checkpointing=") + checkpointing);
            train(c);
            return load_safetensors(list_checkpoints(data_dir() + "/" + run).back());
        };
        const SafetensorsFile plain = weights_after("gc_off", "false"), kept = weights_after("gc_on", "true");
        for (const auto& [name, t] : plain.tensors) {
            CAPTURE(name);
            CHECK_CLOSE(kept.get(name), t, 0.0, 0.0);
        }
    }

    TEST_CASE("metrics.jsonl: a resume drops the rows after its step, a fresh run keeps the earlier file") {
        const std::string dir = data_dir() + "/metrics_file", path = dir + "/metrics.jsonl";
        std::filesystem::remove_all(dir);
        std::filesystem::create_directories(dir);
        const std::string rows = "{\"step\": 1}\n{\"step\": 2}\n{\"step\": 3}\n";
        std::ofstream(path) << rows;
        open_metrics(path, 2) << "{\"step\": 3, \"again\": 1}\n";  // resumed at step 2
        CHECK(read_file(path) == "{\"step\": 1}\n{\"step\": 2}\n{\"step\": 3, \"again\": 1}\n");
        CHECK_FALSE(std::filesystem::exists(dir + "/metrics.previous.jsonl"));
        const std::string before = read_file(path);
        open_metrics(path, 0)
            << "{\"step\": 1, \"fresh\": 1}\n";  // a fresh run: the earlier rows moved aside
        CHECK(read_file(path) == "{\"step\": 1, \"fresh\": 1}\n");
        CHECK(read_file(dir + "/metrics.previous.jsonl") == before);
    }

    TEST_CASE("each log line is a JSON line of metrics.jsonl with every field") {
        Config c = tiny_run("fields");
        c.set_override("train.steps=3");
        train(c);
        std::ifstream in(data_dir() + "/fields/metrics.jsonl");
        std::string line;
        REQUIRE(std::getline(in, line));
        for (const char* key :
             {"\"step\": 3,", "\"epoch\": ", "\"lr\": ", "\"loss\": ", "\"clip1\": ", "\"simclr\": ",
              "\"byol\": ", "\"logit_scale\": ", "\"ema_momentum\": ", "\"samples_per_s\": ",
              "\"data_wait\": ", "\"ms_per_step\": ", "\"peak_mib\": "})
            CHECK_MESSAGE(line.find(key) != std::string::npos, key, " in ", line);
        CHECK(line.back() == '}');
    }

    TEST_CASE("train.precision = bf16 trains with bf16 products and keeps f32 master weights") {
        Config c = tiny_run("bf16");
        c.set_override("train.precision=bf16");
        c.set_override("train.steps=3");
        TrainResult r = train(c);
        CHECK(r.step == 3);
        CHECK(std::isfinite(r.loss));
        SafetensorsFile saved = load_safetensors(list_checkpoints(data_dir() + "/bf16").back());
        for (auto& [name, t] : saved.tensors)
            if (is_floating(t.dtype())) CHECK_MESSAGE(t.dtype() == DType::F32, name);
        CHECK(test::error_of([&] { c.set_override("train.precision=f16"); }).find("not one of: f32, bf16") !=
              std::string::npos);
    }

    TEST_CASE("train.device = cuda without a GPU is a clear error") {
        if (cuda_device_count() > 0) return;  // the GPU path is tested by the cuda tier on a GPU
        Config c = tiny_run("cuda");
        c.set_override("train.device=cuda");
        std::string e = test::error_of([&] { train(c); });
        CHECK(e.find("CUDA tensor") != std::string::npos);
        CHECK(e.find("HINT") != std::string::npos);
    }

    TEST_CASE("SIGTERM finishes the step, writes a checkpoint and exits; the run resumes from it") {
        Config c = tiny_run("signal");
        for (const char* kv : {"train.steps=1000000", "checkpoint.every=0", "train.log_every=1"})
            c.set_override(kv);
        const std::string dir = data_dir() + "/signal";
        fs::create_directories(dir);
        {
            std::ofstream ini(dir + "/run.ini");
            ini << c.text();
        }
        // aclip_train run.ini > train.log 2>&1, as a user would start it; returns once it is training
        const std::string binary = std::string(ACLIP_BINARY_DIR) + "/aclip_train", ini = dir + "/run.ini";
        auto logged_steps = [&] {  // rows in metrics.jsonl
            std::ifstream in(dir + "/metrics.jsonl");
            return std::count(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>(), '\n');
        };
        auto start_training = [&](int output = -1) {  // output: the write end of a pipe, or train.log
            posix_spawn_file_actions_t io;
            posix_spawn_file_actions_init(&io);
            posix_spawn_file_actions_addopen(&io, 2, (dir + "/train.log").c_str(),
                                             O_WRONLY | O_CREAT | O_TRUNC, 0644);
            posix_spawn_file_actions_adddup2(&io, output >= 0 ? output : 2, 1);
            std::vector<char*> argv = {const_cast<char*>(binary.c_str()), const_cast<char*>(ini.c_str()),
                                       nullptr};
            pid_t pid = 0;
            const int spawned = posix_spawn(&pid, binary.c_str(), &io, nullptr, argv.data(), environ);
            posix_spawn_file_actions_destroy(&io);
            REQUIRE_MESSAGE(spawned == 0, "cannot start ", binary);
            const auto start = std::chrono::steady_clock::now();
            while (logged_steps() < 2 && std::chrono::steady_clock::now() - start < std::chrono::seconds(120))
                std::this_thread::sleep_for(std::chrono::milliseconds(20));
            REQUIRE(logged_steps() >= 2);  // training, not starting up
            return pid;
        };
        auto clear_run = [&] {  // its metrics and checkpoints, so that a fresh run may start there
            fs::remove(dir + "/metrics.jsonl");
            for (const std::string& done : list_checkpoints(dir)) test::forget_checkpoint(done);
        };
        auto read_log = [&] {
            std::stringstream log;
            log << std::ifstream(dir + "/train.log").rdbuf();
            return log.str();
        };
        pid_t pid = start_training();
        kill(pid, SIGTERM);
        int status = 0;
        REQUIRE(waitpid(pid, &status, 0) == pid);
        CHECK(WIFEXITED(status));
        CHECK(WEXITSTATUS(status) == 130);
        const std::string log = read_log();
        CAPTURE(log);
        CHECK(log.find("aclip_train: stopping after this step, with a checkpoint") != std::string::npos);
        const size_t at = log.find("signal 15: checkpoint written at step ");
        REQUIRE(at != std::string::npos);
        const int64_t step = std::stoll(log.substr(at + 38));
        CHECK(step >= 2);
        std::vector<std::string> ckpts = list_checkpoints(dir);
        REQUIRE(ckpts.size() == 1);
        CHECK(ckpts[0].find("step_" + std::string(8 - std::to_string(step).size(), '0') +
                            std::to_string(step)) != std::string::npos);
        // the schedule was a million steps: resume for two more under a forced shorter one
        c.set_override("train.steps=" + std::to_string(step + 2));
        TrainResult resumed = train(c, "latest", /*force_schedule=*/true);
        CHECK(resumed.first_step == step);
        CHECK(resumed.step == step + 2);
        CHECK(std::isfinite(resumed.loss));

        // A second signal stops the process at once. Sent while it is stopped, both arrive together:
        // distinct signals are not merged, as a second SIGTERM would be into the first.
        clear_run();
        pid = start_training();
        for (int sig : {SIGSTOP, SIGTERM, SIGINT, SIGCONT}) kill(pid, sig);
        REQUIRE(waitpid(pid, &status, 0) == pid);
        CAPTURE(read_log());
        CHECK(WIFSIGNALED(status));  // not an exit after a checkpoint
        CHECK((WIFSIGNALED(status) && (WTERMSIG(status) == SIGINT || WTERMSIG(status) == SIGTERM)));
        CHECK(read_log().find("checkpoint written") == std::string::npos);

        // aclip_train | grep ..., and Ctrl-C: grep ends at once, and the next line written to the pipe
        // raises SIGPIPE, whose default would end aclip_train before its checkpoint.
        clear_run();
        int pipe_ends[2];
        REQUIRE(::pipe2(pipe_ends, O_CLOEXEC) == 0);  // the child holds the write end alone
        pid = start_training(pipe_ends[1]);
        ::close(pipe_ends[1]);
        ::close(pipe_ends[0]);  // the reader is gone
        kill(pid, SIGINT);
        REQUIRE(waitpid(pid, &status, 0) == pid);
        CAPTURE(read_log());
        CHECK(WIFEXITED(status));  // not ended by SIGPIPE
        CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 130));
        CHECK(list_checkpoints(dir).size() == 1);
    }

    TEST_CASE(
        "gradient accumulation: two batches a step; the EMA teacher moves once a step, or once a "
        "micro-batch as the official code") {
        for (const char* when : {"step", "micro_batch"}) {
            CAPTURE(when);
            const std::string run = std::string("accumulate_") + when;
            Config c = tiny_run(run);
            // full learning rate from the start and a fast teacher, so that one step moves both well above
            // f32 rounding (momentum 0.75 at step 1 of 2)
            for (const char* kv : {"train.steps=2", "train.accumulate=2", "checkpoint.every=1",
                                   "optim.warmup_steps=0", "aclip.ema_momentum=0.5"})
                c.set_override(kv);
            c.set_override(std::string("aclip.ema_update=") + when);
            TrainResult r = train(c);
            CHECK(r.step == 2);
            CHECK(std::isfinite(r.loss));
            std::vector<std::string> ckpts = list_checkpoints(data_dir() + "/" + run);
            REQUIRE(ckpts.size() == 2);
            SafetensorsFile state = load_safetensors(state_file_of(ckpts[1]));
            CHECK(state.metadata.at("loader.rank0.position") ==
                  "16");  // 2 steps x 2 micro-batches x 4 samples
            // Step 1 moves the teacher with momentum m, once (ema2 - ema1 = (1 - m)(online1 - ema1)) or
            // twice, the online weights unchanged between (a factor 1 - m^2: 0.44 instead of 0.25).
            const double m = ema_momentum(1, 2, c.number("aclip.ema_momentum"));
            const double factor = std::string(when) == "step" ? 1 - m : 1 - m * m;
            SafetensorsFile one = load_safetensors(ckpts[0]), two = load_safetensors(ckpts[1]);
            int compared = 0;
            for (const auto& [name, ema2] : two.tensors) {
                if (name.rfind("ema.visual.", 0) != 0) continue;
                Tensor ema1 = one.get(name).to(DType::F64), online1 = one.get(name.substr(4)).to(DType::F64);
                Tensor moved = sub(ema2.to(DType::F64), ema1),
                       expected = mul_scalar(sub(online1, ema1), factor);
                if (test::norm_rel_error(expected, zeros_like(expected)) < 1e-9)
                    continue;  // not moved by step 1
                CAPTURE(name);
                // f32 rounding of ema2 (|ema| <= ~1: 6e-8) against moves of ~1e-4
                CHECK(test::norm_rel_error(moved, expected) < 1e-2);
                ++compared;
            }
            CHECK(compared > 10);
        }
    }

    TEST_CASE("a non-finite loss stops the run, naming the step and the term") {
        Config c = tiny_run("nan");
        c.set_override("aclip.simclr_tau=1e-45");  // 1/tau overflows f32: SimCLR's logits are inf at once
        std::string e = test::error_of([&] { train(c); });
        CHECK(e.find("step 0: the loss loss is") != std::string::npos);  // the first bad term
        c.set_override("train.on_nonfinite=skip");
        c.set_override("train.steps=2");
        CHECK(train(c).step == 2);  // skipped steps still count
    }
}

TEST_SUITE("train") {
    TEST_CASE("every shipped config starts: one step on the small set, with a tiny model") {
        for (const auto& e : fs::directory_iterator(std::string(ACLIP_SOURCE_DIR) + "/configs")) {
            if (e.path().extension() != ".ini") continue;
            CAPTURE(e.path().string());
            Config c;
            c.load_file(e.path().string());
            Config t = tiny_run("configs_" + e.path().stem().string());
            for (const char* key : {"data.train", "tokenizer.merges", "tokenizer.context", "checkpoint.dir"})
                c.set(key, t.str(key), "test");
            for (const char* kv :
                 {"model.preset=tiny", "train.device=cpu", "train.steps=1", "train.batch_size=4",
                  "data.captions=txt", "model.image_size=0", "model.patch_size=0", "model.vision_width=0",
                  "model.vision_layers=0", "model.vision_heads=0", "model.text_width=0",
                  "model.text_layers=0", "model.text_heads=0", "model.embed_dim=0", "model.ssl_hidden=0",
                  "model.ssl_dim=0", "data.workers=1", "data.shuffle_buffer=8"})
                c.set_override(kv);
            c.set("eval.zeroshot", "", "test");
            c.set("eval.retrieval", "", "test");
            CHECK(train(c).step == 1);
        }
    }
}

TEST_SUITE("train") {
    TEST_CASE("2 processes x batch B (mpirun) reach the weights of 1 process x batch 2B, and resume") {
        if (!mpi_available() || std::system("command -v mpirun > /dev/null 2>&1") != 0) {
            MESSAGE("SKIPPED: no MPI in this build or no mpirun on PATH");
            return;
        }
        Config one = tiny_run("dp_one");
        one.set_override("data.split=batch");
        one.set_override("train.steps=3");
        one.set_override("train.batch_size=8");
        one.set_override("checkpoint.every=0");
        train(one);
        auto two_processes = [&](const std::string& dir, const std::string& extra) {
            const std::string cmd =
                "mpirun --allow-run-as-root --oversubscribe --mca btl_vader_single_copy_mechanism none -np "
                "2 " +
                std::string(ACLIP_BINARY_DIR) + "/aclip_train " + data_dir() + "/dp_one/config.ini" +
                " train.batch_size=4 checkpoint.every=1 checkpoint.dir=" + dir + extra + " > " + dir +
                ".log 2>&1";
            return std::system(cmd.c_str());
        };
        const std::string two_dir = data_dir() + "/dp_two";
        REQUIRE(two_processes(two_dir, "") == 0);
        SafetensorsFile a = load_safetensors(list_checkpoints(data_dir() + "/dp_one").back());
        SafetensorsFile b = load_safetensors(list_checkpoints(two_dir).back());
        for (const auto& [name, ta] : a.tensors) {
            CAPTURE(name);
            // Elements with an exactly-zero gradient follow f32 noise through Adam on either side
            // (aclip_compare.h) and are left out; everything else is compared as whole tensors: f32 over 3
            // steps, summed in another order across the ranks. The gradients agree to ~1e-5 (the dist
            // suite); Adam's normalised steps amplify that where an element's gradients nearly cancel
            // from step to step, most in the zero-initialised biases, whose norm is only their 3 steps
            // (visual.ln_post.bias: 1.2e-4 on an AVX-512 machine, under 1e-4 on the earlier one).
            auto part = test::zero_gradient_part(name, ta.numel());
            Tensor ours = test::split_part(b.get(name).to(DType::F64), part).first;
            Tensor ref = test::split_part(ta.to(DType::F64), part).first;
            if (ref.numel() > 0) CHECK(test::norm_rel_error(ours, ref) < 1e-3);
        }
        // With each rank on its own shards (its own stream of samples and its own cursor in it), the pair
        // stopped after step 2 and resumed from its checkpoint ends where the uninterrupted pair did, bit
        // for bit.
        const std::string shards_dir = data_dir() + "/dp_shards",
                          resumed_dir = data_dir() + "/dp_shards_resumed";
        REQUIRE(two_processes(shards_dir, " data.split=shards") == 0);
        fs::remove_all(resumed_dir);
        fs::copy(shards_dir, resumed_dir);
        test::forget_checkpoint(resumed_dir + "/step_00000003.model.safetensors");
        REQUIRE(two_processes(resumed_dir, " data.split=shards --resume latest") == 0);
        std::stringstream log;  // a resumed run, not a fresh one (which would end in the same place)
        log << std::ifstream(resumed_dir + ".log").rdbuf();
        CHECK(log.str().find("resumed from " + resumed_dir + "/step_00000002.model.safetensors at step 2") !=
              std::string::npos);
        CHECK(log.str().find("done: 3 steps, 8 samples on 2 ranks") !=
              std::string::npos);  // a step of 4 a rank
        SafetensorsFile full = load_safetensors(list_checkpoints(shards_dir).back()),
                        resumed = load_safetensors(list_checkpoints(resumed_dir).back());
        REQUIRE(resumed.tensors.size() == full.tensors.size());
        for (size_t i = 0; i < resumed.tensors.size(); ++i) {
            CAPTURE(resumed.tensors[i].first);
            CHECK(resumed.tensors[i].second.to_vector<double>() ==
                  full.tensors[i].second.to_vector<double>());
        }
    }
}
