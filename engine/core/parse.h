// parse.h: numbers from text that comes from outside (configs, command lines, file metadata, shard
// members): the value when the whole text is one number of the type, in its range; nothing otherwise,
// so the caller's error can name the file, key or member. std::stoll and std::stod throw
// std::invalid_argument and std::out_of_range instead (which no program here catches: an abort), and
// strtoll saturates out-of-range text silently.
#pragma once
#include <charconv>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string_view>

namespace aclip {

namespace detail {
// As Python's int() and float(): surrounding whitespace ("3\n" in a .cls file) and a leading '+', neither
// of which from_chars takes.
inline std::string_view number_text(std::string_view s) {
    const auto space = [](char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
    };
    while (!s.empty() && space(s.front())) s.remove_prefix(1);
    while (!s.empty() && space(s.back())) s.remove_suffix(1);
    return s.size() > 1 && s[0] == '+' && s[1] != '-' ? s.substr(1) : s;
}
}  // namespace detail

// Decimal integers: "42", "-7", "+3", " 5\n". Not "", "4.0", "1e3", "4 2" or anything past int64's range.
inline std::optional<int64_t> parse_int64(std::string_view text) {
    const std::string_view s = detail::number_text(text);
    int64_t v = 0;
    const auto [end, err] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || err != std::errc() || end != s.data() + s.size()) return std::nullopt;
    return v;
}

// Finite decimal numbers: "5e-4", "-0.5", ".5", "+1". Not "", "inf", "nan", "1e999" or "0x10".
inline std::optional<double> parse_double(std::string_view text) {
    const std::string_view s = detail::number_text(text);
    double v = 0;
    const auto [end, err] = std::from_chars(s.data(), s.data() + s.size(), v, std::chars_format::general);
    if (s.empty() || err != std::errc() || end != s.data() + s.size() || !std::isfinite(v))
        return std::nullopt;
    return v;
}

}  // namespace aclip
