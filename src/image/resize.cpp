// PIL-exact resampling of RGB images (Pillow 9.4, libImaging/Resample.c, 8-bit path): a
// separable convolution, horizontal pass first into 8 bits, then vertical, with the kernel
// support widened by the downscale factor and 22-bit fixed-point weights. The coefficient
// arithmetic below repeats Pillow's expression by expression so the doubles round the same way.
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>

#include "qvit/error.h"
#include "qvit/image.h"

namespace qvit {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // Pillow's PRECISION_BITS

double bicubic_filter(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

double bilinear_filter(double x) {
  if (x < 0.0) x = -x;
  if (x < 1.0) return 1.0 - x;
  return 0.0;
}

// Fixed-point weights of outputs [begin, begin + n) of an in_size -> out_size resampling
// (Pillow's precompute_coeffs + normalize_coeffs_8bpc, restricted to a range of outputs).
struct AxisCoeffs {
  int ksize = 0;                 // weight stride per output
  std::vector<int> first;        // first input index per output
  std::vector<int> count;        // number of taps per output
  std::vector<int32_t> weights;  // [n * ksize]
};

AxisCoeffs axis_coeffs(int in_size, int out_size, Interpolation filter, int begin, int n) {
  double (*kernel)(double) = filter == Interpolation::bicubic ? bicubic_filter : bilinear_filter;
  const double kernel_support = filter == Interpolation::bicubic ? 2.0 : 1.0;
  // Pillow takes the box as floats: scale = (double)(in1 - in0) / outSize with in0 = 0.
  const double scale = double(float(in_size)) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = kernel_support * filterscale;
  AxisCoeffs c;
  c.ksize = int(std::ceil(support)) * 2 + 1;
  c.first.resize(n);
  c.count.resize(n);
  c.weights.assign(size_t(n) * c.ksize, 0);
  std::vector<double> k(c.ksize);
  const double ss = 1.0 / filterscale;
  for (int i = 0; i < n; ++i) {
    const int xx = begin + i;
    const double center = (xx + 0.5) * scale;
    int xmin = int(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = int(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      const double w = kernel((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    int32_t* out = &c.weights[size_t(i) * c.ksize];
    for (int x = 0; x < xmax; ++x) {
      if (ww != 0.0) k[x] /= ww;
      out[x] = k[x] < 0 ? int(-0.5 + k[x] * (1 << kPrecisionBits))
                        : int(0.5 + k[x] * (1 << kPrecisionBits));
    }
    c.first[i] = xmin;
    c.count[i] = xmax;
  }
  return c;
}

inline uint8_t clip8(int32_t v) {
  return static_cast<uint8_t>(std::clamp(v >> kPrecisionBits, 0, 255));
}

// Rows [row0, row0 + rows) of an RGB image `width` pixels wide, resampled horizontally into
// dst (c.first.size() pixels per row). Strips of kStrip rows are transposed first so that one
// input column is kStrip * 3 contiguous bytes; the convolution then runs over those bytes in
// fixed-length loops the compiler vectorizes, as in the vertical pass.
void horizontal_pass(const uint8_t* src, int width, int row0, int rows, const AxisCoeffs& c,
                     uint8_t* dst) {
  constexpr int kStrip = 32;
  constexpr int kLanes = kStrip * 3;
  const int n = static_cast<int>(c.first.size());
  std::vector<uint8_t> strip(size_t(width) * kLanes);  // [x][row in strip][channel]
  for (int r0 = 0; r0 < rows; r0 += kStrip) {
    const int nr = std::min(kStrip, rows - r0);  // lanes past nr hold stale bytes, never stored
    for (int r = 0; r < nr; ++r) {
      const uint8_t* in = src + (size_t(row0) + r0 + r) * size_t(width) * 3;
      uint8_t* col = strip.data() + r * 3;
      for (int x = 0; x < width; ++x, in += 3, col += kLanes) {
        col[0] = in[0];
        col[1] = in[1];
        col[2] = in[2];
      }
    }
    for (int i = 0; i < n; ++i) {
      const int32_t* k = &c.weights[size_t(i) * c.ksize];
      const uint8_t* cols = strip.data() + size_t(c.first[i]) * kLanes;
      int32_t acc[kLanes];
      for (int j = 0; j < kLanes; ++j) acc[j] = 1 << (kPrecisionBits - 1);
      for (int t = 0, count = c.count[i]; t < count; ++t) {
        const uint8_t* p = cols + t * kLanes;
        const int32_t kt = k[t];
        for (int j = 0; j < kLanes; ++j) acc[j] += p[j] * kt;
      }
      for (int r = 0; r < nr; ++r) {
        uint8_t* out = dst + (size_t(r0) + r) * n * 3 + size_t(i) * 3;
        out[0] = clip8(acc[3 * r]);
        out[1] = clip8(acc[3 * r + 1]);
        out[2] = clip8(acc[3 * r + 2]);
      }
    }
  }
}

// Vertical resampling: output row i sums source rows c.first[i] - row0 .. (+count). The sums
// are exact integers, so their order is free: blocks of kBlock bytes keep the accumulators in
// registers and give the compiler fixed-length loops it vectorizes at -O2.
void vertical_pass(const uint8_t* src, size_t stride, int row0, const AxisCoeffs& c, int row_bytes,
                   uint8_t* dst) {
  constexpr int kBlock = 32;
  for (size_t i = 0; i < c.first.size(); ++i) {
    const int32_t* k = &c.weights[i * c.ksize];
    const uint8_t* rows = src + size_t(c.first[i] - row0) * stride;
    const int count = c.count[i];
    uint8_t* out = dst + i * size_t(row_bytes);
    int x = 0;
    for (; x + kBlock <= row_bytes; x += kBlock) {
      int32_t acc[kBlock];
      for (int j = 0; j < kBlock; ++j) acc[j] = 1 << (kPrecisionBits - 1);
      for (int t = 0; t < count; ++t) {
        const uint8_t* p = rows + t * stride + x;
        const int32_t kt = k[t];
        for (int j = 0; j < kBlock; ++j) acc[j] += p[j] * kt;
      }
      for (int j = 0; j < kBlock; ++j) out[x + j] = clip8(acc[j]);
    }
    for (; x < row_bytes; ++x) {
      int32_t acc = 1 << (kPrecisionBits - 1);
      for (int t = 0; t < count; ++t) acc += rows[t * stride + x] * k[t];
      out[x] = clip8(acc);
    }
  }
}

}  // namespace

Image resize_image_window(const Image& img, int out_w, int out_h, Interpolation filter, int x0,
                          int y0, int w, int h) {
  if (img.width <= 0 || img.height <= 0 || img.rgb.size() != size_t(img.width) * img.height * 3) {
    fail("image", "resize: invalid {}x{} input image with {} bytes", img.width, img.height,
         img.rgb.size());
  }
  if (out_w <= 0 || out_h <= 0) fail("image", "resize: invalid output size {}x{}", out_w, out_h);
  if (x0 < 0 || y0 < 0 || w < 0 || h < 0 || x0 > out_w - w || y0 > out_h - h) {
    fail("image", "resize: window {}x{}+{}+{} outside the {}x{} output", w, h, x0, y0, out_w,
         out_h);
  }
  Image out;
  out.width = w;
  out.height = h;
  out.rgb.resize(size_t(w) * h * 3);
  if (w == 0 || h == 0) return out;

  // As Pillow: a pass runs only when its axis changes size (a same-size pass is the identity).
  const bool need_horizontal = out_w != img.width;
  const bool need_vertical = out_h != img.height;

  // Source rows the vertical pass reads; only these go through the horizontal pass.
  AxisCoeffs vc;
  int row_begin = y0, row_end = y0 + h;
  if (need_vertical) {
    vc = axis_coeffs(img.height, out_h, filter, y0, h);
    row_begin = INT_MAX;
    row_end = 0;
    for (int i = 0; i < h; ++i) {
      row_begin = std::min(row_begin, vc.first[i]);
      row_end = std::max(row_end, vc.first[i] + vc.count[i]);
    }
  }

  std::vector<uint8_t> temp;
  const uint8_t* src = img.rgb.data() + size_t(x0) * 3;
  size_t stride = size_t(img.width) * 3;
  int src_row0 = 0;
  if (need_horizontal) {
    AxisCoeffs hc = axis_coeffs(img.width, out_w, filter, x0, w);
    temp.resize(size_t(w) * 3 * (row_end - row_begin));
    horizontal_pass(img.rgb.data(), img.width, row_begin, row_end - row_begin, hc, temp.data());
    src = temp.data();
    stride = size_t(w) * 3;
    src_row0 = row_begin;
  }

  if (need_vertical) {
    vertical_pass(src, stride, src_row0, vc, w * 3, out.rgb.data());
  } else {
    for (int y = 0; y < h; ++y) {
      std::memcpy(out.rgb.data() + size_t(y) * w * 3, src + size_t(y0 + y - src_row0) * stride,
                  size_t(w) * 3);
    }
  }
  return out;
}

Image resize_image(const Image& img, int out_w, int out_h, Interpolation filter) {
  return resize_image_window(img, out_w, out_h, filter, 0, 0, out_w, out_h);
}

}  // namespace qvit
