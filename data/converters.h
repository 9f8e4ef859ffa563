// converters.h: bringing other dataset layouts into webdataset shards (architecture.md decision 6).
//   TSV/CSV of image path and caption; Fashion-MNIST's idx files (Debian's dataset-fashion-mnist);
//   SLIP's YFCC15M layout: images/XX/YYY.zip holding ZZZ.jpg for photo XXYYYZZZ, with the metadata (SLIP's
//   yfcc15m.pkl) as JSON lines [index, "title", "description"] or a TSV of the three. Missing or unreadable
//   inputs are skipped, counted and named.
#pragma once
#include <cstdint>
#include <string>

namespace aclip {

struct ConvertReport {
    int64_t written = 0, skipped = 0;
};

// Each line: PATH<sep>CAPTION (relative paths are taken from the table's folder); a header line whose
// first field is "path" or "filepath" is skipped. sep is '\t' or ','. A field wholly in double quotes, as
// pandas writes one holding the separator or a quote, is unquoted ("" is a quote); the columns after a
// quoted caption are dropped. Images other than JPEG and PNG (BMP, GIF, TGA: what the decoder reads) are
// stored as PNG, which the loader reads; one it cannot decode is skipped with a warning.
ConvertReport convert_table(const std::string& table, char sep, const std::string& out_dir,
                            int64_t shard_size);

// train and test splits as out_dir/train, out_dir/test (PNG, caption "a photo of a {class}.", KEY.cls),
// with classes.json and templates.json beside the test shards for zero-shot evaluation.
ConvertReport convert_fashion_mnist(const std::string& idx_dir, const std::string& out_dir,
                                    int64_t shard_size);

// Keys are the 8-digit photo index; each sample gets KEY.jpg and KEY.json {"title", "description"}
// (the loader's slip_json captions). Metadata lines starting with '[' are JSON (which escapes the tabs and
// newlines of YFCC's texts); others are index<TAB>title<TAB>description.
ConvertReport convert_yfcc(const std::string& root, const std::string& metadata_tsv,
                           const std::string& out_dir, int64_t shard_size);

}  // namespace aclip
