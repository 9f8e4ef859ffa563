// step_log.cpp: see step_log.h.
#include "train/step_log.h"

#include <cmath>
#include <cstdio>
#include <filesystem>

#include "engine/io/files.h"
#include "engine/ops/ops.h"

namespace aclip {

namespace {

std::string fmt(double v, int precision = 4) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.*g", precision, v);
    return buf;
}

// The terms in the order of the log and of the non-finite check.
std::vector<std::pair<const char*, std::optional<double>>> terms(const LossValues& v) {
    return {{"loss", v.loss}, {"clip1", v.clip1}, {"clip2", v.clip2}, {"simclr", v.simclr}, {"byol", v.byol}};
}

// One JSON object on a line: numbers as %.8g, integers exactly, a non-finite value (which JSON cannot hold)
// as null.
class JsonLine {
  public:
    JsonLine& add(const char* key, int64_t v) { return field(key, std::to_string(v)); }
    JsonLine& add(const char* key, double v) { return field(key, std::isfinite(v) ? fmt(v, 8) : "null"); }
    JsonLine& add(const char* key, const std::string& text) { return field(key, "\"" + text + "\""); }
    std::string done() const { return text_ + "}\n"; }

  private:
    JsonLine& field(const char* key, const std::string& value) {
        text_ += std::string(text_.empty() ? "{\"" : ", \"") + key + "\": " + value;
        return *this;
    }
    std::string text_;
};

}  // namespace

LossReadback::LossReadback(const AclipStep& step)
    : has_clip2_(step.clip2.defined()), has_simclr_(step.simclr.defined()), has_byol_(step.byol.defined()) {
    // one copy for every term (each would wait for the device on its own)
    std::vector<Tensor> defined;
    for (const Tensor* t : {&step.loss, &step.clip1, &step.clip2, &step.simclr, &step.byol})
        if (t->defined()) defined.push_back(t->detach().to(DType::F32).reshape({1}));
    copy_ = std::make_unique<HostCopy>(concat(defined, 0));
}

LossValues LossReadback::wait() {
    const std::vector<double> values = copy_->wait().to_vector<double>();
    size_t next = 0;
    auto value_if = [&](bool present) {
        return present ? std::optional<double>(values[next++]) : std::nullopt;
    };
    LossValues v;
    v.loss = values[next++];
    v.clip1 = values[next++];
    v.clip2 = value_if(has_clip2_);
    v.simclr = value_if(has_simclr_);
    v.byol = value_if(has_byol_);
    return v;
}

std::string first_nonfinite(const LossValues& v) {
    for (const auto& [name, value] : terms(v))
        if (value && !std::isfinite(*value)) return std::string(name) + " loss is " + std::to_string(*value);
    return "";
}

void report_step(const StepLog& s, std::ofstream& metrics) {
    auto term = [](const std::optional<double>& v) { return v ? fmt(*v) : std::string("-"); };
    std::printf(
        "step %lld/%lld | epoch %lld | lr %s | loss %.4f (clip %.3f/%s simclr %s byol %s) | scale %.1f | m "
        "%.5f | "
        "%.1f samples/s%s | data %.0f%% | %.0f ms/step | peak %.0f MiB | eta %.0fs\n",
        static_cast<long long>(s.step), static_cast<long long>(s.total_steps),
        static_cast<long long>(s.epoch), fmt(s.lr, 3).c_str(), s.loss, s.last.clip1,
        term(s.last.clip2).c_str(), term(s.last.simclr).c_str(), term(s.last.byol).c_str(), s.logit_scale,
        s.ema_momentum, s.samples_per_s,
        s.ranks > 1 ? (" (" + fmt(s.samples_per_s / s.ranks, 4) + " a rank)").c_str() : "", 100 * s.data_wait,
        s.ms_per_step, s.peak_mib, s.eta_s);
    std::fflush(stdout);
    JsonLine j;
    j.add("step", s.step).add("epoch", s.epoch).add("lr", s.lr);
    j.add("loss", s.loss);  // the step's mean; the other terms are the last micro-batch's
    for (const auto& [name, value] : terms(s.last))
        if (value && std::string(name) != "loss") j.add(name, *value);
    j.add("logit_scale", s.logit_scale)
        .add("ema_momentum", s.ema_momentum)
        .add("samples_per_s", s.samples_per_s)
        .add("ranks", static_cast<int64_t>(s.ranks));
    j.add("data_wait", s.data_wait).add("ms_per_step", s.ms_per_step).add("peak_mib", s.peak_mib);
    metrics << j.done();
    metrics.flush();
}

void report_eval(int64_t step, const std::string& label, const EvalResult& r, std::ofstream& metrics) {
    if (r.top1 < 0 && r.i2t_r1 < 0) return;
    std::printf("eval step %lld %-6s | %s\n", static_cast<long long>(step), label.c_str(),
                eval_summary(r, false).c_str());
    std::fflush(stdout);
    JsonLine j;
    j.add("step", step).add("eval", label);
    if (r.top1 >= 0) j.add("top1", r.top1).add("top5", r.top5);
    if (r.i2t_r1 >= 0) {
        j.add("i2t_r1", r.i2t_r1).add("i2t_r5", r.i2t_r5).add("i2t_r10", r.i2t_r10);
        j.add("t2i_r1", r.t2i_r1).add("t2i_r5", r.t2i_r5).add("t2i_r10", r.t2i_r10);
    }
    j.add("skipped_images", r.skipped_images);
    metrics << j.done();
    metrics.flush();
}

std::ofstream open_metrics(const std::string& path, int64_t step) {
    std::error_code error;
    if (step == 0 && std::filesystem::file_size(path, error) > 0 && !error) {  // an earlier run's rows
        const std::string previous =
            std::filesystem::path(path).replace_extension(".previous.jsonl").string();
        std::filesystem::rename(path, previous, error);
        AC_CHECK(!error, "cannot move the earlier run's ", path, " to ", previous, ": ", error.message());
        std::fprintf(stderr, "note: the earlier run's metrics are kept in %s\n", previous.c_str());
    }
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

}  // namespace aclip
