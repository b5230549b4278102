// Tests of the .safetensors reader and writer and of write_file_atomic: fixtures written by
// tools/make_io_fixtures.py, the real DeiT-Tiny weights, round trips and malformed files.
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>

#include "qvit/error.h"
#include "qvit/io.h"
#include "test_util.h"

namespace qvit {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string io_fixture(const std::string& name) {
  return test::fixture("io/" + name);
}

// Many small files are written below: prefer RAM-backed /dev/shm (~100x faster than a disk).
std::string scratch_dir() {
  std::error_code ec;
  if (fs::is_directory("/dev/shm", ec) && ::access("/dev/shm", W_OK) == 0) {
    fs::path p = fs::path("/dev/shm") / fs::path(test::temp_dir()).filename();
    if (fs::create_directories(p, ec)) return p.string();
  }
  return test::temp_dir();
}

// Loading `path` must throw a one-line qvit::Error naming the component and the file.
void expect_load_error(const std::string& path, const std::string& tag,
                       const std::string& needle = "") {
  try {
    load_safetensors(path);
    ADD_FAILURE() << "no error for " << path;
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_EQ(msg.rfind("[" + tag + "] ", 0), 0u) << msg;
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    if (!needle.empty()) {
      EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    }
  }
}

// A safetensors file from a raw header string and `data_bytes` zero bytes of data.
std::string write_st(const std::string& dir, const std::string& header, size_t data_bytes,
                     uint64_t claimed_len = UINT64_MAX) {
  std::vector<uint8_t> bytes(8 + header.size() + data_bytes, 0);
  uint64_t n = claimed_len == UINT64_MAX ? header.size() : claimed_len;
  std::memcpy(bytes.data(), &n, 8);
  std::memcpy(bytes.data() + 8, header.data(), header.size());
  std::string path = dir + "/bad.safetensors";
  test::write_bytes(path, bytes);
  return path;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() &&
         (a.nbytes() == 0 || std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0);
}

TEST(IoSafetensors, FixtureDtypesMatchTorch) {
  WeightFile wf = load_safetensors(io_fixture("dtypes.safetensors"));
  WeightFile expected = load_safetensors(io_fixture("expected.safetensors"));
  EXPECT_EQ(wf.format, "safetensors");
  EXPECT_EQ(wf.metadata, json({{"format", "pt"}, {"note", "qvit io fixture"}}));
  ASSERT_EQ(wf.tensors.size(), 11u);
  for (const auto& [name, t] : wf.tensors) {
    const Tensor& want = expected.tensors.at("dtypes.safetensors/" + name);
    EXPECT_TRUE(same_bits(t, want)) << name;
  }
  EXPECT_EQ(wf.tensors.at("f16").dtype(), DType::f32);
  EXPECT_EQ(wf.tensors.at("bf16").dtype(), DType::f32);
  EXPECT_EQ(wf.tensors.at("i64").dtype(), DType::i64);
  EXPECT_EQ(wf.tensors.at("i32").dtype(), DType::i32);
  EXPECT_EQ(wf.tensors.at("i8").dtype(), DType::i8);
  EXPECT_EQ(wf.tensors.at("u8").dtype(), DType::u8);
}

TEST(IoSafetensors, FixtureValuesByHand) {
  WeightFile wf = load_safetensors(io_fixture("dtypes.safetensors"));
  const Tensor& a = wf.tensors.at("arange");
  ASSERT_EQ(a.shape(), (Shape{3, 4}));
  for (int i = 0; i < 12; ++i) EXPECT_EQ(a.f32()[i], static_cast<float>(i));
  const float* h = wf.tensors.at("f16").f32();  // [0, 1, -2, 0.5, 65504, 6e-8, inf, nan]
  EXPECT_EQ(h[2], -2.0f);
  EXPECT_EQ(h[4], 65504.0f);
  EXPECT_EQ(h[5], std::ldexp(1.0f, -24));  // the nearest f16 subnormal
  EXPECT_TRUE(std::isinf(h[6]));
  EXPECT_TRUE(std::isnan(h[7]));
  const float* d = wf.tensors.at("f64").f32();  // [1e-3, -1e300, 1e300, 3.25]
  EXPECT_EQ(d[0], 1e-3f);
  EXPECT_EQ(d[1], -INFINITY);
  EXPECT_EQ(d[3], 3.25f);
  EXPECT_EQ(wf.tensors.at("i64").data<int64_t>()[0], -(int64_t{1} << 62));
  EXPECT_EQ(wf.tensors.at("u8").data<uint8_t>()[3], 255);
  EXPECT_EQ(wf.tensors.at("scalar").shape(), Shape{});
  EXPECT_EQ(wf.tensors.at("scalar").f32()[0], 2.5f);
  EXPECT_EQ(wf.tensors.at("empty").shape(), (Shape{0, 3}));
}

TEST(IoSafetensors, RealDeitTiny) {
  QVIT_REQUIRE_DATA_PATH(path, "models/deit_tiny_patch16_224.safetensors");
  WeightFile wf = load_weights(path);
  EXPECT_EQ(wf.format, "safetensors");
  EXPECT_EQ(wf.tensors.size(), 152u);
  EXPECT_EQ(wf.tensors.at("blocks.0.attn.qkv.weight").shape(), (Shape{576, 192}));
  EXPECT_EQ(wf.tensors.at("head.weight").shape(), (Shape{1000, 192}));
  EXPECT_EQ(wf.metadata.value("model", ""), "deit_tiny_patch16_224");
}

TEST(IoSafetensors, SaveRoundTrip) {
  std::string dir = test::temp_dir();
  WeightMap m;
  Tensor w({3, 5});
  for (int i = 0; i < 15; ++i) w.f32()[i] = 0.25f * static_cast<float>(i) - 1.0f;
  m["w"] = w;
  Tensor q({7}, DType::i8);
  for (int i = 0; i < 7; ++i) q.data<int8_t>()[i] = static_cast<int8_t>(i * 37 - 128);
  m["q"] = q;
  m["u"] = Tensor({2, 2}, DType::u8);
  m["idx"] = Tensor({3}, DType::i64);
  m["idx"].data<int64_t>()[2] = -(int64_t{1} << 50);
  m["i32"] = Tensor({1, 1, 2}, DType::i32);
  m["scalar"] = Tensor(Shape{});
  m["empty"] = Tensor({0, 4});
  json meta = {{"qvit", "test"}, {"bits", "8"}};
  std::string path = dir + "/out.safetensors";
  save_safetensors(path, m, meta);

  auto bytes = test::read_bytes(path);
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ((8 + n) % 8, 0u);  // data 8-byte aligned
  WeightFile back = load_weights(path);
  EXPECT_EQ(back.metadata, meta);
  ASSERT_EQ(back.tensors.size(), m.size());
  for (const auto& [name, t] : m) EXPECT_TRUE(same_bits(back.tensors.at(name), t)) << name;

  save_safetensors(path, {{"only", w}});  // overwrite in place
  EXPECT_EQ(load_safetensors(path).tensors.size(), 1u);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
  fs::remove_all(dir);
}

TEST(IoSafetensors, FailedSaveLeavesNothing) {
  std::string dir = test::temp_dir();
  WeightMap m{{"w", Tensor({4})}};
  std::string missing = dir + "/no/such/dir/out.safetensors";
  try {
    save_safetensors(missing, m);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[io] " + missing), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(missing));

  // Renaming over a directory fails after the data was written: the temporary must go.
  fs::create_directory(dir + "/taken");
  EXPECT_THROW(save_safetensors(dir + "/taken", m), Error);
  EXPECT_THROW(save_safetensors(dir + "/x.safetensors", m, json{{"n", 1}}), Error);
  EXPECT_THROW(save_safetensors(dir + "/y.safetensors", {{"t", Tensor()}}), Error);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
  fs::remove_all(dir);
}

TEST(IoSafetensors, WriteFileAtomic) {
  std::string dir = test::temp_dir();
  std::string path = dir + "/a.json";
  write_file_atomic(path, "first");
  write_file_atomic(path, std::string("sec\0nd", 6));
  auto bytes = test::read_bytes(path);
  EXPECT_EQ(std::string(bytes.begin(), bytes.end()), std::string("sec\0nd", 6));
  EXPECT_THROW(write_file_atomic(dir + "/missing/a.json", "x"), Error);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
  fs::remove_all(dir);
}

TEST(IoSafetensors, MissingAndUnreadableFiles) {
  std::string dir = test::temp_dir();
  for (auto load : {&load_safetensors, &load_weights, &load_pth}) {
    try {
      load(dir + "/nope.safetensors");
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()),
                "[io] " + dir + "/nope.safetensors: cannot open: No such file or directory");
    }
    EXPECT_THROW(load(dir), Error);  // a directory
  }
  fs::remove_all(dir);
}

TEST(IoSafetensors, TruncatedAtEveryByte) {
  std::string dir = scratch_dir();
  auto good = test::read_bytes(io_fixture("dtypes.safetensors"));
  std::string path = dir + "/cut.safetensors";
  for (size_t cut = 0; cut < good.size(); ++cut) {
    test::write_bytes(path, std::vector<uint8_t>(good.begin(), good.begin() + cut));
    expect_load_error(path, "safetensors");
  }
  fs::remove_all(dir);
}

TEST(IoSafetensors, MalformedHeaders) {
  std::string dir = test::temp_dir();
  const std::string t = R"("t":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]})";
  expect_load_error(write_st(dir, "{" + t + "}", 16, 1000), "safetensors", "exceeds the file size");
  expect_load_error(write_st(dir, "{" + t + "}", 16, uint64_t{1} << 42), "safetensors", "limit");
  expect_load_error(write_st(dir, "{" + t + "}", 8), "safetensors", "outside the data area");
  expect_load_error(write_st(dir,
                             R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                             R"("b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})",
                             24),
                    "safetensors", "overlap");
  expect_load_error(
      write_st(dir, R"({"t":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}})", 16),
      "safetensors", "need 16");
  expect_load_error(
      write_st(dir, R"({"t":{"dtype":"F32","shape":[2,2],"data_offsets":[12,4]}})", 16),
      "safetensors", "outside");
  expect_load_error(write_st(dir, R"({"t":{"dtype":"Q7","shape":[1],"data_offsets":[0,1]}})", 1),
                    "safetensors", "unknown dtype 'Q7'");
  expect_load_error(write_st(dir, R"({"t":{"dtype":"BOOL","shape":[1],"data_offsets":[0,1]}})", 1),
                    "safetensors", "unsupported dtype 'BOOL'");
  expect_load_error(write_st(dir, R"({"t":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4),
                    "safetensors", "shape");
  expect_load_error(write_st(dir, R"({"t":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", 4),
                    "safetensors", "shape");
  expect_load_error(write_st(dir,
                             R"({"t":{"dtype":"U8","shape":[4611686018427387904,8],)"
                             R"("data_offsets":[0,4]}})",
                             4),
                    "safetensors", "2^64");
  expect_load_error(write_st(dir, R"({"t":{"shape":[1],"data_offsets":[0,4]}})", 4), "safetensors",
                    "dtype");
  expect_load_error(write_st(dir, R"({"t":{"dtype":"F32","data_offsets":[0,4]}})", 4),
                    "safetensors", "shape");
  expect_load_error(write_st(dir, R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}})", 8),
                    "safetensors", "data_offsets");
  expect_load_error(write_st(dir, R"({"t":[1,2]})", 0), "safetensors", "not an object");
  expect_load_error(write_st(dir, R"([1,2])", 0), "safetensors", "not a JSON object");
  expect_load_error(write_st(dir, R"({"__metadata__":{"a":1}})", 0), "safetensors", "__metadata__");
  expect_load_error(write_st(dir, "{\"t\":\n\x01{", 0), "safetensors", "not valid JSON");
  expect_load_error(write_st(dir, "", 0), "safetensors", "not valid JSON");
  // Empty tensors may share offsets; nothing else may.
  WeightFile ok =
      load_safetensors(write_st(dir,
                                R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},)"
                                R"("b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}    )",
                                4));
  EXPECT_EQ(ok.tensors.size(), 2u);
  fs::remove_all(dir);
}

TEST(IoSafetensors, GarbageNeverCrashes) {
  std::string dir = scratch_dir();
  std::string path = dir + "/fuzz.safetensors";
  std::mt19937 rng(1234);
  auto good = test::read_bytes(io_fixture("dtypes.safetensors"));
  for (int iter = 0; iter < 3000; ++iter) {
    std::vector<uint8_t> bytes = good;
    if (iter % 10 == 0) {  // pure garbage
      bytes.resize(rng() % 2000);
      for (auto& b : bytes) b = static_cast<uint8_t>(rng());
    } else {  // a few mutations, mostly inside the header
      for (int k = 0, n = 1 + static_cast<int>(rng() % 4); k < n; ++k) {
        size_t pos = rng() % (rng() % 4 ? 700 : bytes.size());
        bytes[pos] = static_cast<uint8_t>(rng() % 3 ? rng() : "0123456789[]{},\":"[rng() % 17]);
      }
    }
    test::write_bytes(path, bytes);
    try {
      load_safetensors(path);
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace qvit
