// Element-wise add (residual connections). Memory-bound: the compiler's baseline vectorisation
// is as fast as hand-written AVX2 here, so there is one implementation.
#include "kernels/kernels_internal.h"
#include "qvit/error.h"
#include "qvit/kernels.h"
#include "qvit/parallel.h"

namespace qvit {

void add_f32(const float* a, const float* b, float* y, int64_t n) {
  if (n < 0) fail("kernels", "add_f32: negative size {}", n);
  parallel_for(n, 2 * kernels_detail::kElementGrain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) y[i] = a[i] + b[i];
  });
}

}  // namespace qvit
