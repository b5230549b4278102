// resize_image against PIL's Image.resize over a grid of sizes (up- and downscaling by large
// factors, one axis only, 1-pixel images), both filters, bit-exact; resize_image_window
// against cropping the full result.
#include <time.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "qvit/error.h"
#include "qvit/image.h"
#include "test_util.h"

namespace qvit {
namespace {

using nlohmann::json;

// CPU time of this thread: the timings stay meaningful while other builds share the machine.
double cpu_now() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

std::string image_fixture(const std::string& name) {
  return test::fixture("images/" + name);
}

// tools/make_image_fixtures.py noise_image: byte i = low byte of fmix64(i + seed * golden).
Image noise_image(int w, int h, uint64_t seed) {
  Image img;
  img.width = w;
  img.height = h;
  img.rgb.resize(size_t(w) * h * 3);
  for (size_t i = 0; i < img.rgb.size(); ++i) {
    uint64_t x = i + seed * 0x9E3779B97F4A7C15ull;
    x ^= x >> 33;
    x *= 0xFF51AFD7ED558CCDull;
    x ^= x >> 33;
    x *= 0xC4CEB9FE1A85EC53ull;
    x ^= x >> 33;
    img.rgb[i] = static_cast<uint8_t>(x);
  }
  return img;
}

Image crop(const Image& img, int x0, int y0, int w, int h) {
  Image out;
  out.width = w;
  out.height = h;
  for (int y = y0; y < y0 + h; ++y) {
    const uint8_t* row = img.rgb.data() + (size_t(y) * img.width + x0) * 3;
    out.rgb.insert(out.rgb.end(), row, row + size_t(w) * 3);
  }
  return out;
}

TEST(ImageResize, BitExactWithPilOnGrid) {
  std::ifstream f(image_fixture("index.json"));
  ASSERT_TRUE(f) << "missing fixture index";
  json grid = json::parse(f)["resize_grid"];
  std::vector<uint8_t> blob = test::read_bytes(image_fixture(grid["file"]));
  ASSERT_GE(grid["cases"].size(), 60u);
  for (const json& c : grid["cases"]) {
    const int in_w = c["in"][0], in_h = c["in"][1], out_w = c["out"][0], out_h = c["out"][1];
    const std::string filter_name = c["filter"];
    SCOPED_TRACE(fmt::format("{}x{} -> {}x{} {}", in_w, in_h, out_w, out_h, filter_name));
    const Interpolation filter =
        filter_name == "bicubic" ? Interpolation::bicubic : Interpolation::bilinear;
    Image got = resize_image(noise_image(in_w, in_h, c["seed"]), out_w, out_h, filter);
    ASSERT_EQ(got.width, out_w);
    ASSERT_EQ(got.height, out_h);
    const size_t offset = c["offset"];
    ASSERT_LE(offset + got.rgb.size(), blob.size());
    size_t diffs = 0, first = 0;
    for (size_t i = 0; i < got.rgb.size(); ++i) {
      if (got.rgb[i] != blob[offset + i] && diffs++ == 0) first = i;
    }
    EXPECT_EQ(diffs, 0u) << "first difference at byte " << first << ": " << int(got.rgb[first])
                         << " vs PIL " << int(blob[offset + first]);
  }
}

TEST(ImageResize, WindowEqualsCropOfFullResult) {
  struct Case {
    int in_w, in_h, out_w, out_h, x0, y0, w, h;
  };
  const Case cases[] = {
      {500, 375, 341, 256, 58, 16, 224, 224}, {37, 53, 256, 366, 16, 71, 224, 224},
      {640, 480, 100, 75, 0, 0, 1, 1},        {640, 480, 100, 75, 99, 74, 1, 1},
      {13, 7, 13, 20, 3, 5, 9, 11},           {13, 7, 40, 7, 7, 2, 30, 4},
      {50, 50, 50, 50, 10, 10, 20, 20},       {300, 17, 7, 2, 2, 1, 5, 1},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(fmt::format("{}x{} -> {}x{} window {}x{}+{}+{}", c.in_w, c.in_h, c.out_w, c.out_h,
                             c.w, c.h, c.x0, c.y0));
    Image src = noise_image(c.in_w, c.in_h, 77);
    for (Interpolation filter : {Interpolation::bicubic, Interpolation::bilinear}) {
      Image full = resize_image(src, c.out_w, c.out_h, filter);
      Image win = resize_image_window(src, c.out_w, c.out_h, filter, c.x0, c.y0, c.w, c.h);
      Image want = crop(full, c.x0, c.y0, c.w, c.h);
      EXPECT_EQ(win.width, c.w);
      EXPECT_EQ(win.height, c.h);
      EXPECT_TRUE(win.rgb == want.rgb);
    }
  }
}

TEST(ImageResize, SameSizeIsACopy) {
  Image src = noise_image(31, 17, 3);
  EXPECT_EQ(resize_image(src, 31, 17, Interpolation::bicubic).rgb, src.rgb);
}

TEST(ImageResize, BadArgumentsAreErrors) {
  Image src = noise_image(8, 8, 1);
  EXPECT_THROW(resize_image(src, 0, 5, Interpolation::bicubic), Error);
  EXPECT_THROW(resize_image(src, 5, -1, Interpolation::bicubic), Error);
  EXPECT_THROW(resize_image_window(src, 10, 10, Interpolation::bicubic, 5, 5, 6, 2), Error);
  EXPECT_THROW(resize_image(Image{}, 5, 5, Interpolation::bicubic), Error);
  Image bad = src;
  bad.rgb.pop_back();
  EXPECT_THROW(resize_image(bad, 5, 5, Interpolation::bicubic), Error);
}

TEST(ImageResize, TypicalImageIsFast) {
  // 500x375 -> 341x256 (what an ImageNet image goes through); reported, loosely bounded.
  Image src = noise_image(500, 375, 5);
  Image out;
  const int reps = 20;
  auto t0 = cpu_now();
  for (int i = 0; i < reps; ++i) out = resize_image(src, 341, 256, Interpolation::bicubic);
  double ms = (cpu_now() - t0) / reps;
  std::printf("resize 500x375 -> 341x256 bicubic: %.2f ms\n", ms);
  EXPECT_EQ(out.width, 341);
  EXPECT_LT(ms, 50.0);  // generous: sanitizer and debug builds
}

}  // namespace
}  // namespace qvit
