// text_clean.h: the text handling in front of CLIP's BPE (data-and-eval.md 3.1), on UTF-8 strings:
// HTML entity unescaping, whitespace collapsing, full Unicode lowercasing (as Python's str.lower: İ
// becomes i + combining dot, a final Σ becomes ς) and the pre-tokenizer that cuts text into words.
// Unicode properties and case mapping come from ICU.
#pragma once
#include <string>
#include <vector>

namespace aclip {

// Python's html.unescape on the entities captions use: &amp; &lt; &gt; &quot; &apos; &nbsp; and a few
// dozen other common named ones, and numeric &#N; / &#xN;. Unknown entities stay as they are.
std::string html_unescape(const std::string& text);

// unescape twice, strip, collapse whitespace runs to one space, strip, lowercase: CLIP's cleaning. Any
// bytes are a caption: ill-formed UTF-8 becomes U+FFFD first, as Python's decode(errors="replace").
std::string clip_clean(const std::string& text);

// Splits cleaned text into CLIP's pre-tokens: the special tokens, the contractions 's 't 're 've 'm 'll
// 'd, runs of letters, single digits, and runs of other non-space characters; whitespace is dropped.
std::vector<std::string> clip_pretokenize(const std::string& cleaned);

}  // namespace aclip
