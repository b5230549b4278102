// `qvit inspect`: the section table and metadata of a .qvit (text and --json, compared with the
// library's reader), a corrupted file as a one-line error, and tensor listings of safetensors.
#include <fmt/format.h>

#include <filesystem>

#include "qvit/io.h"
#include "qvit/qvit_file.h"
#include "qvitfile_test_util.h"
#include "test_util.h"

namespace qvit {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

TEST(QvitInspect, JsonMatchesTheFile) {
  std::string dir = test::temp_dir();
  const std::string path = dir + "/m.qvit";
  test::sample_writer().save(path);
  std::string out;
  ASSERT_EQ(test::run_cli("inspect --json " + path, &out), 0) << out;
  const json j = json::parse(out);
  const QvitFile f = QvitFile::open(path);
  EXPECT_EQ(j["format"], "qvit");
  EXPECT_EQ(j["version"], 1);
  EXPECT_EQ(j["size"], fs::file_size(path));
  EXPECT_EQ(j["checksums_verified"], true);
  EXPECT_EQ(j["metadata"], f.meta());
  ASSERT_EQ(j["sections"].size(), 9u);
  EXPECT_EQ(j["sections"][0]["kind"], "metadata");
  for (size_t i = 1; i < 9; ++i) {
    const json& s = j["sections"][i];
    const QvitSection& want = f.section(s["name"].get<std::string>());
    EXPECT_EQ(s["kind"], "tensor");
    EXPECT_EQ(s["dtype"], dtype_name(want.dtype));
    EXPECT_EQ(s["bits"], want.bits);
    EXPECT_EQ(s["shape"].get<Shape>(), want.shape);
    EXPECT_EQ(s["offset"], want.offset);
    EXPECT_EQ(s["nbytes"], want.nbytes);
    // Independent check of the stored CRC.
    EXPECT_EQ(s["crc32"], fmt::format("{:08x}", test::crc32_bitwise(
                                                    static_cast<const uint8_t*>(want.data),
                                                    want.nbytes)));
  }
  EXPECT_EQ(j["sections"][2]["name"], "w4");
  EXPECT_EQ(j["sections"][2]["bits"], 4);
  fs::remove_all(dir);
}

TEST(QvitInspect, TextTableAndErrors) {
  std::string dir = test::temp_dir();
  const std::string path = dir + "/m.qvit";
  QvitWriter w = test::sample_writer();
  std::vector<double> scales(100);
  for (size_t i = 0; i < scales.size(); ++i) scales[i] = 0.5 * static_cast<double>(i);
  json points = json::array();
  for (int i = 0; i < 20; ++i) points.push_back({{"name", "p" + std::to_string(i)}, {"scale", scales}});
  w.set_meta({{"model", "toy"}, {"scales", scales}, {"points", points}});
  w.save(path);
  std::string out;
  ASSERT_EQ(test::run_cli("inspect " + path, &out), 0) << out;
  EXPECT_NE(out.find(path + ": qvit format version 1, "), std::string::npos) << out;
  EXPECT_NE(out.find("9 sections (checksums verified)"), std::string::npos) << out;
  EXPECT_NE(out.find("\"scales\": \"[100 values: 0.0, 0.5, 1.0, ..., 49.5]\""), std::string::npos)
      << out;
  // 20 objects: the first three, a marker and the last, each shortened.
  EXPECT_NE(out.find("\"name\": \"p2\",\n      \"scale\": \"[100 values: 0.0, 0.5, 1.0, ..., 49.5]\"\n"
                     "    },\n    \"... 16 more ...\",\n    {\n      \"name\": \"p19\""),
            std::string::npos)
      << out;
  const QvitSection w4 = QvitFile::open(path).section("w4");  // a copy: the file is closed
  EXPECT_NE(out.find(fmt::format("w4            I8       4  [3,5]                {:12}            8  {:08x}",
                                 w4.offset, w4.crc32)),
            std::string::npos)
      << out;

  // A flipped byte: a one-line error naming the section, exit code 1; --no-verify still lists.
  auto bytes = test::read_bytes(path);
  bytes[w4.offset] ^= 0x20;
  test::write_bytes(path, bytes);
  EXPECT_EQ(test::run_cli("inspect " + path, &out), 1);
  EXPECT_EQ(out, "qvit: error: [qvit] " + path + ": checksum mismatch in section 'w4' (stored " +
                     fmt::format("0x{:08x}", w4.crc32) + ", computed " +
                     fmt::format("0x{:08x}", test::crc32_bitwise(bytes.data() + w4.offset, 8)) +
                     ")\n");
  EXPECT_EQ(test::run_cli("inspect --no-verify " + path, &out), 0) << out;
  EXPECT_NE(out.find("(checksums not verified)"), std::string::npos) << out;
  fs::remove_all(dir);
}

TEST(QvitInspect, NameThatIsNotUtf8) {
  std::string dir = test::temp_dir();
  QvitWriter w;
  w.add("bad\xff", Tensor({1}));
  w.save(dir + "/m.qvit");
  EXPECT_EQ(QvitFile::open(dir + "/m.qvit").names(), std::vector<std::string>{"bad\xff"});
  std::string out;
  ASSERT_EQ(test::run_cli("inspect --json " + dir + "/m.qvit", &out), 0) << out;
  EXPECT_EQ(json::parse(out)["sections"][1]["name"], "bad\xef\xbf\xbd");  // U+FFFD
  fs::remove_all(dir);
}

TEST(QvitInspect, ListsSafetensors) {
  const std::string path = test::fixture("io/dtypes.safetensors");
  std::string out;
  ASSERT_EQ(test::run_cli("inspect --json " + path, &out), 0) << out;
  const json j = json::parse(out);
  const WeightFile w = load_safetensors(path);
  EXPECT_EQ(j["format"], "safetensors");
  EXPECT_EQ(j["metadata"], w.metadata);
  ASSERT_EQ(j["tensors"].size(), w.tensors.size());
  for (const json& t : j["tensors"]) {
    const Tensor& want = w.tensors.at(t["name"].get<std::string>());
    EXPECT_EQ(t["dtype"], dtype_name(want.dtype()));
    EXPECT_EQ(t["shape"].get<Shape>(), want.shape());
  }
  ASSERT_EQ(test::run_cli("inspect " + path, &out), 0) << out;
  EXPECT_NE(out.find("arange  F32    [3,4]"), std::string::npos) << out;
}

}  // namespace
}  // namespace qvit
