// aclip_convert: converts other dataset layouts to webdataset shards (data/converters.h).
//   aclip_convert tsv --input captions.tsv --out shards/    PATH<tab>CAPTION per line (--csv: commas)
//   aclip_convert fashion-mnist --out fmnist/               from Debian's dataset-fashion-mnist
//   aclip_convert yfcc --input yfcc15m.jsonl --root /data/yfcc --out shards/    SLIP's layout
#include <cstdio>

#include "data/converters.h"
#include "engine/core/error.h"
#include "train/cli.h"

using namespace aclip;

int main(int argc, char** argv) {
    std::string input, root, out, idx_dir = "/usr/share/datasets/fashion-mnist";
    int64_t shard_size = 1000;
    bool csv = false;
    CommandLine cli("aclip_convert",
                    "Converts a dataset to webdataset shards. First argument: tsv, fashion-mnist or yfcc.");
    cli.option("input", &input,
               "tsv: the table of PATH and CAPTION; yfcc: the metadata, JSON lines [index, title, "
               "description] or a TSV of them");
    cli.option("root", &root, "yfcc: the folder holding images/XX/YYY.zip");
    cli.option("idx-dir", &idx_dir, "fashion-mnist: the folder of the idx .gz files");
    cli.option("out", &out, "the output folder");
    cli.option("shard-size", &shard_size, "samples per shard", 1);
    cli.flag("csv", &csv, "tsv: the table is comma-separated");
    cli.parse(argc, argv);
    return run_program("aclip_convert", [&] {
        AC_CHECK(cli.positional.size() == 1, "give one layout: tsv, fashion-mnist or yfcc");
        AC_CHECK(!out.empty(), "--out is required");
        const std::string& layout = cli.positional[0];
        ConvertReport r;
        if (layout == "tsv") {
            AC_CHECK(!input.empty(), "tsv needs --input");
            r = convert_table(input, csv ? ',' : '\t', out, shard_size);
        } else if (layout == "fashion-mnist") {
            r = convert_fashion_mnist(idx_dir, out, shard_size);
        } else if (layout == "yfcc") {
            AC_CHECK(!input.empty() && !root.empty(), "yfcc needs --input and --root");
            r = convert_yfcc(root, input, out, shard_size);
        } else {
            AC_FAIL("unknown layout '", layout, "'; accepted: tsv, fashion-mnist, yfcc");
        }
        std::fprintf(stderr, "aclip_convert: %lld samples written, %lld skipped\n",
                     static_cast<long long>(r.written), static_cast<long long>(r.skipped));
        return 0;
    });
}
