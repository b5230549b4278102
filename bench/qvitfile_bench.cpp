// .qvit save and open at the size of a converted deit_small (int8 weights of 22M parameters plus
// int32 biases and per-channel f32 scales), with and without checksum verification, and the
// alternatives a loader has: tensor() copies vs in-place section data. The file lives in /dev/shm
// when available so that the disk is not measured.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "qvit/qvit_file.h"

namespace {

using namespace qvit;

// deit_small: 12 blocks of qkv [1152,384], proj [384,384], fc1 [1536,384], fc2 [384,1536],
// plus the patch embedding [384,768] and the head [1000,384].
QvitWriter deit_small_like(int bits) {
  QvitWriter w;
  w.set_meta({{"model", "deit_small_like"}});
  auto add = [&](const std::string& name, int64_t n, int64_t k) {
    Tensor t({n, k}, DType::i8);
    int8_t* p = t.data<int8_t>();
    for (int64_t i = 0; i < n * k; ++i) p[i] = static_cast<int8_t>((i * 7919) % 15 - 7);
    w.add(name + ".weight", t, bits);
    w.add(name + ".bias", Tensor({n}, DType::i32));
    w.add(name + ".scale", Tensor({n}));
  };
  add("patch_embed.proj", 384, 768);
  for (int b = 0; b < 12; ++b) {
    const std::string p = "blocks." + std::to_string(b);
    add(p + ".attn.qkv", 1152, 384);
    add(p + ".attn.proj", 384, 384);
    add(p + ".mlp.fc1", 1536, 384);
    add(p + ".mlp.fc2", 384, 1536);
  }
  add("head", 1000, 384);
  return w;
}

std::string bench_path() {
  const std::string dir = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  return dir + "/qvitfile_bench_" + std::to_string(::getpid()) + ".qvit";
}

void BM_Save(benchmark::State& state) {
  const QvitWriter w = deit_small_like(static_cast<int>(state.range(0)));
  const std::string path = bench_path();
  for (auto _ : state) w.save(path);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(QvitFile::open(path).file_size()));
  std::remove(path.c_str());
}

void BM_Open(benchmark::State& state) {
  const std::string path = bench_path();
  deit_small_like(static_cast<int>(state.range(0))).save(path);
  const bool verify = state.range(1) != 0;
  for (auto _ : state) benchmark::DoNotOptimize(QvitFile::open(path, {.verify_checksums = verify}));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(QvitFile::open(path).file_size()));
  std::remove(path.c_str());
}

// Opening (verified) and copying every tensor out (int4 unpacked).
void BM_OpenAndCopyAll(benchmark::State& state) {
  const std::string path = bench_path();
  deit_small_like(static_cast<int>(state.range(0))).save(path);
  for (auto _ : state) {
    const QvitFile f = QvitFile::open(path);
    for (const auto& name : f.names()) benchmark::DoNotOptimize(f.tensor(name));
  }
  std::remove(path.c_str());
}

BENCHMARK(BM_Save)->Arg(8)->Arg(4)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Open)->Args({8, 1})->Args({8, 0})->Args({4, 1})->Unit(benchmark::kMillisecond);
BENCHMARK(BM_OpenAndCopyAll)->Arg(8)->Arg(4)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
