// test_config.cpp: the INI config: defaults, files, command-line overrides, and one clear error for
// each kind of mistake; every config shipped in configs/ parses; the exit statuses of run_program.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <new>
#include <stdexcept>

#include "test_util.h"
#include "train/cli.h"
#include "train/config.h"
#include "train/trainer.h"

using namespace aclip;
using aclip::test::error_of;

namespace {

std::string write_ini(const std::string& text) {
    std::string path =
        std::filesystem::temp_directory_path().string() + "/aclip_cfg_" + std::to_string(getpid()) + ".ini";
    std::ofstream(path) << text;
    return path;
}

}  // namespace

TEST_SUITE("train") {
    TEST_CASE("defaults, a file and overrides, in that order") {
        Config c;
        CHECK(c.str("aclip.mask") == "attentive");
        CHECK(c.number("optim.lr") == 5e-4);
        c.load_file(
            write_ini("# comment\n[optim]\nlr = 1e-3   \n\n[aclip]\nmask = \"random\"\n; another comment\n"));
        CHECK(c.number("optim.lr") == 1e-3);
        CHECK(c.str("aclip.mask") == "random");
        c.set_override("optim.lr=2e-3");
        CHECK(c.number("optim.lr") == 2e-3);
        CHECK(c.text().find("[optim]\nlr = 2e-3\n") != std::string::npos);
        c.load_file(write_ini("\xEF\xBB\xBF[optim]\r\nlr = 3e-3\r\n"));  // a byte-order mark, CRLF lines
        CHECK(c.number("optim.lr") == 3e-3);
        CHECK(Config::help().find("weight decay") != std::string::npos);
    }

    TEST_CASE("mistakes name the file, the line, the key and what is accepted") {
        Config c;
        std::string p = write_ini("[optim]\nlr = 1e-3\n[optimizer]\n");
        CHECK(error_of([&] { c.load_file(p); }).find(p + ":3: unknown section [optimizer]") !=
              std::string::npos);
        p = write_ini("[optim]\nlearning_rate = 1\n");
        std::string e = error_of([&] { c.load_file(p); });
        CHECK(e.find(p + ":2: unknown key 'optim.learning_rate'") != std::string::npos);
        CHECK(e.find("accepts: lr, start_lr") != std::string::npos);
        p = write_ini("[train]\nsteps = many\n");
        CHECK(error_of([&] {
                  c.load_file(p);
              }).find(":2: train.steps = 'many' is not a count of steps: N, N steps or N epochs") !=
              std::string::npos);
        for (const char* bad : {"2 weeks", "1.5 epochs", "-3", "2 epochs later", "epochs"})
            CHECK(error_of([&] {
                      c.set_override(std::string("eval.every=") + bad);
                  }).find("is not a count of steps") != std::string::npos);
        p = write_ini("[train]\nlog_every = 1 epoch\n");  // a count of log lines stays an integer
        CHECK(error_of([&] { c.load_file(p); }).find("is not an integer") != std::string::npos);
        p = write_ini("[aclip]\nmask = sometimes\n");
        CHECK(error_of([&] { c.load_file(p); }).find("is not one of: attentive, random, none") !=
              std::string::npos);
        p = write_ini("[optim]\nlr = 1e-3\n[train]\nsteps = 5\n[optim]\nlr = 2e-3\n");
        CHECK(error_of([&] {
                  c.load_file(p);
              }).find(p + ":6: optim.lr is set again (first at " + p + ":2)") != std::string::npos);
        p = write_ini("lr = 1\n");
        CHECK(error_of([&] { c.load_file(p); }).find(":1: key before any [section]") != std::string::npos);
        p = write_ini("[optim]\nlr\n");
        CHECK(error_of([&] { c.load_file(p); }).find(":2: expected 'key = value'") != std::string::npos);
        CHECK(error_of([&] {
                  c.set_override("optim.lr=fast");
              }).find("command line: optim.lr = 'fast' is not a finite number") != std::string::npos);
        // out of range or not finite: refused when set, not an abort when read (std::stoll, std::stod)
        CHECK(error_of([&] {
                  c.set_override("train.log_every=99999999999999999999");
              }).find("train.log_every = '99999999999999999999' is not an integer") != std::string::npos);
        for (const char* lr : {"1e999", "nan", "inf", "0x1p-3"})
            CHECK(error_of([&] {
                      c.set_override(std::string("optim.lr=") + lr);
                  }).find("is not a finite number") != std::string::npos);
        CHECK(error_of([&] {
                  c.load_file(std::string(ACLIP_SOURCE_DIR) + "/configs");
              }).find("configs' is a directory, not a file") != std::string::npos);  // not an empty config
        c.set_override("optim.lr=+2.5e-4");
        CHECK(c.number("optim.lr") == 2.5e-4);
        CHECK(error_of([&] { c.set_override("lr=1"); }).find("expected section.key=value") !=
              std::string::npos);
        CHECK(error_of([&] { c.load_file("/nonexistent.ini"); }).find("cannot open '/nonexistent.ini'") !=
              std::string::npos);
    }

    TEST_CASE("numbers outside their bounds are refused when set, with the bounds") {
        // each of these crashed (a division by zero), hung, or ran on silently with a meaningless value
        Config c;
        const std::vector<std::pair<std::string, std::string>> cases = {
            {"train.batch_size=0", "must be at least 1"},
            {"train.accumulate=0", "must be at least 1"},
            {"train.log_every=0", "must be at least 1"},
            {"eval.batch_size=-2", "must be at least 1"},
            {"checkpoint.keep=0", "must be at least 1"},  // would have deleted every checkpoint
            {"data.workers=0", "must be at least 1"},
            {"aclip.mask_block=0", "must be at least 1"},
            {"aclip.keep_ratio=2", "must be from 0 to 1"},
            {"aclip.ema_momentum=1.5", "must be from 0 to 1"},
            {"aclip.simclr_tau=0", "must be above 0"},
            {"optim.lr=-1", "must be at least 0"},
            {"optim.beta2=1", "must be from 0 to below 1"},
            {"optim.eps=0", "must be above 0"},
            {"model.patch_size=-8", "must be at least 0"},
            {"data.std=0.5,0,0.5", "(each number must be above 0)"}};
        for (const auto& [assignment, says] : cases) {
            CAPTURE(assignment);
            const std::string e = error_of([&] { c.set_override(assignment); });
            CHECK(e.find("command line: " + assignment.substr(0, assignment.find('=')) + " = '") !=
                  std::string::npos);
            CHECK(e.find("' is out of range (" +
                         std::string(assignment.starts_with("data.std") ? "each " : "")) !=
                  std::string::npos);
            CHECK(e.find(says) != std::string::npos);
        }
        CHECK(c.text() == Config().text());  // nothing was set
        for (const char* edge : {"aclip.keep_ratio=0", "aclip.keep_ratio=1", "optim.beta2=0", "optim.lr=0",
                                 "train.batch_size=1", "train.seed=-7", "data.mean=-1,0,+2.5"})
            CHECK_NOTHROW(c.set_override(edge));
        CHECK(c.numbers3("data.mean") == std::array<double, 3>{-1, 0, 2.5});
        c.set_override("data.std= 0.5 ,0.25,1");
        CHECK(c.numbers3("data.std") == std::array<double, 3>{0.5, 0.25, 1});
        for (const char* bad : {"1,2", "1,2,3,4", "1,,3", "a,b,c", "1;2;3", "1,2,nan", ""}) {
            CAPTURE(bad);
            CHECK(error_of([&] {
                      c.set_override(std::string("data.mean=") + bad);
                  }).find("is not three finite numbers separated by commas") != std::string::npos);
        }
        CHECK(Config::help().find("AdamW beta2 (from 0 to below 1)") != std::string::npos);
        c.set_override("tokenizer.context=2");  // within its bounds, too short for a model
        CHECK(error_of([&] {
                  aclip_config_from(c, 49408);
              }).find("tokenizer.context = 2: a caption needs room") != std::string::npos);
    }

    TEST_CASE("changes_from lists the keys set otherwise, in the table's order") {
        Config before, now;
        CHECK(now.changes_from(before).empty());
        now.set_override("train.batch_size=32");
        now.set_override("data.train=a/{0..9}.tar");
        now.set_override("aclip.mask=none");
        CHECK(now.changes_from(before) == std::vector<std::string>{"data.train \"\" -> a/{0..9}.tar",
                                                                   "aclip.mask attentive -> none",
                                                                   "train.batch_size 64 -> 32"});
        CHECK(before.changes_from(now).size() == 3);
    }

    TEST_CASE("lengths of training are steps or epochs") {
        Config c;
        const std::vector<std::pair<std::string, StepCount>> cases = {
            {"500", {500, false}},   {"500 steps", {500, false}}, {"1 step", {1, false}},
            {"2 epochs", {2, true}}, {"1 epoch", {1, true}},      {"3epochs", {3, true}},
            {"0", {0, false}}};
        for (const auto& [text, want] : cases) {
            CAPTURE(text);
            c.set_override("checkpoint.every=" + text);
            const StepCount got = c.step_count("checkpoint.every");
            CHECK(got.count == want.count);
            CHECK(got.epochs == want.epochs);
        }
        c.set_override("train.steps=25 epochs");
        CHECK(c.step_count("train.steps").steps(3586) == 89650);  // the paper's 25 epochs at batch 4096
        c.set_override("train.steps=600");
        CHECK(c.step_count("train.steps").steps(3586) == 600);
    }

    TEST_CASE("every shipped config parses and describes a model that builds") {
        int n = 0;
        for (const auto& e :
             std::filesystem::directory_iterator(std::string(ACLIP_SOURCE_DIR) + "/configs")) {
            if (e.path().extension() != ".ini") continue;
            CAPTURE(e.path().string());
            Config c;
            c.load_file(e.path().string());
            AclipConfig a = aclip_config_from(c, 49408);
            CHECK(a.clip.vision.num_patches() > 0);
            ++n;
        }
        CHECK(n >= 1);
        Config one_view;  // the SSL losses need two views: said in the keys' names
        one_view.set_override("aclip.views=1");
        CHECK(error_of([&] { aclip_config_from(one_view, 49408); }).find("set aclip.ssl = false") !=
              std::string::npos);
        one_view.set_override("aclip.ssl=false");
        CHECK(aclip_config_from(one_view, 49408).views == 1);
    }

    TEST_CASE("run_program: the body's status; 1 for an aclip::Error and for any other exception") {
        CHECK(run_program("t", [] { return 130; }) == 130);
        CHECK(run_program("t", []() -> int { AC_FAIL("a clear error"); }) == 1);
        CHECK(run_program("t", []() -> int { throw std::bad_alloc(); }) == 1);
        CHECK(run_program("t", []() -> int { throw std::out_of_range("stoll"); }) == 1);
    }
}
