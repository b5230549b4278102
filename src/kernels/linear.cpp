// LinearF32: y = x W^T + b on oneDNN's matmul, threaded by qvit itself.
//
// Why not let oneDNN thread: its split depends on the thread count (and may split K), which
// would make results depend on --threads. Instead the output is cut into work items — column
// panels fixed at construction times row chunks chosen from (M, N, K) — and each item is one
// single-threaded matmul call. Each item is then computed identically whatever thread runs it.
//
// Preparation (once, in the constructor): for each panel width, oneDNN is asked which weight
// layout it wants (format_tag::any) and the panel is reordered into it. Primitives are cached
// per (rows, panel width); a forward() creates at most four the first time it sees a new M, and
// none afterwards. Scratchpads are user-managed per thread, so concurrent forwards are safe.
#include <dnnl.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "kernels/kernels_internal.h"
#include "qvit/error.h"
#include "qvit/kernels.h"
#include "qvit/parallel.h"

namespace qvit {
namespace {

using dnnl::memory;
using Dims = memory::dims;
constexpr auto kF32 = memory::data_type::f32;

// Work-splitting constants (see Impl::build and Impl::forward). Tuned with
// bench/kernels_bench.cpp; docs/performance.md has the numbers.
constexpr int64_t kPanelTargetCols = 512;  // output columns per panel (rounded to 64)
constexpr double kItemFlops = 4e6;         // aimed-for work per item
constexpr int64_t kMaxItems = 16;          // enough to balance a few threads, dynamically
constexpr int64_t kMinRows = 48;           // smallest row chunk worth a call (per-call packing)

dnnl::engine& cpu_engine() {
  static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}

// Per-thread execution state: a stream, memory objects per primitive (their data handles are
// re-pointed on each call) and the scratchpad buffer, grown on demand and then reused.
struct ExecMems {
  memory src, dst, scratch;
};
struct ThreadExec {
  dnnl::stream stream{cpu_engine()};
  std::unordered_map<uint64_t, ExecMems> mems;
  std::vector<std::byte> scratch_storage;  // over-allocated by 64 for alignment
  void* scratch(size_t bytes) {
    if (scratch_storage.size() < bytes + 64) scratch_storage.resize(bytes + 64);
    auto p = reinterpret_cast<uintptr_t>(scratch_storage.data());
    return reinterpret_cast<void*>((p + 63) & ~uintptr_t{63});
  }
};
ThreadExec& thread_exec() {
  thread_local ThreadExec te;
  // Entries of destroyed layers are never looked up again; keep the map from growing forever.
  if (te.mems.size() > 4096) te.mems.clear();
  return te;
}

uint64_t next_prim_id() {
  static std::atomic<uint64_t> id{1};
  return id.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace

struct LinearF32::Impl {
  int64_t N = 0, K = 0;
  Tensor weight;  // [N,K] as given (shared buffer): the ref path and the source of reorders
  Tensor bias;    // [N] or empty

  // Weight layouts oneDNN asked for, per panel width. Almost always one; a second appears only
  // if some row count makes oneDNN pick another implementation. Slots are written once, under
  // the unique lock, before the primitive that uses them is published.
  static constexpr size_t kMaxLayouts = 4;
  struct Panel {
    int64_t n0 = 0, width = 0;
    memory plain;     // the caller's W[n0:n0+width, :] viewed as [K,width], strides {1,K}
    memory bias_mem;  // bias[n0 : n0+width] as [1,width], or empty
    std::array<memory, kMaxLayouts> layouts;
  };
  std::vector<Panel> panels;
  int64_t panel_width = 0;
  std::map<int64_t, std::vector<memory::desc>> layouts_by_width;

  struct Prim {
    uint64_t id = 0;
    dnnl::matmul mm;
    memory::desc src_md, dst_md, scratch_md;
    size_t scratch_bytes = 0;
    size_t layout = 0;  // index into Panel::layouts
  };
  mutable std::shared_mutex mu;
  mutable std::map<std::pair<int64_t, int64_t>, std::unique_ptr<Prim>> prims;  // (rows, width)

  memory::desc src_md(int64_t rows) const { return memory::desc({rows, K}, kF32, Dims{K, 1}); }
  memory::desc dst_md(int64_t rows, int64_t width) const {
    return memory::desc({rows, width}, kF32, Dims{N, 1});
  }
  memory::desc bias_md(int64_t width) const {
    return bias.empty() ? memory::desc() : memory::desc({1, width}, kF32, Dims{width, 1});
  }
  memory::desc plain_wmd(int64_t width) const {
    return memory::desc({K, width}, kF32, Dims{1, K});
  }
  memory::desc any_wmd(int64_t width) const {
    return memory::desc({K, width}, kF32, memory::format_tag::any);
  }

  dnnl::matmul::primitive_desc make_pd(int64_t rows, int64_t width,
                                       const memory::desc& wmd) const {
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    dnnl::matmul::desc d(src_md(rows), wmd, bias_md(width), dst_md(rows, width));
    return dnnl::matmul::primitive_desc(d, attr, cpu_engine());
  }

  void build(const Tensor& w, const Tensor& b);
  // Index of `want` among the layouts of `width`, reordering every panel of that width into it
  // if it is new. Needs the unique lock (or the constructor). Returns kMaxLayouts when full.
  size_t find_or_add_layout(int64_t width, const memory::desc& want) const;
  std::unique_ptr<Prim> create_prim(int64_t rows, int64_t width) const;
  const Prim* get_prim(int64_t rows, int64_t width) const;
  void forward(const float* x, float* y, int64_t M) const;
};

size_t LinearF32::Impl::find_or_add_layout(int64_t width, const memory::desc& want) const {
  auto& known = const_cast<Impl*>(this)->layouts_by_width[width];
  for (size_t i = 0; i < known.size(); ++i)
    if (known[i] == want) return i;
  if (known.size() == kMaxLayouts) return kMaxLayouts;
  const size_t slot = known.size();
  auto& eng = cpu_engine();
  dnnl::stream stream(eng);
  for (const Panel& p : panels) {
    if (p.width != width) continue;
    memory dst(want, eng);
    dnnl::reorder(p.plain, dst).execute(stream, const_cast<memory&>(p.plain), dst);
    const_cast<Panel&>(p).layouts[slot] = dst;
  }
  stream.wait();
  known.push_back(want);
  return slot;
}

void LinearF32::Impl::build(const Tensor& w, const Tensor& b) {
  weight = w;
  bias = b;
  N = w.dim(0);
  K = w.dim(1);
  // Column panels: at most ~kPanelTargetCols wide, a multiple of 64 except the last.
  int64_t n_panels0 = (N + kPanelTargetCols - 1) / kPanelTargetCols;
  if (n_panels0 > 1 && n_panels0 % 2 != 0) ++n_panels0;  // pairs of panels balance 2 threads
  panel_width = std::min(N, ((N + n_panels0 - 1) / n_panels0 + 63) / 64 * 64);
  const int64_t n_panels = (N + panel_width - 1) / panel_width;

  kernels_detail::SingleThreadScope single_thread;  // primitives are always run on one thread
  auto& eng = cpu_engine();
  auto* wdata = const_cast<float*>(weight.f32());
  auto* bdata = bias.empty() ? nullptr : const_cast<float*>(bias.f32());
  for (int64_t p = 0; p < n_panels; ++p) {
    Panel panel;
    panel.n0 = p * panel_width;
    panel.width = std::min(panel_width, N - panel.n0);
    panel.plain = memory(plain_wmd(panel.width), eng, wdata + panel.n0 * K);
    if (bdata) panel.bias_mem = memory(bias_md(panel.width), eng, bdata + panel.n0);
    panels.push_back(std::move(panel));
  }
  // Prepare the weights in the layout oneDNN wants at a typical row count.
  for (const int64_t width : {panel_width, panels.back().width}) {
    find_or_add_layout(width, make_pd(2 * kMinRows, width, any_wmd(width)).weights_desc());
  }
}

std::unique_ptr<LinearF32::Impl::Prim> LinearF32::Impl::create_prim(int64_t rows,
                                                                    int64_t width) const {
  kernels_detail::SingleThreadScope single_thread;
  auto pd_any = make_pd(rows, width, any_wmd(width));
  const std::string impl = pd_any.impl_info_str();
  auto pr = std::make_unique<Prim>();
  std::optional<dnnl::matmul::primitive_desc> pd;
  // 1. oneDNN's choice for this row count, if that layout is already prepared.
  const auto& known = layouts_by_width.at(width);
  for (size_t i = 0; i < known.size() && !pd; ++i) {
    if (known[i] == pd_any.weights_desc()) pd = pd_any, pr->layout = i;
  }
  // 2. The same implementation on a prepared layout (never a slower one that merely accepts it).
  for (size_t i = 0; i < known.size() && !pd; ++i) {
    try {
      auto pd_i = make_pd(rows, width, known[i]);
      if (impl == pd_i.impl_info_str()) pd = pd_i, pr->layout = i;
    } catch (const dnnl::error&) {
    }
  }
  // 3. Prepare oneDNN's choice (or, with every slot taken, take what accepts layout 0).
  if (!pd) {
    const size_t slot = find_or_add_layout(width, pd_any.weights_desc());
    if (slot < kMaxLayouts) {
      pd = pd_any, pr->layout = slot;
    } else {
      pd = make_pd(rows, width, known[0]), pr->layout = 0;
    }
  }
  pr->id = next_prim_id();
  pr->mm = dnnl::matmul(*pd);
  pr->src_md = src_md(rows);
  pr->dst_md = dst_md(rows, width);
  pr->scratch_md = pd->scratchpad_desc();
  pr->scratch_bytes = pr->scratch_md.get_size();
  return pr;
}

const LinearF32::Impl::Prim* LinearF32::Impl::get_prim(int64_t rows, int64_t width) const {
  const auto key = std::make_pair(rows, width);
  {
    std::shared_lock lock(mu);
    auto it = prims.find(key);
    if (it != prims.end()) return it->second.get();
  }
  std::unique_lock lock(mu);
  auto it = prims.find(key);
  if (it == prims.end()) {
    try {
      it = prims.emplace(key, create_prim(rows, width)).first;
    } catch (const dnnl::error& e) {
      fail("kernels", "LinearF32 [{}x{}]: oneDNN matmul for {} rows x {} columns: {}", N, K, rows,
           width, e.what());
    }
  }
  return it->second.get();
}

void LinearF32::Impl::forward(const float* x, float* y, int64_t M) const {
  // Row chunks: about kItemFlops per (chunk, panel) item, at most kMaxItems items, an even
  // number of them when there is more than one, equal-sized rows. Depends on (M, N, K) only.
  const int64_t n_panels = static_cast<int64_t>(panels.size());
  const double flops = 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  int64_t items = std::clamp<int64_t>(static_cast<int64_t>(flops / kItemFlops) + 1, 1, kMaxItems);
  if (items > 1 && items % 2 != 0) ++items;
  int64_t n_m = std::max<int64_t>(1, (items + n_panels - 1) / n_panels);
  n_m = std::clamp<int64_t>(n_m, 1, std::max<int64_t>(1, M / kMinRows));
  const int64_t mc = (M + n_m - 1) / n_m;
  n_m = (M + mc - 1) / mc;

  if (!kernels_detail::use_avx2()) {
    const float* w = weight.f32();
    const float* b = bias.empty() ? nullptr : bias.f32();
    parallel_for(M, mc, [&](int64_t m0, int64_t m1) {
      linear_f32_ref(x + m0 * K, w, b, y + m0 * N, m1 - m0, N, K);
    });
    return;
  }

  // Resolve the (at most four) primitives before going parallel.
  const int64_t last_rows = M - (n_m - 1) * mc;
  const int64_t last_width = panels.back().width;
  const Prim* prim[2][2];
  prim[0][0] = get_prim(mc, panel_width);
  prim[1][0] = get_prim(last_rows, panel_width);
  prim[0][1] = get_prim(mc, last_width);
  prim[1][1] = get_prim(last_rows, last_width);

  // Exceptions must not escape an OpenMP region: remember the first failure, throw after it.
  std::atomic<int> failed_status{dnnl_success};
  parallel_for(n_m * n_panels, 1, [&](int64_t i0, int64_t i1) {
    kernels_detail::SingleThreadScope single_thread;
    ThreadExec& te = thread_exec();
    for (int64_t item = i0; item < i1; ++item) {
      // Panel-major: consecutive items reuse the same weight panel from cache.
      const int64_t pi = item / n_m, mi = item % n_m;
      const Panel& panel = panels[pi];
      const Prim* pr = prim[mi == n_m - 1 ? 1 : 0][panel.width == panel_width ? 0 : 1];
      ExecMems& em = te.mems[pr->id];
      if (!em.src) {
        auto& eng = cpu_engine();
        em.src = memory(pr->src_md, eng, DNNL_MEMORY_NONE);
        em.dst = memory(pr->dst_md, eng, DNNL_MEMORY_NONE);
        if (pr->scratch_bytes) em.scratch = memory(pr->scratch_md, eng, DNNL_MEMORY_NONE);
      }
      em.src.set_data_handle(const_cast<float*>(x + mi * mc * K));
      em.dst.set_data_handle(y + mi * mc * N + panel.n0);
      dnnl_exec_arg_t args[5];
      int nargs = 0;
      args[nargs++] = {DNNL_ARG_SRC, em.src.get()};
      args[nargs++] = {DNNL_ARG_WEIGHTS, panel.layouts[pr->layout].get()};
      args[nargs++] = {DNNL_ARG_DST, em.dst.get()};
      if (panel.bias_mem) args[nargs++] = {DNNL_ARG_BIAS, panel.bias_mem.get()};
      if (pr->scratch_bytes) {
        em.scratch.set_data_handle(te.scratch(pr->scratch_bytes));
        args[nargs++] = {DNNL_ARG_SCRATCHPAD, em.scratch.get()};
      }
      const dnnl_status_t st = dnnl_primitive_execute(pr->mm.get(), te.stream.get(), nargs, args);
      if (st != dnnl_success) {
        int expected = dnnl_success;
        failed_status.compare_exchange_strong(expected, st);
        return;
      }
    }
  });
  if (failed_status.load() != dnnl_success) {
    fail("kernels", "LinearF32 [{}x{}]: oneDNN matmul execution failed with status {} (M={})", N,
         K, failed_status.load(), M);
  }
}

LinearF32::LinearF32() = default;
LinearF32::~LinearF32() = default;
LinearF32::LinearF32(LinearF32&&) noexcept = default;
LinearF32& LinearF32::operator=(LinearF32&&) noexcept = default;

LinearF32::LinearF32(const Tensor& weight, const Tensor& bias) {
  if (weight.dtype() != DType::f32 || weight.ndim() != 2 || weight.dim(0) <= 0 ||
      weight.dim(1) <= 0) {
    fail("kernels", "LinearF32: weight must be a non-empty 2-D F32 tensor [N,K], got {} {}",
         dtype_name(weight.dtype()), shape_str(weight.shape()));
  }
  if (!bias.empty() && (bias.dtype() != DType::f32 || bias.numel() != weight.dim(0))) {
    fail("kernels", "LinearF32: bias has shape {} ({}), expected [{}] F32",
         shape_str(bias.shape()), dtype_name(bias.dtype()), weight.dim(0));
  }
  impl_ = std::make_unique<Impl>();
  try {
    impl_->build(weight, bias);
  } catch (const dnnl::error& e) {
    fail("kernels", "LinearF32 [{}x{}]: preparing the weights with oneDNN failed: {}",
         weight.dim(0), weight.dim(1), e.what());
  }
  N_ = impl_->N;
  K_ = impl_->K;
}

void LinearF32::forward(const float* x, float* y, int64_t M) const {
  if (!impl_) fail("kernels", "LinearF32::forward called on an empty (default-constructed) layer");
  if (M < 0) fail("kernels", "LinearF32 [{}x{}]: negative row count {}", N_, K_, M);
  if (M == 0) return;
  impl_->forward(x, y, M);
}

}  // namespace qvit
