// Decoding tests: every synthetic JPEG/PNG fixture against PIL's Image.open().convert("RGB")
// (tools/make_image_fixtures.py), and broken inputs (truncated, corrupt, garbage, empty,
// missing, too large), which must raise qvit::Error naming the file.
#include <array>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "qvit/error.h"
#include "qvit/image.h"
#include "test_util.h"

namespace qvit {
namespace {

using nlohmann::json;

std::string image_fixture(const std::string& name) {
  return test::fixture("images/" + name);
}

json load_index() {
  std::ifstream f(image_fixture("index.json"));
  if (!f) throw std::runtime_error("missing tests/fixtures/images/index.json");
  return json::parse(f);
}

uint32_t crc32(const std::vector<uint8_t>& bytes) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t c = 0xFFFFFFFFu;
  for (uint8_t b : bytes) c = table[(c ^ b) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

// Expects decode_image_file(path) to throw a qvit::Error whose message names the path.
void expect_error_naming(const std::string& path, int64_t max_pixels = kDefaultMaxPixels,
                         const std::string& also = "") {
  try {
    Image img = decode_image_file(path, max_pixels);
    ADD_FAILURE() << path << ": decoded (" << img.width << "x" << img.height << ") but should fail";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_EQ(msg.rfind("[image] ", 0), 0u) << msg;
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    if (!also.empty()) {
      EXPECT_NE(msg.find(also), std::string::npos) << msg;
    }
  }
}

TEST(ImageDecode, MatchesPilOnEveryFixture) {
  json index = load_index();
  ASSERT_GE(index["decode"].size(), 20u);
  for (const json& e : index["decode"]) {
    const std::string name = e["file"];
    SCOPED_TRACE(name + " (" + e["note"].get<std::string>() + ")");
    Image img = decode_image_file(image_fixture(name));
    ASSERT_EQ(img.width, e["width"].get<int>());
    ASSERT_EQ(img.height, e["height"].get<int>());
    ASSERT_EQ(img.rgb.size(), size_t(img.width) * img.height * 3);
    if (e.contains("golden_rgb")) {
      std::vector<uint8_t> want = test::read_bytes(image_fixture(e["golden_rgb"]));
      ASSERT_EQ(img.rgb.size(), want.size());
      size_t diffs = 0, first = 0;
      for (size_t i = 0; i < want.size(); ++i) {
        if (img.rgb[i] != want[i] && diffs++ == 0) first = i;
      }
      EXPECT_EQ(diffs, 0u) << "first difference at byte " << first << ": " << int(img.rgb[first])
                           << " vs PIL " << int(want[first]);
    } else {
      EXPECT_EQ(crc32(img.rgb), e["golden_crc32"].get<uint32_t>())
          << "decoded pixels differ from PIL";
    }
  }
}

TEST(ImageDecode, ChoosesFormatByContent) {
  // PNG data in a file named .JPEG (as in some ImageNet copies), and the reverse.
  Image a = decode_image_file(image_fixture("png_named_as.JPEG"));
  EXPECT_EQ(a.width, 58);
  std::string dir = test::temp_dir();
  std::string jpeg_as_png = dir + "/photo.png";
  test::write_bytes(jpeg_as_png, test::read_bytes(image_fixture("rgb_37x53_420.jpg")));
  Image b = decode_image_file(jpeg_as_png);
  Image c = decode_image_file(image_fixture("rgb_37x53_420.jpg"));
  EXPECT_EQ(b.rgb, c.rgb);
  // From memory too.
  std::vector<uint8_t> bytes = test::read_bytes(image_fixture("rgb_64x48.png"));
  Image d = decode_image_memory(bytes.data(), bytes.size(), "mem.png");
  EXPECT_EQ(d.rgb, decode_image_file(image_fixture("rgb_64x48.png")).rgb);
}

TEST(ImageDecode, TruncatedFilesAreErrors) {
  // Cut points at which PIL (without LOAD_TRUNCATED_IMAGES) refuses the file, checked by the
  // fixture script.
  json index = load_index();
  std::string dir = test::temp_dir();
  int cases = 0;
  for (const auto& [name, cuts] : index["truncations"].items()) {
    std::vector<uint8_t> bytes = test::read_bytes(image_fixture(name));
    for (size_t cut : cuts.get<std::vector<size_t>>()) {
      SCOPED_TRACE(name + " cut at " + std::to_string(cut));
      std::string path = dir + "/cut_" + std::to_string(cut) + "_" + name;
      test::write_bytes(path, std::vector<uint8_t>(bytes.begin(), bytes.begin() + cut));
      expect_error_naming(path);
      ++cases;
    }
  }
  EXPECT_GE(cases, 40);
}

TEST(ImageDecode, CorruptFilesAreErrors) {
  json index = load_index();
  ASSERT_GE(index["bad_files"].size(), 5u);
  for (const auto& [name, note] : index["bad_files"].items()) {
    SCOPED_TRACE(name + ": " + note.get<std::string>());
    expect_error_naming(image_fixture(name));
  }
  expect_error_naming(image_fixture("bad_crc.png"), kDefaultMaxPixels, "CRC");
  // A fatal libjpeg error after a warning must not pass for a warning.
  expect_error_naming(image_fixture("bad_after_warning.jpg"), kDefaultMaxPixels, "Huffman");
}

TEST(ImageDecode, GarbageEmptyAndMissingFilesAreErrors) {
  std::string dir = test::temp_dir();
  std::string garbage = dir + "/garbage.JPEG";
  test::write_bytes(garbage, {'G', 'I', 'F', '8', '9', 'a', 1, 2, 3, 4, 5, 6, 7, 8});
  expect_error_naming(garbage, kDefaultMaxPixels, "not a JPEG or PNG file");
  std::string empty = dir + "/empty.jpg";
  test::write_bytes(empty, {});
  expect_error_naming(empty, kDefaultMaxPixels, "not a JPEG or PNG file");
  // JPEG / PNG magic followed by garbage.
  std::string fake_jpeg = dir + "/fake.jpg";
  test::write_bytes(fake_jpeg,
                    {0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 'x', 'y', 'z', 0xFF, 0xFF, 0x00, 1, 2, 3});
  expect_error_naming(fake_jpeg);
  std::string fake_png = dir + "/fake.png";
  test::write_bytes(fake_png,
                    {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R'});
  expect_error_naming(fake_png);
  expect_error_naming(dir + "/does_not_exist.JPEG", kDefaultMaxPixels, "cannot open");
  expect_error_naming(dir, kDefaultMaxPixels);  // a directory
}

TEST(ImageDecode, PixelCapIsCheckedBeforeAllocating) {
  // Headers claiming 3.6 and 4.2 Gpixel fail fast against the default cap.
  expect_error_naming(image_fixture("huge_60000x60000.png"), kDefaultMaxPixels, "limit");
  expect_error_naming(image_fixture("huge_65000x65000.jpg"), kDefaultMaxPixels, "limit");
  // A small cap refuses ordinary images; the exact pixel count passes.
  expect_error_naming(image_fixture("rgb_37x53_420.jpg"), 37 * 53 - 1, "limit");
  expect_error_naming(image_fixture("rgb_64x48.png"), 64 * 48 - 1, "limit");
  EXPECT_EQ(decode_image_file(image_fixture("rgb_37x53_420.jpg"), 37 * 53).width, 37);
  EXPECT_EQ(decode_image_file(image_fixture("rgb_64x48.png"), 64 * 48).width, 64);
}

}  // namespace
}  // namespace qvit
