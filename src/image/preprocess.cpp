// The timm/torchvision (0.14) evaluation transform on a decoded image: Resize(short side),
// CenterCrop (zero padding when the image is smaller than the crop), ToTensor, Normalize.
// Only the cropped window of the resized image is computed; the result is the same.
#include <algorithm>

#include "qvit/error.h"
#include "qvit/image.h"

namespace qvit {
namespace {

// Python's int(round(d / 2.0)) for d >= 0: round half to even.
int round_half_even_div2(int d) {
  int q = d / 2;
  if (d % 2 != 0 && q % 2 != 0) ++q;
  return q;
}

// One axis of CenterCrop on the resized image: torchvision pads (crop - size) // 2 in front when
// the image is too small, then crops at int(round((padded - crop) / 2.0)). Returns the offset
// of the first image pixel inside the crop (`dst`), the first source pixel (`src`) and how many
// source pixels fall inside the crop (`n`).
struct CropAxis {
  int dst = 0;
  int src = 0;
  int n = 0;
};

CropAxis crop_axis(int size, int crop) {
  CropAxis a;
  int pad_front = 0;
  int padded = size;
  if (crop > size) {
    pad_front = (crop - size) / 2;
    padded = size + pad_front + (crop - size + 1) / 2;  // == crop
  }
  const int offset = round_half_even_div2(padded - crop);  // in padded coordinates
  // Image pixels occupy [pad_front, pad_front + size) of the padded axis.
  const int begin = std::max(offset, pad_front);
  const int end = std::min(offset + crop, pad_front + size);
  a.dst = begin - offset;
  a.src = begin - pad_front;
  a.n = std::max(end - begin, 0);
  return a;
}

}  // namespace

void preprocess_image(const Image& img, const PreprocessConfig& cfg, float* out) {
  if (img.width <= 0 || img.height <= 0) {
    fail("image", "preprocess: invalid {}x{} image", img.width, img.height);
  }
  if (cfg.resize_short <= 0 || cfg.crop <= 0) {
    fail("image", "preprocess: invalid resize {} / crop {}", cfg.resize_short, cfg.crop);
  }
  // torchvision's _compute_resized_output_size: the long side is int(size * long / short),
  // computed in double (Python's true division).
  const bool wide = img.width > img.height;
  const int short_side = wide ? img.height : img.width;
  const int long_side = wide ? img.width : img.height;
  const double new_long_exact = double(int64_t(cfg.resize_short) * long_side) / double(short_side);
  if (!(new_long_exact >= 1.0 && new_long_exact < double(1 << 30))) {
    fail("image", "preprocess: cannot resize a {}x{} image to short side {}", img.width, img.height,
         cfg.resize_short);
  }
  const int new_long = static_cast<int>(new_long_exact);
  const int new_w = wide ? new_long : cfg.resize_short;
  const int new_h = wide ? cfg.resize_short : new_long;

  const CropAxis cx = crop_axis(new_w, cfg.crop);
  const CropAxis cy = crop_axis(new_h, cfg.crop);
  const Image window =
      resize_image_window(img, new_w, new_h, cfg.interpolation, cx.src, cy.src, cx.n, cy.n);

  // ToTensor then Normalize, in float32 as torch does: (float(v) / 255 - mean) / std. A table
  // per channel holds the 256 possible results; padding is the value of a zero pixel.
  const size_t plane = size_t(cfg.crop) * cfg.crop;
  for (int c = 0; c < 3; ++c) {
    float table[256];
    for (int v = 0; v < 256; ++v) {
      const float x = static_cast<float>(v) / 255.0f;
      table[v] = (x - cfg.mean[c]) / cfg.std[c];
    }
    float* dst = out + c * plane;
    std::fill(dst, dst + plane, table[0]);
    for (int y = 0; y < cy.n; ++y) {
      const uint8_t* row = window.rgb.data() + size_t(y) * cx.n * 3 + c;
      float* o = dst + size_t(cy.dst + y) * cfg.crop + cx.dst;
      for (int x = 0; x < cx.n; ++x) o[x] = table[row[3 * x]];
    }
  }
}

}  // namespace qvit
