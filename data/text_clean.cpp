// text_clean.cpp: see text_clean.h.
#include "data/text_clean.h"

#include <unicode/uchar.h>
#include <unicode/ustring.h>
#include <unicode/utf8.h>

#include <cstring>
#include <map>

#include "engine/core/error.h"

namespace aclip {

namespace {

void append_utf8(std::string& out, UChar32 cp) {
    char buf[4];
    int32_t len = 0;
    UBool error = false;
    U8_APPEND(reinterpret_cast<uint8_t*>(buf), len, 4, cp, error);
    if (!error) out.append(buf, static_cast<size_t>(len));
}

// Decodes the code point at s[i], advancing i; invalid bytes come back as U+FFFD.
UChar32 next_cp(const std::string& s, int32_t& i) {
    UChar32 c;
    U8_NEXT(reinterpret_cast<const uint8_t*>(s.data()), i, static_cast<int32_t>(s.size()), c);
    return c < 0 ? 0xFFFD : c;
}

bool is_space(UChar32 c) {
    return u_isUWhiteSpace(c) || (c >= 0x1C && c <= 0x1F);
}  // Python's \s
bool is_letter(UChar32 c) {
    return U_GET_GC_MASK(c) & U_GC_L_MASK;
}
bool is_number(UChar32 c) {
    return U_GET_GC_MASK(c) & U_GC_N_MASK;
}

const std::map<std::string, UChar32>& named_entities() {
    static const std::map<std::string, UChar32> table = {
        {"amp", '&'},      {"lt", '<'},       {"gt", '>'},       {"quot", '"'},     {"apos", '\''},
        {"nbsp", 0xA0},    {"copy", 0xA9},    {"reg", 0xAE},     {"trade", 0x2122}, {"hellip", 0x2026},
        {"mdash", 0x2014}, {"ndash", 0x2013}, {"lsquo", 0x2018}, {"rsquo", 0x2019}, {"ldquo", 0x201C},
        {"rdquo", 0x201D}, {"laquo", 0xAB},   {"raquo", 0xBB},   {"deg", 0xB0},     {"middot", 0xB7},
        {"bull", 0x2022},  {"times", 0xD7},   {"divide", 0xF7},  {"euro", 0x20AC},  {"pound", 0xA3},
        {"yen", 0xA5},     {"cent", 0xA2},    {"sect", 0xA7},    {"para", 0xB6},    {"plusmn", 0xB1},
        {"frac12", 0xBD},  {"frac14", 0xBC},  {"frac34", 0xBE},  {"iexcl", 0xA1},   {"iquest", 0xBF},
        {"eacute", 0xE9},  {"egrave", 0xE8},  {"aacute", 0xE1},  {"agrave", 0xE0},  {"oacute", 0xF3},
        {"uuml", 0xFC},    {"ouml", 0xF6},    {"auml", 0xE4},    {"szlig", 0xDF},   {"ntilde", 0xF1},
        {"ccedil", 0xE7},  {"shy", 0xAD},     {"micro", 0xB5},   {"larr", 0x2190},  {"rarr", 0x2192},
    };
    return table;
}

}  // namespace

std::string html_unescape(const std::string& s) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
        if (s[i] != '&') {
            out += s[i++];
            continue;
        }
        size_t semi = s.find(';', i + 1);
        if (semi != std::string::npos && semi - i <= 32) {
            std::string name = s.substr(i + 1, semi - i - 1);
            if (name.size() > 1 && name[0] == '#') {  // numeric
                bool hex = name[1] == 'x' || name[1] == 'X';
                const char* digits = name.c_str() + (hex ? 2 : 1);
                char* end = nullptr;
                long v = *digits ? std::strtol(digits, &end, hex ? 16 : 10) : -1;
                if (end && *end == '\0' && v >= 0) {
                    // as Python: invalid code points and surrogates become U+FFFD, 0 too
                    bool bad = v == 0 || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF);
                    append_utf8(out, bad ? 0xFFFD : static_cast<UChar32>(v));
                    i = semi + 1;
                    continue;
                }
            } else {
                auto it = named_entities().find(name);
                if (it != named_entities().end()) {
                    append_utf8(out, it->second);
                    i = semi + 1;
                    continue;
                }
            }
        }
        out += s[i++];
    }
    return out;
}

namespace {

// The text with each ill-formed UTF-8 sequence replaced by U+FFFD, as Python's
// bytes.decode("utf-8", "replace"): next_cp gives one U+FFFD a maximal ill-formed subpart (U8_NEXT's
// rule), and a well-formed code point encodes back to its own bytes.
std::string replace_invalid_utf8(const std::string& s) {
    std::string out;
    out.reserve(s.size());
    for (int32_t i = 0; i < static_cast<int32_t>(s.size());) append_utf8(out, next_cp(s, i));
    return out;
}

std::string lowercase(const std::string& s) {
    // ICU's full lowercasing in the root locale: the mapping Python's str.lower applies
    std::u16string u16(s.size() + 1, u'\0');
    int32_t len = 0;
    UErrorCode err = U_ZERO_ERROR;
    u_strFromUTF8(reinterpret_cast<UChar*>(u16.data()), static_cast<int32_t>(u16.size()), &len, s.data(),
                  static_cast<int32_t>(s.size()), &err);
    AC_CHECK(U_SUCCESS(err), "lowercase: cannot decode UTF-8: ", u_errorName(err));
    std::u16string lower(static_cast<size_t>(len) * 3 + 1, u'\0');
    err = U_ZERO_ERROR;
    int32_t lower_len =
        u_strToLower(reinterpret_cast<UChar*>(lower.data()), static_cast<int32_t>(lower.size()),
                     reinterpret_cast<const UChar*>(u16.data()), len, "", &err);
    AC_CHECK(U_SUCCESS(err), "lowercase: ", u_errorName(err));
    std::string out(static_cast<size_t>(lower_len) * 3 + 1, '\0');
    int32_t out_len = 0;
    err = U_ZERO_ERROR;
    u_strToUTF8(out.data(), static_cast<int32_t>(out.size()), &out_len,
                reinterpret_cast<const UChar*>(lower.data()), lower_len, &err);
    AC_CHECK(U_SUCCESS(err), "lowercase: ", u_errorName(err));
    out.resize(static_cast<size_t>(out_len));
    return out;
}

std::string collapse_whitespace(const std::string& s) {
    std::string out;
    bool pending_space = false;
    for (int32_t i = 0; i < static_cast<int32_t>(s.size());) {
        int32_t start = i;
        UChar32 c = next_cp(s, i);
        if (is_space(c)) {
            pending_space = !out.empty();
            continue;
        }
        if (pending_space) out += ' ';
        pending_space = false;
        out.append(s, static_cast<size_t>(start), static_cast<size_t>(i - start));
    }
    return out;
}

}  // namespace

std::string clip_clean(const std::string& text) {
    return lowercase(collapse_whitespace(html_unescape(html_unescape(replace_invalid_utf8(text)))));
}

std::vector<std::string> clip_pretokenize(const std::string& s) {
    static const char* kSpecial[] = {"<|startoftext|>", "<|endoftext|>"};
    static const char* kContractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    std::vector<std::string> pieces;
    const int32_t n = static_cast<int32_t>(s.size());
    int32_t i = 0;
    auto starts_with = [&](const char* p) {
        return s.compare(static_cast<size_t>(i), std::strlen(p), p) == 0;
    };
    while (i < n) {
        bool matched = false;
        for (const char* lit : kSpecial)
            if (!matched && starts_with(lit)) {
                pieces.emplace_back(lit);
                i += static_cast<int32_t>(std::strlen(lit));
                matched = true;
            }
        for (const char* lit : kContractions)
            if (!matched && starts_with(lit)) {
                pieces.emplace_back(lit);
                i += static_cast<int32_t>(std::strlen(lit));
                matched = true;
            }
        if (matched) continue;
        int32_t start = i;
        UChar32 c = next_cp(s, i);
        if (is_space(c)) continue;
        if (is_letter(c)) {
            for (int32_t j = i; j < n;) {  // extend the run of letters
                int32_t k = j;
                if (!is_letter(next_cp(s, k))) break;
                i = j = k;
            }
        } else if (!is_number(c)) {
            for (int32_t j = i; j < n;) {  // extend the run of other non-space characters
                int32_t k = j;
                UChar32 d = next_cp(s, k);
                if (is_space(d) || is_letter(d) || is_number(d)) break;
                i = j = k;
            }
        }
        pieces.push_back(s.substr(static_cast<size_t>(start), static_cast<size_t>(i - start)));
    }
    return pieces;
}

}  // namespace aclip
