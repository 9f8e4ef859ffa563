// config.h: aclip_train's configuration: INI sections and keys, each with a default and a line of help.
// The table of keys in config.cpp is the single source: the parser, the overrides on the command line
// (section.key=value), --help and the resolved config printed at start all read it. An unknown section or
// key, or a value of the wrong type, outside its choices or outside its bounds, is an error naming file:line
// and the key.
#pragma once
#include <array>
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

namespace aclip {

// The numbers a key accepts (each of a "floats3" key's three): from low (or above it) to high (or below it).
struct Bounds {
    double low = -std::numeric_limits<double>::infinity(), high = std::numeric_limits<double>::infinity();
    bool low_open = false, high_open = false;
    bool contains(double v) const;
    std::string text() const;  // "at least 1", "above 0", "from 0 to 1", "from 0 to below 1"; "" for any
};
inline Bounds at_least(double low) {
    return {low, std::numeric_limits<double>::infinity()};
}
inline Bounds above(double low) {
    return {low, std::numeric_limits<double>::infinity(), true};
}
inline Bounds from_to(double low, double high) {
    return {low, high};
}
inline Bounds from_to_below(double low, double high) {
    return {low, high, false, true};
}

struct ConfigKey {
    std::string section, key, default_value, help;
    std::string type;                  // "string", "int", "float", "floats3" (a,b,c), "bool", "steps"
    std::vector<std::string> choices;  // empty: any value of the type
    Bounds bounds = {};                // the numbers of an int, float or floats3 key
};

// A length of training in optimizer steps, given as steps ("500", "500 steps") or as epochs ("2 epochs"),
// which the trainer turns into steps once it knows how many samples an epoch has (the type "steps").
struct StepCount {
    int64_t count = 0;
    bool epochs = false;
    int64_t steps(int64_t steps_per_epoch) const { return epochs ? count * steps_per_epoch : count; }
};

class Config {
  public:
    Config();  // every key at its default
    static const std::vector<ConfigKey>& keys();
    static std::string help();  // every key, grouped by section, with default and help

    void load_file(const std::string& path);                           // errors: path:line
    void load_text(const std::string& text, const std::string& name);  // INI text; errors: name:line
    void set(const std::string& dotted_key, const std::string& value, const std::string& where);
    void set_override(const std::string& assignment);  // "section.key=value" from the command line

    const std::string& str(const std::string& dotted_key) const;
    int64_t integer(const std::string& dotted_key) const;
    double number(const std::string& dotted_key) const;
    std::array<double, 3> numbers3(const std::string& dotted_key) const;  // a "floats3" key
    bool boolean(const std::string& dotted_key) const;
    StepCount step_count(const std::string& dotted_key) const;

    std::string text() const;  // the resolved config as INI
    // The keys set otherwise than in `before`, as "key before -> now", in the table's order.
    std::vector<std::string> changes_from(const Config& before) const;
    const std::string& source() const { return source_; }  // the config file's path

  private:
    std::map<std::string, std::string> values_;  // "section.key" -> value
    std::string source_;
};

}  // namespace aclip
