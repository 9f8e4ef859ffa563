// test_safetensors.cpp: round trips of every dtype with metadata, atomic writes, and one clear error
// for each kind of malformed or hostile file; the JSON, .npy and number parsers they rest on.
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include "engine/core/parse.h"
#include "engine/io/files.h"
#include "engine/io/json_lite.h"
#include "engine/io/npy.h"
#include "engine/io/safetensors.h"
#include "test_util.h"

using namespace aclip;
using aclip::test::error_of;

namespace {

std::string temp_path(const std::string& name) {
    std::string dir =
        std::filesystem::temp_directory_path().string() + "/aclip_test_" + std::to_string(getpid());
    std::filesystem::create_directories(dir);
    return dir + "/" + name;
}

// Writes a file with the given JSON header (padded) and data bytes.
std::string write_raw(const std::string& name, const std::string& header, const std::string& data,
                      int64_t declared_len = -1) {
    std::string path = temp_path(name);
    std::ofstream out(path, std::ios::binary);
    uint64_t n = declared_len >= 0 ? static_cast<uint64_t>(declared_len) : header.size();
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xff));
    out << header << data;
    return path;
}

std::string load_error(const std::string& path) {
    return error_of([&] { (void)load_safetensors(path); });
}

}  // namespace

TEST_SUITE("io") {
    TEST_CASE("round trip of every dtype, with metadata, views and empty tensors") {
        std::vector<std::pair<std::string, Tensor>> ts = {
            {"f32", from_vector<float>({1.5f, -2.f, 3.25f, 0.f, 1e-20f, 7.f}, {2, 3})},
            {"f64", from_vector<double>({3.141592653589793}, {})},
            {"bf16", from_vector<float>({1.f, -0.5f, 65280.f}, {3}).to(DType::BF16)},
            {"i32", from_vector<int32_t>({-7, 2147483647}, {2, 1})},
            {"i64", from_vector<int64_t>({-9000000000LL, 5}, {2})},
            {"u8", from_vector<uint8_t>({0, 255, 17}, {3})},
            {"view", arange(12, DType::F32).reshape({3, 4}).transpose(0, 1)},
            {"empty", empty({0, 4})},
            {"name with \"quotes\" and ünïcode", ones({1})},
        };
        std::map<std::string, std::string> meta = {{"vision.heads", "12"},
                                                   {"aclip.config", "[a]\nb = \"c\"\n"}};
        std::string path = temp_path("roundtrip.safetensors");
        save_safetensors(path, ts, meta);
        SafetensorsFile f = load_safetensors(path);
        CHECK(f.metadata == meta);
        REQUIRE(f.tensors.size() == ts.size());
        for (size_t i = 0; i < ts.size(); ++i) {
            CAPTURE(ts[i].first);
            CHECK(f.tensors[i].first == ts[i].first);
            CHECK(f.tensors[i].second.dtype() == ts[i].second.dtype());
            CHECK(f.tensors[i].second.shape() == ts[i].second.shape());
            CHECK(f.tensors[i].second.to_vector<double>() == ts[i].second.to_vector<double>());
        }
        // data starts 8-byte aligned, and no temporary file is left behind
        std::ifstream in(path, std::ios::binary);
        uint64_t n = 0;
        in.read(reinterpret_cast<char*>(&n), 8);
        CHECK((8 + n) % 8 == 0);
        for (auto& entry : std::filesystem::directory_iterator(std::filesystem::path(path).parent_path()))
            CHECK(entry.path().string().find(".tmp.") == std::string::npos);
    }

    TEST_CASE("an atomic write replaces the old file whole") {
        std::string path = temp_path("atomic.safetensors");
        save_safetensors(path, {{"a", ones({1000})}});
        save_safetensors(path, {{"b", zeros({2})}});
        SafetensorsFile f = load_safetensors(path);
        CHECK(f.has("b"));
        CHECK_FALSE(f.has("a"));
        CHECK(error_of([] {
                  save_safetensors("/nonexistent-dir/x.safetensors", {{"a", ones({1})}});
              }).find("cannot create") != std::string::npos);
        create_directories(temp_path("a/b/c"));  // parents too; again is no error
        create_directories(temp_path("a/b/c"));
        CHECK(std::filesystem::is_directory(temp_path("a/b/c")));
        CHECK(error_of([&] {
                  create_directories(path + "/run");
              }).find("cannot create directory '" + path + "/run': Not a directory") != std::string::npos);
    }

    TEST_CASE("files read whole; a directory or a missing file is an error naming it") {
        const std::string path = temp_path("bytes.bin");
        write_file_atomic(path, std::string("a\0b\r\n", 5));
        CHECK(read_file(path) == std::string("a\0b\r\n", 5));
        const std::string dir = temp_path("a_folder.safetensors");
        std::filesystem::create_directories(dir);
        // an ifstream opens a directory; its header length was then read from nothing (an uninitialised
        // read: "header length 140029784518952 exceeds the 100 MiB limit")
        for (const auto& read : std::vector<std::function<void()>>{
                 [&] { load_safetensors(dir); }, [&] { read_file(dir); }, [&] { open_for_reading(dir); }})
            CHECK(error_of(read).find("'" + dir + "' is a directory, not a file") != std::string::npos);
        CHECK(error_of([&] {
                  read_file(dir + "/none", "a hint");
              }).find("cannot open '" + dir + "/none': No such file or directory") != std::string::npos);
        CHECK(error_of([&] { read_file(dir + "/none", "a hint"); }).find("HINT: a hint") !=
              std::string::npos);
        // writing: a directory is refused before anything is written (the rename failed after the write)
        CHECK(error_of([&] { write_file_atomic(dir, "x"); }).find("'" + dir + "' is a directory") !=
              std::string::npos);
        // check_can_write, before long work: the file's folder must exist, the path must not be a folder
        check_can_write(path);
        check_can_write(dir + "/new.bin");
        CHECK(error_of([&] { check_can_write(dir); }).find("is a directory") != std::string::npos);
        CHECK(error_of([&] {
                  check_can_write(dir + "/none/new.bin");
              }).find("the folder '" + dir + "/none' does not exist") != std::string::npos);
        CHECK(error_of([&] { check_can_write(path + "/new.bin"); }).find("does not exist") !=
              std::string::npos);
    }

    TEST_CASE("malformed files give clear errors") {
        const std::string ok_entry = R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
        const std::string data8(8, '\0');
        CHECK(load_safetensors(write_raw("ok.st", "{" + ok_entry + "}", data8)).has("a"));

        CHECK(load_error(temp_path("missing.st")).find("cannot open") != std::string::npos);
        {
            std::string p = temp_path("short.st");
            std::ofstream(p) << "abc";
            CHECK(load_error(p).find("truncated") != std::string::npos);
        }
        CHECK(load_error(write_raw("hlen.st", "{" + ok_entry + "}", data8, 1 << 30))
                  .find("runs past the end") != std::string::npos);
        CHECK(load_error(write_raw("trunc_data.st", "{" + ok_entry + "}", "1234"))
                  .find("past the end of the data") != std::string::npos);
        CHECK(load_error(write_raw("json.st", "{\"a\":", data8)).find("invalid JSON") != std::string::npos);
        CHECK(load_error(write_raw("notobj.st", "[1,2]", "")).find("not a JSON object") != std::string::npos);
        CHECK(load_error(write_raw("dtype.st",
                                   R"({"a":{"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]}})", data8))
                  .find("unknown dtype 'F8_E4M3'") != std::string::npos);
        CHECK(load_error(
                  write_raw("size.st", R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", data8))
                  .find("needs 12") != std::string::npos);
        CHECK(load_error(write_raw("dup.st", "{" + ok_entry + "," + ok_entry + "}", data8))
                  .find("duplicate key") != std::string::npos);
        CHECK(load_error(write_raw("overlap.st",
                                   R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                   R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                                   data8))
                  .find("overlaps") != std::string::npos);
        CHECK(load_error(
                  write_raw("hole.st", R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", data8))
                  .find("hole") != std::string::npos);
        CHECK(load_error(
                  write_raw("neg.st", R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,8]}})", data8))
                  .find("negative") != std::string::npos);
        CHECK(load_error(
                  write_raw("offs.st", R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", data8))
                  .find("data_offsets") != std::string::npos);
        CHECK(load_error(
                  write_raw("huge.st",
                            R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})",
                            data8))
                  .find("overflows") != std::string::npos);
        CHECK(load_error(write_raw("meta.st", R"({"__metadata__":{"k":1}})", "")).find("not a string") !=
              std::string::npos);
        CHECK(load_error(
                  write_raw("float.st", R"({"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", data8))
                  .find("only integers") != std::string::npos);
        std::string deep(100, '[');
        CHECK(load_error(write_raw("deep.st", deep, "")).find("nesting") != std::string::npos);
    }

    TEST_CASE("numbers from text: the whole text one number, in range, finite") {
        CHECK(parse_int64("42") == 42);
        CHECK(parse_int64("-7") == -7);
        CHECK(parse_int64("+3") == 3);
        CHECK(parse_int64(" 5\n") == 5);  // as Python's int(): a .cls file's line
        CHECK(parse_int64("9223372036854775807") == INT64_MAX);
        for (const char* bad :
             {"", " ", "+", "-", "+-1", "4 2", "4.0", "1e3", "0x10", "9223372036854775808", "two"})
            CHECK_MESSAGE(!parse_int64(bad), bad);
        CHECK(parse_double("5e-4") == 5e-4);
        CHECK(parse_double(".5") == 0.5);
        CHECK(parse_double("+1") == 1.0);
        CHECK(parse_double("-0.25") == -0.25);
        CHECK(parse_double("3") == 3.0);
        for (const char* bad : {"", "1e999", "nan", "inf", "-inf", "0x10", "1,5", "1.5.", "fast"})
            CHECK_MESSAGE(!parse_double(bad), bad);
    }

    TEST_CASE("json: escapes and unicode survive a quote/parse round trip") {
        std::string s = "tab\there \"q\" back\\slash \x01 é 😀";
        JsonValue v = json_parse(json_quote(s), "test");
        CHECK(v.string == s);
        CHECK(json_parse(R"("\u00e9\ud83d\ude00")", "test").string == "é😀");
        CHECK(error_of([] { json_parse(R"("\ud83d")", "test"); }).find("surrogate") != std::string::npos);
    }

    TEST_CASE(".npy: NumPy's version 1.0 layout, 64-byte aligned header, C-order data") {
        Tensor t = from_vector(std::vector<float>{1.5f, -2.f, 3.f, 0.25f, 5.f, 6.f}, {2, 3});
        std::string b = npy_bytes(t.transpose(0, 1));  // a non-contiguous view is written in C order
        CHECK(b.substr(0, 6) == "\x93NUMPY");
        CHECK(b[6] == 1);
        CHECK(b[7] == 0);
        const size_t header_len = static_cast<uint8_t>(b[8]) | (static_cast<uint8_t>(b[9]) << 8);
        CHECK((10 + header_len) % 64 == 0);
        const std::string header = b.substr(10, header_len);
        CHECK(header.find("'descr': '<f4'") != std::string::npos);
        CHECK(header.find("'fortran_order': False") != std::string::npos);
        CHECK(header.find("'shape': (3, 2)") != std::string::npos);
        CHECK(header.back() == '\n');
        REQUIRE(b.size() == 10 + header_len + 6 * 4);
        float data[6];
        std::memcpy(data, b.data() + 10 + header_len, sizeof data);
        CHECK(std::vector<float>(data, data + 6) == std::vector<float>{1.5f, 0.25f, -2.f, 5.f, 3.f, 6.f});
        CHECK(npy_bytes(arange(4)).find("'shape': (4,)") != std::string::npos);  // a 1-tuple keeps its comma
        CHECK(test::error_of([] { npy_bytes(ones({2}).to(DType::BF16)); }).find("no bf16") !=
              std::string::npos);
    }
}
