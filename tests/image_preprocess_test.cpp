// preprocess_image against torchvision 0.14 (Resize on the short side, CenterCrop, ToTensor,
// Normalize): uint8 crops of synthetic and real ImageNet images bit-exact, torch's per-byte
// ToTensor+Normalize values exact, whole float tensors within 1e-6 (acceptance: 1/255).
#include <time.h>

#include <cmath>
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

json load_index() {
  std::ifstream f(image_fixture("index.json"));
  if (!f) throw std::runtime_error("missing tests/fixtures/images/index.json");
  return json::parse(f);
}

PreprocessConfig config_from(const json& c) {
  PreprocessConfig cfg;
  cfg.resize_short = c["resize_short"];
  cfg.crop = c["crop"];
  cfg.interpolation = c.value("interpolation", std::string("bicubic")) == "bilinear"
                          ? Interpolation::bilinear
                          : Interpolation::bicubic;
  for (int i = 0; i < 3; ++i) {
    cfg.mean[i] = static_cast<float>(c["mean"][i].get<double>());  // as torch.as_tensor(float32)
    cfg.std[i] = static_cast<float>(c["std"][i].get<double>());
  }
  return cfg;
}

// torch's float for byte value v of channel c: normalize_<config>.f32 holds [3, 256].
std::vector<float> torch_table(const json& index, const std::string& config) {
  std::vector<float> t = test::read_f32(image_fixture(index["normalize_tables"][config]));
  EXPECT_EQ(t.size(), 3u * 256);
  return t;
}

// The uint8 crop preprocess_image computes internally (same size arithmetic, public API).
Image resized_crop(const Image& img, const PreprocessConfig& cfg) {
  const bool wide = img.width > img.height;
  const int s = wide ? img.height : img.width, l = wide ? img.width : img.height;
  const int new_long = static_cast<int>(double(int64_t(cfg.resize_short) * l) / s);
  const int w = wide ? new_long : cfg.resize_short, h = wide ? cfg.resize_short : new_long;
  auto offset = [](int d) { return static_cast<int>(std::nearbyint(d / 2.0)); };  // ties to even
  return resize_image_window(img, w, h, cfg.interpolation, offset(w - cfg.crop),
                             offset(h - cfg.crop), cfg.crop, cfg.crop);
}

std::string source_path(const json& e, const std::string& data_root) {
  return e["source"] == "data" ? data_root + "/" + e["file"].get<std::string>()
                               : image_fixture(e["file"]);
}

// Our float output against golden bytes mapped through torch's table: must be identical.
void expect_floats_from_bytes(const std::vector<float>& got, const Image& golden,
                              const std::vector<float>& table) {
  const size_t plane = size_t(golden.width) * golden.height;
  ASSERT_EQ(got.size(), 3 * plane);
  size_t diffs = 0;
  for (int c = 0; c < 3; ++c) {
    for (size_t i = 0; i < plane; ++i)
      diffs += got[c * plane + i] != table[c * 256 + golden.rgb[i * 3 + c]];
  }
  EXPECT_EQ(diffs, 0u);
}

void check_crops(const std::string& source) {
  json index = load_index();
  std::string data_root;
  if (source == "data") data_root = test::data_path("imagenet-sample");
  int checked = 0;
  for (const json& e : index["crops"]) {
    if (e["source"] != source) continue;
    const std::string config = e["config"];
    SCOPED_TRACE(e["file"].get<std::string>() + " " + config);
    const PreprocessConfig cfg = config_from(index["configs"][config]);
    Image img = decode_image_file(source_path(e, data_root));
    Image golden = decode_image_file(image_fixture(e["golden_png"]));
    ASSERT_EQ(golden.width, cfg.crop);
    ASSERT_EQ(golden.height, cfg.crop);

    // Whole float tensors: exactly torch's values for the golden bytes.
    std::vector<float> out(3 * size_t(cfg.crop) * cfg.crop);
    preprocess_image(img, cfg, out.data());
    expect_floats_from_bytes(out, golden, torch_table(index, config));

    // And the uint8 crop itself, when the crop lies inside the resized image.
    if (cfg.crop <= cfg.resize_short) {
      Image mine = resized_crop(img, cfg);
      size_t diffs = 0;
      for (size_t i = 0; i < mine.rgb.size(); ++i) diffs += mine.rgb[i] != golden.rgb[i];
      EXPECT_EQ(diffs, 0u) << "bytes differing from PIL's crop";
    }
    ++checked;
  }
  EXPECT_GE(checked, 7);
}

TEST(ImagePreprocess, SyntheticCropsMatchTorchvision) {
  check_crops("fixture");
}

TEST(ImagePreprocess, RealImageNetCropsMatchTorchvision) {
  QVIT_REQUIRE_DATA_PATH(root, "imagenet-sample");
  check_crops("data");
}

TEST(ImagePreprocess, FloatTensorsMatchTorchvision) {
  json index = load_index();
  const std::string data_root = test::data_path("imagenet-sample");
  int checked = 0;
  for (const json& e : index["floats"]) {
    if (e["source"] == "data" && data_root.empty()) {
      if (test::data_required()) ADD_FAILURE() << "shared data missing: imagenet-sample";
      continue;
    }
    const std::string config = e["config"];
    SCOPED_TRACE(e["file"].get<std::string>() + " " + config);
    const PreprocessConfig cfg = config_from(index["configs"][config]);
    std::vector<float> want = test::read_f32(image_fixture(e["golden_f32"]));
    ASSERT_EQ(want.size(), 3 * size_t(cfg.crop) * cfg.crop);
    std::vector<float> got(want.size());
    preprocess_image(decode_image_file(source_path(e, data_root)), cfg, got.data());
    double max_diff = 0;
    for (size_t i = 0; i < want.size(); ++i)
      max_diff = std::max(max_diff, double(std::fabs(got[i] - want[i])));
    EXPECT_LE(max_diff, 1e-6);
    std::printf("%s (%s): max |ours - torch| = %g\n", e["file"].get<std::string>().c_str(),
                config.c_str(), max_diff);
    ++checked;
  }
  EXPECT_GE(checked, 3);
}

TEST(ImagePreprocess, NormalizationMatchesTorchForEveryByte) {
  // A 16x16 image holding every byte value in every channel, with resize_short = crop = 16:
  // no resampling, no cropping, so the output is ToTensor + Normalize alone.
  json index = load_index();
  Image img;
  img.width = img.height = 16;
  for (int v = 0; v < 256; ++v)
    img.rgb.insert(img.rgb.end(), {uint8_t(v), uint8_t(255 - v), uint8_t(v * 7)});
  for (const auto& [name, c] : index["configs"].items()) {
    SCOPED_TRACE(name);
    PreprocessConfig cfg = config_from(c);
    cfg.resize_short = cfg.crop = 16;
    std::vector<float> out(3 * 256);
    preprocess_image(img, cfg, out.data());
    expect_floats_from_bytes(out, img, torch_table(index, name));
  }
}

TEST(ImagePreprocess, CropOffsetsRoundHalfToEven) {
  // 500x375 -> 341x256: left = round(117 / 2) = 58 (Python rounds 58.5 to even), top = 16.
  Image img;
  img.width = 500;
  img.height = 375;
  img.rgb.resize(size_t(500) * 375 * 3);
  for (size_t i = 0; i < img.rgb.size(); ++i) img.rgb[i] = uint8_t(i * 2654435761u >> 24);
  PreprocessConfig cfg;
  std::vector<float> out(3 * 224 * 224);
  preprocess_image(img, cfg, out.data());
  Image want = resize_image_window(img, 341, 256, Interpolation::bicubic, 58, 16, 224, 224);
  for (int c = 0; c < 3; ++c) {
    for (int i = 0; i < 224 * 224; i += 97) {
      float v = (float(want.rgb[i * 3 + c]) / 255.0f - cfg.mean[c]) / cfg.std[c];
      ASSERT_EQ(out[c * 224 * 224 + i], v) << "channel " << c << " pixel " << i;
    }
  }
}

TEST(ImagePreprocess, PadsWithZerosWhenCropIsLarger) {
  // A 10x6 white image, resize_short 6 (no resize), crop 9: torchvision pads 1 on top and 2
  // below (then crops columns [0, 9) at left = round(1 / 2) = 0), zeros normalise to -mean/std.
  Image img;
  img.width = 10;
  img.height = 6;
  img.rgb.assign(10 * 6 * 3, 255);
  PreprocessConfig cfg;
  cfg.resize_short = 6;
  cfg.crop = 9;
  std::vector<float> out(3 * 81);
  preprocess_image(img, cfg, out.data());
  for (int c = 0; c < 3; ++c) {
    const float zero = (0.0f - cfg.mean[c]) / cfg.std[c];
    const float white = (1.0f - cfg.mean[c]) / cfg.std[c];
    for (int y = 0; y < 9; ++y) {
      for (int x = 0; x < 9; ++x) {
        EXPECT_EQ(out[c * 81 + y * 9 + x], (y >= 1 && y < 7) ? white : zero)
            << c << " " << y << " " << x;
      }
    }
  }
}

TEST(ImagePreprocess, BadArgumentsAreErrors) {
  PreprocessConfig cfg;
  std::vector<float> out(3 * 224 * 224);
  EXPECT_THROW(preprocess_image(Image{}, cfg, out.data()), Error);
  Image img;
  img.width = img.height = 4;
  img.rgb.assign(48, 0);
  cfg.crop = 0;
  EXPECT_THROW(preprocess_image(img, cfg, out.data()), Error);
}

TEST(ImagePreprocess, TimePerImageNetImage) {
  QVIT_REQUIRE_DATA_PATH(root, "imagenet-sample");
  const std::string path = root + "/n01440764/n01440764_tench.JPEG";
  std::vector<float> out(3 * 224 * 224);
  PreprocessConfig cfg;
  const int reps = 20;
  double decode_ms = 0, pre_ms = 0;
  for (int i = 0; i < reps; ++i) {
    auto t0 = cpu_now();
    Image img = decode_image_file(path);
    auto t1 = cpu_now();
    preprocess_image(img, cfg, out.data());
    auto t2 = cpu_now();
    decode_ms += (t1 - t0) / reps;
    pre_ms += (t2 - t1) / reps;
  }
  std::printf("tench 500x375: decode %.2f ms, preprocess %.2f ms\n", decode_ms, pre_ms);
  EXPECT_LT(decode_ms + pre_ms, 200.0);
}

}  // namespace
}  // namespace qvit
