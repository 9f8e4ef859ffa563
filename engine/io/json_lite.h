// json_lite.h: a strict, small JSON reader and string escaper, enough for safetensors headers.
// Integers only (no fractions or exponents), a nesting limit, duplicate keys refused, and every error
// names the byte offset where parsing stopped. Nothing here can read outside the given text.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace aclip {

struct JsonValue {
    enum class Kind { Null, Bool, Int, String, Array, Object } kind = Kind::Null;
    bool boolean = false;
    int64_t integer = 0;
    std::string string;
    std::vector<JsonValue> array;
    std::vector<std::pair<std::string, JsonValue>> object;  // in file order; keys unique

    const JsonValue* find(const std::string& key) const;
    // The member `key`, which must be there and of `kind`; else an error starting with `where`.
    const JsonValue& member(const std::string& key, Kind kind, const std::string& where) const;
};

// Parses text as one JSON value (surrounding whitespace allowed). `what` names the source in errors.
JsonValue json_parse(const std::string& text, const std::string& what);

// Quotes and escapes a string for JSON output.
std::string json_quote(const std::string& s);
// A JSON array of strings: ["a", "b"].
std::string json_string_list(const std::vector<std::string>& items);

}  // namespace aclip
