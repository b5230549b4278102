// Every image of the shared imagenet-sample folder: decoded pixels and the uint8 crops of the
// DeiT (resize 256) and ViT (resize 248) transforms against CRC32s of PIL/torchvision's results
// (tools/make_image_fixtures.py writes them to imagenet_crc32.json).
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "qvit/image.h"
#include "test_util.h"

namespace qvit {
namespace {

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

// torchvision Resize(short) + CenterCrop(crop) as uint8, through the public API.
Image resized_crop(const Image& img, int resize_short, int crop) {
  const bool wide = img.width > img.height;
  const int s = wide ? img.height : img.width, l = wide ? img.width : img.height;
  const int new_long = static_cast<int>(double(int64_t(resize_short) * l) / s);
  const int w = wide ? new_long : resize_short, h = wide ? resize_short : new_long;
  auto offset = [](int d) { return static_cast<int>(std::nearbyint(d / 2.0)); };  // ties to even
  return resize_image_window(img, w, h, Interpolation::bicubic, offset(w - crop), offset(h - crop),
                             crop, crop);
}

TEST(ImageImageNet, EverySampleImageMatchesPil) {
  QVIT_REQUIRE_DATA_PATH(root, "imagenet-sample");
  std::ifstream f(test::fixture("images/imagenet_crc32.json"));
  ASSERT_TRUE(f) << "missing fixture imagenet_crc32.json";
  nlohmann::json hashes = nlohmann::json::parse(f);
  ASSERT_EQ(hashes.size(), 1000u);
  int decode_bad = 0, crop_bad = 0;
  double decode_ms = 0, crop_ms = 0;
  for (const auto& [name, want] : hashes.items()) {
    auto t0 = std::chrono::steady_clock::now();
    Image img = decode_image_file(root + "/" + name);
    auto t1 = std::chrono::steady_clock::now();
    Image deit = resized_crop(img, 256, 224);
    auto t2 = std::chrono::steady_clock::now();
    Image vit = resized_crop(img, 248, 224);
    decode_ms += std::chrono::duration<double, std::milli>(t1 - t0).count();
    crop_ms += std::chrono::duration<double, std::milli>(t2 - t1).count();
    EXPECT_EQ(img.width, want["size"][0].get<int>()) << name;
    EXPECT_EQ(img.height, want["size"][1].get<int>()) << name;
    if (crc32(img.rgb) != want["decoded"].get<uint32_t>()) {
      ADD_FAILURE() << name << ": decoded pixels differ from PIL";
      ++decode_bad;
    }
    if (crc32(deit.rgb) != want["deit"].get<uint32_t>() ||
        crc32(vit.rgb) != want["vit"].get<uint32_t>()) {
      ADD_FAILURE() << name << ": crop differs from torchvision";
      ++crop_bad;
    }
  }
  const double n = double(hashes.size());
  std::printf(
      "imagenet-sample: %d decode / %d crop mismatches; mean decode %.2f ms, resize+crop %.2f ms\n",
      decode_bad, crop_bad, decode_ms / n, crop_ms / n);
}

}  // namespace
}  // namespace qvit
