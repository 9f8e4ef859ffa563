// test_converters.cpp: TSV tables, Fashion-MNIST idx files and SLIP's YFCC zips become shards; missing
// inputs are skipped and counted.
#include <unistd.h>
#include <zip.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>

#include "data/converters.h"
#include "data/image.h"
#include "data/shards.h"
#include "engine/io/json_lite.h"
#include "test_util.h"

using namespace aclip;
namespace fs = std::filesystem;

namespace {

std::string temp_dir(const std::string& name) {
    std::string d =
        fs::temp_directory_path().string() + "/aclip_convert_" + std::to_string(getpid()) + "/" + name;
    fs::remove_all(d);
    fs::create_directories(d);
    return d;
}

std::string small_jpeg(uint8_t v) {
    return encode_jpeg(Image{8, 8, std::vector<uint8_t>(8 * 8 * 3, v)});
}

std::vector<Sample> read_dir(const std::string& dir) {
    std::vector<Sample> out;
    for (const std::string& shard : expand_shard_list(dir + "/00000.tar")) {
        ShardReader r(shard);
        Sample s;
        while (r.next(s)) out.push_back(s);
    }
    return out;
}

void write_gz(const std::string& path, const std::string& bytes) {
    gzFile f = gzopen(path.c_str(), "wb");
    gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
    gzclose(f);
}

}  // namespace

TEST_SUITE("data") {
    TEST_CASE("a TSV of image paths and captions becomes shards") {
        std::string dir = temp_dir("tsv");
        fs::create_directories(dir + "/img");
        std::ofstream(dir + "/img/a.jpg", std::ios::binary) << small_jpeg(10);
        std::ofstream(dir + "/img/b.PNG", std::ios::binary)
            << encode_png(Image{4, 4, std::vector<uint8_t>(48, 7)});
        std::ofstream(dir + "/t.tsv") << "filepath\ttitle\nimg/a.jpg\ta dark square\nimg/missing.jpg\tgone\n"
                                      << dir << "/img/b.PNG\ta tiny png\n";
        ConvertReport r = convert_table(dir + "/t.tsv", '\t', dir + "/out", 100);
        CHECK(r.written == 2);
        CHECK(r.skipped == 1);
        std::vector<Sample> s = read_dir(dir + "/out");
        REQUIRE(s.size() == 2);
        CHECK(s[0].files.at("txt") == "a dark square");
        CHECK(s[0].files.at("jpg") == small_jpeg(10));
        CHECK(s[1].files.count("png") == 1);
        CHECK(shard_sizes({dir + "/out/00000.tar"}) == std::vector<int64_t>{2});

        // other formats the decoder reads become PNG (the loader reads JPEG and PNG); undecodable ones are
        // skipped
        std::ofstream(dir + "/img/c.ppm", std::ios::binary) << "P6\n2 1\n255\n"
                                                            << std::string("\x01\x02\x03\xfa\xfb\xfc", 6);
        std::ofstream(dir + "/img/d.webp", std::ios::binary) << "RIFF....WEBPVP8 ";
        std::ofstream(dir + "/p.tsv") << "img/c.ppm\ta portable pixmap\nimg/d.webp\tundecodable\n";
        r = convert_table(dir + "/p.tsv", '\t', dir + "/ppm", 100);
        CHECK(r.written == 1);
        CHECK(r.skipped == 1);
        s = read_dir(dir + "/ppm");
        REQUIRE(s.size() == 1);
        REQUIRE(s[0].files.count("png") == 1);
        const Image decoded = decode_image(s[0].files.at("png"));
        CHECK(decoded.width == 2);
        CHECK(decoded.rgb == std::vector<uint8_t>{1, 2, 3, 250, 251, 252});

        // CSV as pandas writes it: fields holding the separator or a quote are quoted, "" a quote inside
        std::ofstream(dir + "/t.csv")
            << "filepath,title\n"
            << "img/a.jpg,\"a dark, small square\"\n"
            << "\"img/a.jpg\",\"she said \"\"hi\"\"\",42\n"  // a quoted path; a column more
            << "img/a.jpg,plain, with a comma\n"             // unquoted: to the line's end
            << "img/a.jpg,\"Hi\" she said\n"                 // not wholly quoted: as it stands
            << "img/a.jpg,\"not closed\n"
            << "img/a.jpg\n";
        r = convert_table(dir + "/t.csv", ',', dir + "/csv", 100);
        CHECK(r.written == 5);
        CHECK(r.skipped == 1);  // no separator
        s = read_dir(dir + "/csv");
        REQUIRE(s.size() == 5);
        CHECK(s[0].files.at("txt") == "a dark, small square");
        CHECK(s[1].files.at("txt") == "she said \"hi\"");
        CHECK(s[2].files.at("txt") == "plain, with a comma");
        CHECK(s[3].files.at("txt") == "\"Hi\" she said");
        CHECK(s[4].files.at("txt") == "\"not closed");
    }

    TEST_CASE("Fashion-MNIST idx files become captioned, classed shards with a zero-shot class set") {
        std::string dir = temp_dir("fmnist");
        for (const char* split : {"train", "t10k"}) {
            std::string images = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2};  // 2 images of 2x2
            images += std::string("\x00\x40\x80\xff\x10\x20\x30\x40", 8);
            write_gz(dir + "/" + split + "-images-idx3-ubyte.gz", images);
            write_gz(dir + "/" + split + "-labels-idx1-ubyte.gz",
                     std::string("\x00\x00\x08\x01\x00\x00\x00\x02\x09\x00", 10));
        }
        ConvertReport r = convert_fashion_mnist(dir, dir + "/out", 10);
        CHECK(r.written == 4);
        std::vector<Sample> s = read_dir(dir + "/out/test");
        REQUIRE(s.size() == 2);
        CHECK(s[0].files.at("txt") == "a photo of a ankle boot.");
        CHECK(s[1].files.at("cls") == "0");
        Image img = decode_image(s[0].files.at("png"));
        CHECK((img.width == 2 && img.height == 2 && img.rgb[3] == 0x40 && img.rgb[4] == 0x40));
        CHECK(fs::exists(dir + "/out/test/classes.json"));
        write_gz(dir + "/train-labels-idx1-ubyte.gz",
                 std::string("\x00\x00\x08\x01\x00\x00\x00\x03\x01\x02\x03", 11));
        CHECK(test::error_of([&] { convert_fashion_mnist(dir, dir + "/out2", 10); }).find("disagree") !=
              std::string::npos);
        // dimensions whose product overflows 64 bits: refused by size, not multiplied past it
        write_gz(dir + "/train-images-idx3-ubyte.gz",
                 std::string("\x00\x00\x08\x03\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 17));
        CHECK(test::error_of([&] { convert_fashion_mnist(dir, dir + "/out3", 10); })
                  .find("train-images-idx3-ubyte.gz: its dimensions (1 read) hold more bytes than the file's "
                        "17") != std::string::npos);
    }

    TEST_CASE("SLIP's YFCC layout (zips of JPEGs + a metadata TSV) becomes shards keyed by photo index") {
        std::string root = temp_dir("yfcc");
        fs::create_directories(root + "/images/00");
        int err = 0;
        zip_t* z = zip_open((root + "/images/00/000.zip").c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
        REQUIRE(z != nullptr);
        static const std::string jpg = small_jpeg(99);
        zip_file_add(z, "001.jpg", zip_source_buffer(z, jpg.data(), jpg.size(), 0), ZIP_FL_ENC_UTF_8);
        REQUIRE(zip_close(z) == 0);
        std::ofstream(root + "/meta.tsv") << "1\tA title\tA longer description\n2\tmissing\tphoto\n";
        ConvertReport r = convert_yfcc(root, root + "/meta.tsv", root + "/out", 10);
        CHECK(r.written == 1);
        CHECK(r.skipped == 1);
        std::vector<Sample> s = read_dir(root + "/out");
        REQUIRE(s.size() == 1);
        CHECK(s[0].key == "00000001");
        CHECK(s[0].files.at("jpg") == jpg);
        CHECK(s[0].files.at("json") == "{\"title\": \"A title\", \"description\": \"A longer description\"}");

        // JSON lines, as yfcc15m.pkl exports: a tab and newlines inside the texts survive; a bad line is
        // skipped with its line number
        std::ofstream(root + "/meta.jsonl") << "[1, \"A\\ttitle\", \"line one\\nline two\\r\\n\\u00e9\"]\n"
                                            << "[2, \"missing\"]\n[\"x\", \"y\", \"z\"]\n";
        r = convert_yfcc(root, root + "/meta.jsonl", root + "/out_json", 10);
        CHECK(r.written == 1);
        CHECK(r.skipped == 2);
        s = read_dir(root + "/out_json");
        REQUIRE(s.size() == 1);
        const JsonValue meta = json_parse(s[0].files.at("json"), "test");
        CHECK(meta.find("title")->string == "A\ttitle");
        CHECK(meta.find("description")->string == "line one\nline two\r\n\xc3\xa9");
    }
}
