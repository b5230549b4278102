#include <gtest/gtest.h>

#include "qvit/error.h"
#include "qvit/parallel.h"
#include "qvit/tensor.h"

using namespace qvit;

TEST(Tensor, ShapeAndZeroInit) {
  Tensor t({2, 3, 4});
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.dim(-1), 4);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw()) % 64, 0u);
  for (int i = 0; i < 24; ++i) EXPECT_EQ(t.f32()[i], 0.0f);
  EXPECT_EQ(shape_str(t.shape()), "[2,3,4]");
}

TEST(Tensor, DtypeMismatchThrows) {
  Tensor t({4}, DType::i8);
  EXPECT_THROW(t.f32(), Error);
  EXPECT_NE(t.data<int8_t>(), nullptr);
}

TEST(Tensor, ReshapeSharesCloneCopies) {
  Tensor t({6});
  Tensor r = t.reshaped({2, 3});
  r.f32()[5] = 7;
  EXPECT_EQ(t.f32()[5], 7);
  Tensor c = t.clone();
  c.f32()[5] = 1;
  EXPECT_EQ(t.f32()[5], 7);
  EXPECT_THROW(t.reshaped({4}), Error);
}

TEST(Parallel, CoversRangeOnce) {
  std::vector<int> hits(1001, 0);
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    std::fill(hits.begin(), hits.end(), 0);
    parallel_for(1001, 37, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) hits[i]++;
    });
    for (int h : hits) ASSERT_EQ(h, 1);
  }
}
