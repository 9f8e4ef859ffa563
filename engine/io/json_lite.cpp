// json_lite.cpp: see json_lite.h. A recursive-descent parser with an explicit depth limit.
#include "engine/io/json_lite.h"

#include <set>

#include "engine/core/error.h"

namespace aclip {

const JsonValue* JsonValue::find(const std::string& key) const {
    for (const auto& [k, v] : object)
        if (k == key) return &v;
    return nullptr;
}

const JsonValue& JsonValue::member(const std::string& key, Kind kind, const std::string& where) const {
    static const char* const kNames[] = {"null",     "a boolean", "an integer",
                                         "a string", "an array",  "an object"};
    const JsonValue* v = find(key);
    AC_CHECK(
        v && v->kind == kind, where, ": expected \"", key, "\" to be ", kNames[static_cast<int>(kind)],
        v ? std::string(", it is ") + kNames[static_cast<int>(v->kind)] : std::string(", it is missing"));
    return *v;
}

namespace {

constexpr int kMaxDepth = 64;

class Parser {
  public:
    Parser(const std::string& text, const std::string& what) : s_(text), what_(what) {}

    JsonValue parse_document() {
        JsonValue v = parse_value(0);
        skip_ws();
        if (pos_ != s_.size()) fail("unexpected trailing characters");
        return v;
    }

  private:
    [[noreturn]] void fail(const std::string& msg) {
        AC_FAIL(what_, ": invalid JSON at byte ", pos_, ": ", msg);
    }
    void skip_ws() {
        while (pos_ < s_.size() &&
               (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r'))
            ++pos_;
    }
    char peek() {
        if (pos_ >= s_.size()) fail("unexpected end of text");
        return s_[pos_];
    }
    void expect(char c) {
        if (peek() != c) fail(std::string("expected '") + c + "'");
        ++pos_;
    }
    void expect_word(const char* w) {
        for (const char* p = w; *p; ++p) expect(*p);
    }

    JsonValue parse_value(int depth) {
        if (depth > kMaxDepth) fail("nesting deeper than 64");
        skip_ws();
        JsonValue v;
        char c = peek();
        if (c == '{') {
            v.kind = JsonValue::Kind::Object;
            ++pos_;
            std::set<std::string> keys;
            skip_ws();
            if (peek() == '}') {
                ++pos_;
                return v;
            }
            while (true) {
                skip_ws();
                std::string key = parse_string();
                if (!keys.insert(key).second) fail("duplicate key \"" + key + "\"");
                skip_ws();
                expect(':');
                v.object.emplace_back(std::move(key), parse_value(depth + 1));
                skip_ws();
                if (peek() == ',') {
                    ++pos_;
                    continue;
                }
                expect('}');
                return v;
            }
        }
        if (c == '[') {
            v.kind = JsonValue::Kind::Array;
            ++pos_;
            skip_ws();
            if (peek() == ']') {
                ++pos_;
                return v;
            }
            while (true) {
                v.array.push_back(parse_value(depth + 1));
                skip_ws();
                if (peek() == ',') {
                    ++pos_;
                    continue;
                }
                expect(']');
                return v;
            }
        }
        if (c == '"') {
            v.kind = JsonValue::Kind::String;
            v.string = parse_string();
            return v;
        }
        if (c == 't' || c == 'f') {
            v.kind = JsonValue::Kind::Bool;
            v.boolean = c == 't';
            expect_word(v.boolean ? "true" : "false");
            return v;
        }
        if (c == 'n') {
            expect_word("null");
            return v;
        }
        if (c == '-' || (c >= '0' && c <= '9')) {
            v.kind = JsonValue::Kind::Int;
            v.integer = parse_int();
            return v;
        }
        fail(std::string("unexpected character '") + c + "'");
    }

    int64_t parse_int() {
        bool negative = false;
        if (peek() == '-') {
            negative = true;
            ++pos_;
        }
        if (!(peek() >= '0' && peek() <= '9')) fail("expected a digit");
        uint64_t value = 0;
        size_t digits = 0;
        while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
            if (value > (UINT64_MAX - 9) / 10 || ++digits > 19) fail("integer too large");
            value = value * 10 + static_cast<uint64_t>(s_[pos_] - '0');
            ++pos_;
        }
        if (pos_ < s_.size() && (s_[pos_] == '.' || s_[pos_] == 'e' || s_[pos_] == 'E'))
            fail("only integers are accepted here");
        if (value > static_cast<uint64_t>(INT64_MAX)) fail("integer too large");
        return negative ? -static_cast<int64_t>(value) : static_cast<int64_t>(value);
    }

    unsigned hex4() {
        unsigned v = 0;
        for (int i = 0; i < 4; ++i) {
            char c = peek();
            ++pos_;
            v <<= 4;
            if (c >= '0' && c <= '9')
                v |= static_cast<unsigned>(c - '0');
            else if (c >= 'a' && c <= 'f')
                v |= static_cast<unsigned>(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F')
                v |= static_cast<unsigned>(c - 'A' + 10);
            else
                fail("bad \\u escape");
        }
        return v;
    }

    void append_utf8(std::string& out, unsigned cp) {
        if (cp < 0x80) {
            out += static_cast<char>(cp);
        } else if (cp < 0x800) {
            out += static_cast<char>(0xC0 | (cp >> 6));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out += static_cast<char>(0xE0 | (cp >> 12));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        } else {
            out += static_cast<char>(0xF0 | (cp >> 18));
            out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        }
    }

    std::string parse_string() {
        expect('"');
        std::string out;
        while (true) {
            char c = peek();
            ++pos_;
            if (c == '"') return out;
            if (static_cast<unsigned char>(c) < 0x20) fail("control character in string");
            if (c != '\\') {
                out += c;
                continue;
            }
            char e = peek();
            ++pos_;
            switch (e) {
                case '"':
                    out += '"';
                    break;
                case '\\':
                    out += '\\';
                    break;
                case '/':
                    out += '/';
                    break;
                case 'b':
                    out += '\b';
                    break;
                case 'f':
                    out += '\f';
                    break;
                case 'n':
                    out += '\n';
                    break;
                case 'r':
                    out += '\r';
                    break;
                case 't':
                    out += '\t';
                    break;
                case 'u': {
                    unsigned cp = hex4();
                    if (cp >= 0xD800 && cp < 0xDC00) {  // a surrogate pair
                        if (s_.compare(pos_, 2, "\\u") != 0) fail("unpaired surrogate");
                        pos_ += 2;
                        unsigned lo = hex4();
                        if (lo < 0xDC00 || lo >= 0xE000) fail("unpaired surrogate");
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    } else if (cp >= 0xDC00 && cp < 0xE000) {
                        fail("unpaired surrogate");
                    }
                    append_utf8(out, cp);
                    break;
                }
                default:
                    fail(std::string("bad escape \\") + e);
            }
        }
    }

    const std::string& s_;
    const std::string& what_;
    size_t pos_ = 0;
};

}  // namespace

JsonValue json_parse(const std::string& text, const std::string& what) {
    return Parser(text, what).parse_document();
}

std::string json_quote(const std::string& s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            default:
                if (c < 0x20) {
                    char buf[8];
                    snprintf(buf, sizeof buf, "\\u%04x", c);
                    out += buf;
                } else {
                    out += static_cast<char>(c);
                }
        }
    }
    return out + "\"";
}

std::string json_string_list(const std::vector<std::string>& items) {
    std::string s = "[";
    for (size_t i = 0; i < items.size(); ++i) s += (i ? ", " : "") + json_quote(items[i]);
    return s + "]";
}

}  // namespace aclip
