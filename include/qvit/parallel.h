// Threading. qvit uses OpenMP (the same runtime as oneDNN's Debian build). Work is split into
// chunks whose boundaries do not depend on the thread count, so every result is bit-identical
// whatever --threads says.
#pragma once

#include <cstdint>
#include <functional>

namespace qvit {

// Sets the number of compute threads (<= 0: all cores). Applies to OpenMP and oneDNN.
void set_num_threads(int n);
int num_threads();

// Calls fn(begin, end) for consecutive chunks of [0, n) of at most `grain` items, in parallel.
// Chunk boundaries depend only on n and grain.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace qvit
