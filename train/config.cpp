// config.cpp: see config.h. The key table below is the documentation of every setting.
#include "train/config.h"

#include <map>
#include <optional>
#include <sstream>

#include "engine/core/error.h"
#include "engine/core/parse.h"
#include "engine/io/files.h"

namespace aclip {

const std::vector<ConfigKey>& Config::keys() {
    static const std::vector<ConfigKey> table = {
        {"model",
         "preset",
         "tiny",
         "model size",
         "string",
         {"tiny", "vit_s16", "vit_b16", "vit_l16", "openai_vit_b16"}},
        {"model", "image_size", "0", "image side in pixels (0: the preset's)", "int", {}, at_least(0)},
        {"model", "patch_size", "0", "patch side (0: the preset's)", "int", {}, at_least(0)},
        {"model", "vision_width", "0", "image tower width (0: the preset's)", "int", {}, at_least(0)},
        {"model", "vision_layers", "0", "image tower depth (0: the preset's)", "int", {}, at_least(0)},
        {"model", "vision_heads", "0", "image tower heads (0: the preset's)", "int", {}, at_least(0)},
        {"model", "text_width", "0", "text tower width (0: the preset's)", "int", {}, at_least(0)},
        {"model", "text_layers", "0", "text tower depth (0: the preset's)", "int", {}, at_least(0)},
        {"model", "text_heads", "0", "text tower heads (0: the preset's)", "int", {}, at_least(0)},
        {"model", "embed_dim", "0", "joint embedding size (0: the preset's)", "int", {}, at_least(0)},
        {"model",
         "ssl_hidden",
         "0",
         "hidden width of the SimCLR and BYOL heads (0: the preset's)",
         "int",
         {},
         at_least(0)},
        {"model",
         "ssl_dim",
         "0",
         "output size of the SimCLR and BYOL heads (0: the preset's)",
         "int",
         {},
         at_least(0)},
        {"data",
         "train",
         "",
         "training shards, e.g. data/synthetic/train/{00000..00019}.tar, or a folder of .tar shards "
         "(required)",
         "string",
         {}},
        {"data",
         "captions",
         "txt",
         "caption source: KEY.txt, or SLIP's coin flip of KEY.json title/description",
         "string",
         {"txt", "slip_json"}},
        {"data",
         "workers",
         "2",
         "decoding threads (training batches, and evaluation images)",
         "int",
         {},
         at_least(1)},
        {"data", "shuffle_buffer", "1000", "samples in the shuffle buffer", "int", {}, at_least(1)},
        {"data",
         "split",
         "shards",
         "ranks read their own shards (shards), or slices of one global batch (batch: "
         "results independent of the number of ranks, each rank decodes every sample)",
         "string",
         {"shards", "batch"}},
        {"data",
         "mean",
         "0.485,0.456,0.406",
         "normalisation mean of R, G, B (ImageNet's, as A-CLIP)",
         "floats3",
         {}},
        {"data", "std", "0.229,0.224,0.225", "normalisation std of R, G, B", "floats3", {}, above(0)},
        {"data",
         "jpeg_planes",
         "true",
         "resample YCbCr JPEGs' stored planes and convert the views to RGB (1.14x faster); false: decode "
         "to RGB first, as PIL does (differs by a few levels at sharp saturated edges)",
         "bool",
         {}},
        {"tokenizer",
         "merges",
         "",
         "BPE merges file (CLIP's bpe_simple_vocab_16e6.txt.gz, or a learned one)",
         "string",
         {}},
        {"tokenizer", "context", "0", "text context length (0: the model's)", "int", {}, at_least(0)},
        {"tokenizer",
         "truncate",
         "eot",
         "long captions: keep EOT at the end (eot) or cut as SLIP/A-CLIP (slip)",
         "string",
         {"eot", "slip"}},
        {"aclip",
         "mask",
         "attentive",
         "which patches the online tower sees",
         "string",
         {"attentive", "random", "none"}},
        {"aclip", "views", "2", "online views per image (1 or 2)", "int", {"1", "2"}},
        {"aclip", "ssl", "true", "SimCLR and BYOL losses", "bool", {}},
        {"aclip",
         "keep_ratio",
         "0.5",
         "attentive: squares kept (+1, as the official code); random: patches kept",
         "float",
         {},
         from_to(0, 1)},
        {"aclip", "mask_block", "2", "patches per side of a kept or dropped square", "int", {}, at_least(1)},
        {"aclip",
         "clip_weight",
         "1.0",
         "weight of the CLIP loss (averaged over views)",
         "float",
         {},
         at_least(0)},
        {"aclip", "simclr_weight", "1.0", "weight of the SimCLR loss", "float", {}, at_least(0)},
        {"aclip", "byol_weight", "2.0", "weight of the BYOL loss", "float", {}, at_least(0)},
        {"aclip", "simclr_tau", "0.1", "SimCLR temperature", "float", {}, above(0)},
        {"aclip",
         "simclr_pairs",
         "views",
         "SimCLR positives: view 1 vs view 2, or the official view 1 vs itself",
         "string",
         {"views", "official"}},
        {"aclip",
         "ema_crop",
         "union",
         "EMA crop: encloses both views, or the official code's variant",
         "string",
         {"union", "official"}},
        {"aclip",
         "ema_momentum",
         "0.996",
         "EMA momentum at step 0; a cosine takes it to 1",
         "float",
         {},
         from_to(0, 1)},
        {"aclip",
         "ema_update",
         "step",
         "when the EMA teacher moves under train.accumulate > 1: once a step, or the official code's once a "
         "micro-batch (with the step's momentum each time)",
         "string",
         {"step", "micro_batch"}},
        {"optim", "lr", "5e-4", "peak learning rate", "float", {}, at_least(0)},
        {"optim", "start_lr", "1e-6", "learning rate at step 0 (warmup start)", "float", {}, at_least(0)},
        {"optim", "end_lr", "1e-5", "learning rate at the last step", "float", {}, at_least(0)},
        {"optim", "warmup_steps", "0", "linear warmup: steps, or epochs (\"1 epoch\")", "steps", {}},
        {"optim",
         "weight_decay",
         "0.5",
         "AdamW weight decay (not on biases, norms, 1-D tensors)",
         "float",
         {},
         at_least(0)},
        {"optim", "beta1", "0.9", "AdamW beta1", "float", {}, from_to_below(0, 1)},
        {"optim", "beta2", "0.98", "AdamW beta2", "float", {}, from_to_below(0, 1)},
        {"optim", "eps", "1e-8", "AdamW epsilon", "float", {}, above(0)},
        {"train",
         "steps",
         "1000",
         "length of the run: optimizer steps, or epochs (\"25 epochs\")",
         "steps",
         {}},
        {"train", "batch_size", "64", "samples per step (per rank)", "int", {}, at_least(1)},
        {"train",
         "accumulate",
         "1",
         "micro-batches per optimizer step (gradient accumulation; each micro-batch's contrastive and SSL "
         "losses see only its own samples; see aclip.ema_update)",
         "int",
         {},
         at_least(1)},
        {"train", "seed", "0", "seed of the initialisation, the data order and the augmentations", "int", {}},
        {"train", "log_every", "10", "steps between log lines", "int", {}, at_least(1)},
        {"train",
         "device",
         "cpu",
         "where the model trains: cpu, or cuda (one GPU per process; several through NCCL under mpirun or "
         "torchrun-style "
         "RANK/WORLD_SIZE/LOCAL_RANK and ACLIP_RENDEZVOUS=tcp:HOST:PORT or file:PATH)",
         "string",
         {"cpu", "cuda"}},
        {"train",
         "precision",
         "f32",
         "f32, or bf16 mixed precision (bf16 matrix products, f32 master weights, norms and losses)",
         "string",
         {"f32", "bf16"}},
        {"train",
         "grad_checkpointing",
         "false",
         "recompute each transformer block of the online towers in backward instead of keeping its "
         "activations: much less memory for a second forward pass of the blocks",
         "bool",
         {}},
        {"train",
         "on_nonfinite",
         "stop",
         "a non-finite loss: stop the run, or skip the step",
         "string",
         {"stop", "skip"}},
        {"eval",
         "every",
         "0",
         "steps, or epochs (\"1 epoch\"), between evaluations (0: at the end only)",
         "steps",
         {}},
        {"eval",
         "zeroshot",
         "",
         "zero-shot shards (KEY.jpg + KEY.cls; a list, or a folder of them) or an ImageNet-style folder "
         "DIR/<class>/<image>; empty: none",
         "string",
         {}},
        {"eval",
         "classes",
         "",
         "JSON {name: [class names]} for zero-shot; FILE#name picks one of several lists",
         "string",
         {}},
        {"eval",
         "templates",
         "",
         "JSON {name: [templates with {}]} for zero-shot; FILE#name picks one of several",
         "string",
         {}},
        {"eval",
         "retrieval",
         "",
         "retrieval shards (KEY.jpg + KEY.json {\"captions\": [...]}) or a Karpathy-split JSON (Flickr30K, "
         "COCO); empty: none",
         "string",
         {}},
        {"eval", "batch_size", "64", "images per evaluation batch", "int", {}, at_least(1)},
        {"checkpoint",
         "dir",
         "runs/aclip",
         "folder of checkpoints, the resolved config and the metrics",
         "string",
         {}},
        {"checkpoint",
         "every",
         "0",
         "steps, or epochs (\"1 epoch\"), between checkpoints (0: at the end only)",
         "steps",
         {}},
        {"checkpoint", "keep", "3", "how many checkpoints to keep", "int", {}, at_least(1)},
    };
    return table;
}

Config::Config() {
    for (const ConfigKey& k : keys()) values_[k.section + "." + k.key] = k.default_value;
}

std::string Config::help() {
    std::ostringstream os;
    std::string section;
    for (const ConfigKey& k : keys()) {
        if (k.section != section) os << "\n[" << (section = k.section) << "]\n";
        os << "  " << k.key << " = " << (k.default_value.empty() ? "\"\"" : k.default_value) << "\n      "
           << k.help;
        if (!k.choices.empty()) {
            os << " (";
            for (size_t i = 0; i < k.choices.size(); ++i) os << (i ? ", " : "") << k.choices[i];
            os << ")";
        }
        if (!k.bounds.text().empty()) os << " (" << k.bounds.text() << ")";
        os << "\n";
    }
    return os.str();
}

bool Bounds::contains(double v) const {
    return (low_open ? v > low : v >= low) && (high_open ? v < high : v <= high);
}

std::string Bounds::text() const {
    auto num = [](double v) {
        std::ostringstream os;
        os << v;
        return os.str();
    };
    const bool bounded_above = high != std::numeric_limits<double>::infinity();
    if (low == -std::numeric_limits<double>::infinity() && !bounded_above) return "";
    if (!bounded_above) return (low_open ? "above " : "at least ") + num(low);
    return (low_open ? "from above " : "from ") + num(low) + (high_open ? " to below " : " to ") + num(high);
}

namespace {

std::string trim(const std::string& s) {
    size_t a = s.find_first_not_of(" \t\r"), b = s.find_last_not_of(" \t\r");
    return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

const ConfigKey* find_key(const std::string& dotted) {
    for (const ConfigKey& k : Config::keys())
        if (k.section + "." + k.key == dotted) return &k;
    return nullptr;
}

std::string keys_of_section(const std::string& section) {
    std::string out;
    for (const ConfigKey& k : Config::keys())
        if (k.section == section) out += (out.empty() ? "" : ", ") + k.key;
    return out;
}

// "N", "N step(s)" or "N epoch(s)", N >= 0; nullopt for anything else.
std::optional<StepCount> parse_step_count(const std::string& value) {
    std::istringstream in(value);
    StepCount c;
    std::string unit, rest;
    if (!(in >> c.count) || c.count < 0) return std::nullopt;
    in >> unit >> rest;
    if (!rest.empty()) return std::nullopt;
    if (unit == "epoch" || unit == "epochs")
        c.epochs = true;
    else if (!unit.empty() && unit != "step" && unit != "steps")
        return std::nullopt;
    return c;
}

// "a,b,c": three finite numbers, spaces around each allowed; nullopt for anything else.
std::optional<std::array<double, 3>> parse_numbers3(const std::string& value) {
    std::array<double, 3> out{};
    size_t begin = 0;
    for (size_t i = 0; i < 3; ++i) {
        const size_t comma = value.find(',', begin);
        if ((comma == std::string::npos) != (i == 2)) return std::nullopt;  // two commas, no more
        const std::optional<double> v = parse_double(value.substr(begin, comma - begin));
        if (!v) return std::nullopt;
        out[i] = *v;
        begin = comma + 1;
    }
    return out;
}

}  // namespace

void Config::set(const std::string& dotted, const std::string& raw, const std::string& where) {
    const ConfigKey* k = find_key(dotted);
    if (!k) {
        std::string section = dotted.substr(0, dotted.find('.'));
        std::string known = keys_of_section(section);
        AC_CHECK_HINT(!known.empty(),
                      "sections: model, data, tokenizer, aclip, optim, train, eval, checkpoint", where,
                      ": unknown section [", section, "]");
        AC_FAIL(where, ": unknown key '", dotted, "'; [", section, "] accepts: ", known);
    }
    std::string value = raw;
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
        value = value.substr(1, value.size() - 2);
    auto bad = [&](const std::string& expected) {
        AC_FAIL(where, ": ", dotted, " = '", value, "' is not ", expected);
    };
    std::vector<double> numbers;  // what the bounds apply to
    if (k->type == "int") {
        const std::optional<int64_t> v = parse_int64(value);
        if (!v) bad("an integer");
        numbers = {static_cast<double>(*v)};
    } else if (k->type == "float") {
        const std::optional<double> v = parse_double(value);
        if (!v) bad("a finite number");
        numbers = {*v};
    } else if (k->type == "floats3") {
        const std::optional<std::array<double, 3>> v = parse_numbers3(value);
        if (!v) bad("three finite numbers separated by commas");
        numbers.assign(v->begin(), v->end());
    } else if (k->type == "bool") {
        if (value != "true" && value != "false") bad("true or false");
    } else if (k->type == "steps") {
        if (!parse_step_count(value)) bad("a count of steps: N, N steps or N epochs");
    }
    for (double v : numbers)
        AC_CHECK(k->bounds.contains(v), where, ": ", dotted, " = '", value, "' is out of range (",
                 numbers.size() > 1 ? "each number " : "", "must be ", k->bounds.text(), ")");
    if (!k->choices.empty()) {
        bool ok = false;
        std::string list;
        for (const std::string& c : k->choices) {
            ok = ok || c == value;
            list += (list.empty() ? "" : ", ") + c;
        }
        if (!ok) bad("one of: " + list);
    }
    values_[dotted] = value;
}

void Config::load_file(const std::string& path) {
    load_text(read_file(path, "give the path of an INI file, e.g. configs/quickstart.ini"), path);
}

void Config::load_text(const std::string& text, const std::string& path) {
    const std::string bom = "\xEF\xBB\xBF";  // written first by some editors (Windows' Notepad)
    std::istringstream in(text.starts_with(bom) ? text.substr(bom.size()) : text);
    source_ = path;
    std::string line, section;
    int64_t line_no = 0;
    std::map<std::string, std::string> set_at;  // "section.key" -> where this file set it
    while (std::getline(in, line)) {
        ++line_no;
        const std::string where = path + ":" + std::to_string(line_no);
        std::string s = trim(line);
        if (s.empty() || s[0] == '#' || s[0] == ';') continue;
        if (s[0] == '[') {
            AC_CHECK(s.back() == ']', where, ": a section header must end with ']'");
            section = trim(s.substr(1, s.size() - 2));
            AC_CHECK_HINT(!keys_of_section(section).empty(),
                          "sections: model, data, tokenizer, aclip, optim, train, eval, checkpoint", where,
                          ": unknown section [", section, "]");
            continue;
        }
        size_t eq = s.find('=');
        AC_CHECK(eq != std::string::npos, where, ": expected 'key = value', got '", s, "'");
        AC_CHECK(!section.empty(), where, ": key before any [section]");
        const std::string dotted = section + "." + trim(s.substr(0, eq));
        auto [first, fresh] = set_at.emplace(dotted, where);
        AC_CHECK_HINT(fresh, "keep one of the two lines", where, ": ", dotted, " is set again (first at ",
                      first->second, ")");
        set(dotted, trim(s.substr(eq + 1)), where);
    }
}

void Config::set_override(const std::string& assignment) {
    size_t eq = assignment.find('=');
    AC_CHECK(eq != std::string::npos && assignment.find('.') < eq, "override '", assignment,
             "': expected section.key=value");
    set(trim(assignment.substr(0, eq)), trim(assignment.substr(eq + 1)), "command line");
}

const std::string& Config::str(const std::string& dotted) const {
    auto it = values_.find(dotted);
    AC_CHECK(it != values_.end(), "config: no key '", dotted, "' (a bug: every key is in the table)");
    return it->second;
}

int64_t Config::integer(const std::string& dotted) const {
    const std::optional<int64_t> v = parse_int64(str(dotted));
    AC_CHECK(v, "config: ", dotted, " = '", str(dotted),
             "' is not an integer (a bug: values are checked when set)");
    return *v;
}
double Config::number(const std::string& dotted) const {
    const std::optional<double> v = parse_double(str(dotted));
    AC_CHECK(v, "config: ", dotted, " = '", str(dotted),
             "' is not a number (a bug: values are checked when set)");
    return *v;
}
std::array<double, 3> Config::numbers3(const std::string& dotted) const {
    const std::optional<std::array<double, 3>> v = parse_numbers3(str(dotted));
    AC_CHECK(v, "config: ", dotted, " = '", str(dotted),
             "' is not three numbers (a bug: values are checked when set)");
    return *v;
}
bool Config::boolean(const std::string& dotted) const {
    return str(dotted) == "true";
}
StepCount Config::step_count(const std::string& dotted) const {
    return *parse_step_count(str(dotted));  // checked when set
}

std::vector<std::string> Config::changes_from(const Config& before) const {
    std::vector<std::string> out;
    for (const ConfigKey& k : keys()) {
        const std::string dotted = k.section + "." + k.key;
        const std::string &was = before.str(dotted), &now = str(dotted);
        if (was != now)
            out.push_back(dotted + " " + (was.empty() ? "\"\"" : was) + " -> " +
                          (now.empty() ? "\"\"" : now));
    }
    return out;
}

std::string Config::text() const {
    std::ostringstream os;
    std::string section;
    for (const ConfigKey& k : keys()) {
        if (k.section != section)
            os << (section.empty() ? "" : "\n") << "[" << (section = k.section) << "]\n";
        os << k.key << " = " << values_.at(k.section + "." + k.key) << "\n";
    }
    return os.str();
}

}  // namespace aclip
