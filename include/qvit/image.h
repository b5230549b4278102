// Images: decoding (JPEG via libjpeg-turbo, PNG via libpng, chosen by content), PIL-exact
// resampling, and the timm/torchvision evaluation transform.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "qvit/tensor.h"

namespace qvit {

// 8-bit RGB, interleaved, rows contiguous.
struct Image {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;  // width * height * 3
};

// Default cap on decoded pixels (width*height); larger images are refused with an error.
constexpr int64_t kDefaultMaxPixels = int64_t(1) << 28;  // 268 Mpixel

// Decodes JPEG or PNG by content (not extension). Grayscale, CMYK/YCCK, palette, 16-bit and
// alpha inputs become 8-bit RGB (alpha dropped, as PIL's convert("RGB")). Errors name the file.
Image decode_image_file(const std::string& path, int64_t max_pixels = kDefaultMaxPixels);
Image decode_image_memory(const uint8_t* data, size_t size, const std::string& name,
                          int64_t max_pixels = kDefaultMaxPixels);

enum class Interpolation { bicubic, bilinear };

// PIL Image.resize((out_w, out_h), filter) on an RGB image, bit-exact with Pillow 9 (separable,
// antialiased: support scaled by the downscale factor, 22-bit fixed-point weights, horizontal
// pass first).
Image resize_image(const Image& img, int out_w, int out_h, Interpolation filter);

// The window [x0, x0 + w) x [y0, y0 + h) of resize_image(img, out_w, out_h, filter), computed
// without the rest of the output (bit-exact with cropping the full result; used for the crop).
Image resize_image_window(const Image& img, int out_w, int out_h, Interpolation filter, int x0,
                          int y0, int w, int h);

struct PreprocessConfig {
  int resize_short = 256;  // floor(crop / crop_pct)
  int crop = 224;
  Interpolation interpolation = Interpolation::bicubic;
  std::array<float, 3> mean{0.485f, 0.456f, 0.406f};
  std::array<float, 3> std{0.229f, 0.224f, 0.225f};
};

// torchvision Resize(resize_short) on the short side (long side = int(resize_short * long /
// short)), CenterCrop(crop) (offsets int(round((w - crop) / 2.0))), ToTensor, Normalize.
// Writes [3, crop, crop] floats to out. Images smaller than the crop are padded with zeros
// before normalisation, as torchvision's CenterCrop does.
void preprocess_image(const Image& img, const PreprocessConfig& cfg, float* out);

}  // namespace qvit
