// test_shards.cpp: tar shards against GNU tar (long names in GNU and PAX formats, both directions),
// sample grouping, truncated and corrupt shards, shard-list expansion and sizes.json.
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "data/shards.h"
#include "test_util.h"

using namespace aclip;
namespace fs = std::filesystem;

namespace {

std::string temp_dir(const std::string& name) {
    std::string d =
        fs::temp_directory_path().string() + "/aclip_shards_" + std::to_string(getpid()) + "/" + name;
    fs::remove_all(d);
    fs::create_directories(d);
    return d;
}

std::string run(const std::string& cmd) {
    std::string out;
    FILE* p = popen(cmd.c_str(), "r");
    REQUIRE(p != nullptr);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    CHECK(pclose(p) == 0);
    return out;
}

std::vector<Sample> read_all(const std::string& path, std::string* error = nullptr) {
    ShardReader r(path);
    std::vector<Sample> out;
    Sample s;
    while (r.next(s)) out.push_back(s);
    if (error) *error = r.error();
    return out;
}

std::string binary(size_t n, unsigned seed) {
    std::string s(n, '\0');
    for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + seed * 7) & 0xff);
    return s;
}

}  // namespace

TEST_SUITE("data") {
    TEST_CASE("shards written here are read back and listed by GNU tar") {
        std::string dir = temp_dir("write");
        std::string path = dir + "/00000.tar";
        ShardWriter w(path);
        std::string long_key = "deep/" + std::string(120, 'k');  // over 100 bytes: a PAX path record
        w.write({"000000", {{"jpg", binary(1000, 1)}, {"txt", "a red circle"}}});
        w.write({"000001", {{"jpg", binary(512, 2)}, {"txt", ""}, {"json", "{\"title\": \"t\"}"}}});
        w.write({long_key, {{"txt", "long"}}});
        CHECK_FALSE(fs::exists(path));  // nothing visible before close()
        w.close();
        std::vector<Sample> s = read_all(path);
        REQUIRE(s.size() == 3);
        CHECK(s[0].key == "000000");
        CHECK(s[0].files.at("jpg") == binary(1000, 1));
        CHECK(s[1].files.at("txt").empty());
        CHECK(s[1].files.size() == 3);
        CHECK(s[2].key == long_key);
        std::string listing = run("tar -tf " + path);
        CHECK(listing.find("000001.json") != std::string::npos);
        CHECK(listing.find(long_key + ".txt") != std::string::npos);
        CHECK(run("tar -xOf " + path + " 000000.txt") == "a red circle");
    }

    TEST_CASE("shards written by GNU tar, in GNU and PAX formats, with long names") {
        std::string dir = temp_dir("gnu");
        std::string name = std::string(150, 'n');
        fs::create_directories(dir + "/src/sub");
        std::ofstream(dir + "/src/sub/" + name + ".txt") << "caption";
        std::ofstream(dir + "/src/sub/" + name + ".jpg") << binary(700, 3);
        for (const char* format : {"gnu", "pax", "ustar"}) {
            CAPTURE(format);
            std::string tar = dir + "/" + format + ".tar";
            bool long_ok = std::string(format) != "ustar";  // ustar cannot hold a 150-byte basename
            std::string member = long_ok ? "sub/" + name : "sub/short";
            if (!long_ok) {
                fs::rename(dir + "/src/sub/" + name + ".txt", dir + "/src/sub/short.txt");
                fs::rename(dir + "/src/sub/" + name + ".jpg", dir + "/src/sub/short.jpg");
            }
            run("cd " + dir + "/src && tar --format=" + format + " -cf " + tar + " sub");
            std::string error;
            std::vector<Sample> s = read_all(tar, &error);
            CHECK(error.empty());
            REQUIRE(s.size() == 1);  // the directory entry is skipped
            CHECK(s[0].key == member);
            CHECK(s[0].files.at("txt") == "caption");
            CHECK(s[0].files.at("jpg") == binary(700, 3));
        }
    }

    TEST_CASE("a truncated shard yields its complete samples, then says where it broke") {
        std::string dir = temp_dir("trunc");
        std::string path = dir + "/t.tar";
        ShardWriter w(path);
        for (int i = 0; i < 4; ++i)
            w.write({"s" + std::to_string(i), {{"jpg", binary(3000, i)}, {"txt", "x"}}});
        w.close();
        const auto full_size = fs::file_size(path);
        fs::resize_file(path, full_size - 2500);  // cuts into the last sample's image
        std::string error;
        std::vector<Sample> s = read_all(path, &error);
        CHECK(s.size() == 3);
        CHECK(error.find("truncated inside 's3.jpg'") != std::string::npos);
        fs::resize_file(path, 700);  // inside the first header's data
        s = read_all(path, &error);
        CHECK(s.empty());
        CHECK(error.find("truncated") != std::string::npos);
        {  // a header announcing 2^62 bytes (GNU base-256) with a valid checksum: an error, not an allocation
            ShardWriter one(path);
            one.write({"big", {{"txt", "x"}}});
            one.close();
            std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
            char h[512];
            f.read(h, 512);
            std::memset(h + 124, 0, 12);
            h[124] = static_cast<char>(0x80);
            h[128] = 0x40;  // bytes 125..135 big-endian: 2^62
            std::memset(h + 148, ' ', 8);
            unsigned sum = 0;
            for (char c : h) sum += static_cast<unsigned char>(c);
            std::snprintf(h + 148, 8, "%06o", sum);
            f.seekp(0);
            f.write(h, 512);
        }
        s = read_all(path, &error);
        CHECK(s.empty());
        CHECK(
            error.find(
                "truncated inside 'big.txt' (4611686018427387904 bytes announced, 1536 left in the file)") !=
            std::string::npos);
        std::ofstream(path, std::ios::trunc) << std::string(2048, 'G');  // not a tar at all
        s = read_all(path, &error);
        CHECK(s.empty());
        CHECK(error.find("bad header checksum at byte 0") != std::string::npos);
        CHECK(test::error_of([&] { ShardReader r(dir + "/missing.tar"); }).find("cannot open shard") !=
              std::string::npos);
    }

    TEST_CASE("shard lists expand ranges with padding, lists, folders and '::'") {
        CHECK(expand_shard_list("/d/{00008..00011}.tar") ==
              std::vector<std::string>{"/d/00008.tar", "/d/00009.tar", "/d/00010.tar", "/d/00011.tar"});
        CHECK(expand_shard_list("{a,b}/{0..1}.tar::/x.tar") ==
              std::vector<std::string>{"a/0.tar", "a/1.tar", "b/0.tar", "b/1.tar", "/x.tar"});
        CHECK(test::error_of([] { expand_shard_list("/d/{1..x}.tar"); }).find("FIRST..LAST") !=
              std::string::npos);
        CHECK(test::error_of([] { expand_shard_list("/d/{1..2.tar"); }).find("without '}'") !=
              std::string::npos);
        // a folder: its .tar files in name order, other files left out
        const std::string dir = temp_dir("folder");
        for (const char* name : {"00001.tar", "00000.tar", "sizes.json", "notes.txt"})
            std::ofstream(dir + "/" + name);
        fs::create_directories(dir + "/sub.tar");
        CHECK(expand_shard_list(dir) == std::vector<std::string>{dir + "/00000.tar", dir + "/00001.tar"});
        CHECK(expand_shard_list(dir + "::/x.tar").size() == 3);
        CHECK(test::error_of([&] { expand_shard_list(dir + "/sub.tar"); }).find("holds no .tar file") !=
              std::string::npos);
    }

    TEST_CASE("sizes.json: written by a scan when missing, then read") {
        std::string dir = temp_dir("sizes");
        for (int k = 0; k < 2; ++k) {
            ShardWriter w(dir + "/" + std::to_string(k) + ".tar");
            for (int i = 0; i < 3 + k; ++i) w.write({"k" + std::to_string(i), {{"txt", "t"}}});
            w.close();
        }
        std::vector<std::string> shards = expand_shard_list(dir + "/{0..1}.tar");
        CHECK(shard_sizes(shards) == std::vector<int64_t>{3, 4});
        REQUIRE(fs::exists(dir + "/sizes.json"));
        std::ofstream(dir + "/sizes.json", std::ios::trunc) << "{\"0.tar\": 30, \"1.tar\": 40}";
        CHECK(shard_sizes(shards) ==
              std::vector<int64_t>{30, 40});  // trusted when present, as open_clip does
        std::ofstream(dir + "/sizes.json", std::ios::trunc) << "{\"0.tar\": -1}";
        CHECK(test::error_of([&] { shard_sizes(shards); }).find("sizes.json: count of '0.tar'") !=
              std::string::npos);
    }

    TEST_CASE("img2dataset's NAME_stats.json gives a shard's count without a scan") {
        std::string dir = temp_dir("sizes_stats");
        for (int k = 0; k < 2; ++k) {
            ShardWriter w(dir + "/0000" + std::to_string(k) + ".tar");
            for (int i = 0; i < 3; ++i) w.write({"k" + std::to_string(i), {{"txt", "t"}}});
            w.close();
        }
        fs::remove(dir + "/sizes.json");
        // 7, not the 3 inside: read from the file, not counted; a stats file without the count is scanned
        std::ofstream(dir + "/00000_stats.json")
            << "{\"count\": 10, \"successes\": 7, \"failed_to_download\": 3}";
        std::ofstream(dir + "/00001_stats.json") << "{\"count\": 10}";
        CHECK(shard_sizes(expand_shard_list(dir + "/{00000..00001}.tar")) == std::vector<int64_t>{7, 3});
        CHECK(fs::exists(dir + "/sizes.json"));  // and remembered
    }

    TEST_CASE("sizes.json that cannot be written (a read-only dataset folder): counted, not an error") {
        std::string dir = temp_dir("sizes_ro");
        ShardWriter w(dir + "/0.tar");
        for (int i = 0; i < 5; ++i) w.write({"k" + std::to_string(i), {{"txt", "t"}}});
        w.close();
        fs::remove(dir + "/sizes.json");
        // the atomic write's temporary name taken by a folder: the write fails as on a read-only folder
        fs::create_directories(dir + "/sizes.json.tmp." + std::to_string(getpid()));
        CHECK(shard_sizes({dir + "/0.tar"}) == std::vector<int64_t>{5});
        CHECK_FALSE(fs::exists(dir + "/sizes.json"));
    }
}
