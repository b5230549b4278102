// Non-overlapping patch extraction for the patch embedding (a strided Conv2d becomes
// im2patch + LinearF32). Pure data movement, so there is no separate reference.
#include <cstring>

#include "qvit/error.h"
#include "qvit/kernels.h"
#include "qvit/parallel.h"

namespace qvit {

void im2patch_f32(const float* img, float* out, int64_t B, int64_t Cin, int64_t H, int64_t W,
                  int64_t p) {
  if (B < 0 || Cin <= 0 || H <= 0 || W <= 0 || p <= 0 || H % p != 0 || W % p != 0) {
    fail("kernels", "im2patch_f32: image [{},{},{},{}] cannot be cut into {}x{} patches", B, Cin, H,
         W, p, p);
  }
  const int64_t hp = H / p, wp = W / p, row_len = Cin * p * p;
  // One work item = one row of patches of one image.
  parallel_for(B * hp, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t b = i / hp, ph = i % hp;
      for (int64_t pw = 0; pw < wp; ++pw) {
        float* dst = out + ((b * hp + ph) * wp + pw) * row_len;
        for (int64_t c = 0; c < Cin; ++c) {
          for (int64_t kh = 0; kh < p; ++kh) {
            const float* src = img + ((b * Cin + c) * H + ph * p + kh) * W + pw * p;
            std::memcpy(dst + (c * p + kh) * p, src, static_cast<size_t>(p) * sizeof(float));
          }
        }
      }
    }
  });
}

}  // namespace qvit
