// Tests of the .pth reader (zip + safe unpickler): torch.save fixtures from
// tools/make_io_fixtures.py compared with the values torch itself wrote, the real DeiT-Tiny
// checkpoint against its .safetensors twin, forbidden globals, and corrupt archives and pickles.
#include <unistd.h>
#include <zlib.h>

#include <cstring>
#include <filesystem>
#include <random>

#include "io/pickle.h"
#include "io/zip_reader.h"
#include "qvit/error.h"
#include "qvit/io.h"
#include "test_util.h"

namespace qvit {
namespace {

namespace fs = std::filesystem;

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

const WeightFile& expected() {
  static const WeightFile wf = load_safetensors(io_fixture("expected.safetensors"));
  return wf;
}

// `wf` must hold exactly the tensors stored under "<group>/" in expected.safetensors, bit for bit.
void expect_matches_torch(const WeightFile& wf, const std::string& group) {
  size_t count = 0;
  for (const auto& [key, want] : expected().tensors) {
    if (key.rfind(group + "/", 0) != 0) continue;
    ++count;
    std::string name = key.substr(group.size() + 1);
    auto it = wf.tensors.find(name);
    ASSERT_NE(it, wf.tensors.end()) << name;
    const Tensor& got = it->second;
    EXPECT_EQ(got.shape(), want.shape()) << name;
    ASSERT_EQ(got.dtype(), want.dtype()) << name;
    EXPECT_EQ(std::memcmp(got.raw(), want.raw(), want.nbytes()), 0) << name;
  }
  EXPECT_GT(count, 0u);
  EXPECT_EQ(wf.tensors.size(), count);
}

// Loading must throw a one-line Error tagged `tag` that names the file and contains `needle`.
std::string expect_error(const std::string& path, const std::string& tag = "pth",
                         const std::string& needle = "") {
  try {
    load_weights(path);
    ADD_FAILURE() << "no error for " << path;
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_EQ(msg.rfind("[" + tag + "] " + path + ": ", 0), 0u) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    if (!needle.empty()) {
      EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    }
    return msg;
  }
  return "";
}

TEST(IoPth, BareStateDict) {
  WeightFile wf = load_pth(io_fixture("bare.pth"));
  EXPECT_EQ(wf.format, "pth");
  EXPECT_TRUE(wf.metadata.is_object() && wf.metadata.empty());
  expect_matches_torch(wf, "bare.pth");
  EXPECT_EQ(wf.tensors.at("index").dtype(), DType::i64);
  EXPECT_EQ(wf.tensors.at("fc.weight").shape(), (Shape{4, 6}));
}

TEST(IoPth, ModelWrapperWithOptimizerAndExtras) {
  expect_matches_torch(load_weights(io_fixture("wrapped.pth")), "wrapped.pth");
}

TEST(IoPth, Parameters) {
  expect_matches_torch(load_pth(io_fixture("params.pth")), "params.pth");
}

TEST(IoPth, AllDtypes) {
  WeightFile wf = load_pth(io_fixture("dtypes.pth"));
  expect_matches_torch(wf, "dtypes.pth");
  EXPECT_EQ(wf.tensors.at("f16").dtype(), DType::f32);
  EXPECT_EQ(wf.tensors.at("u8").dtype(), DType::u8);
}

TEST(IoPth, ViewsOffsetsAndStrides) {
  WeightFile wf = load_pth(io_fixture("views.pth"));
  expect_matches_torch(wf, "views.pth");
  // Independent of the fixture: base is arange(24).reshape(4, 6).
  const float* t = wf.tensors.at("transposed").f32();
  ASSERT_EQ(wf.tensors.at("transposed").shape(), (Shape{6, 4}));
  for (int i = 0; i < 6; ++i)
    for (int j = 0; j < 4; ++j) EXPECT_EQ(t[i * 4 + j], static_cast<float>(j * 6 + i));
  const float* row = wf.tensors.at("row2").f32();
  for (int j = 0; j < 6; ++j) EXPECT_EQ(row[j], static_cast<float>(12 + j));
}

TEST(IoPth, DeflatedAndZip64Archives) {
  expect_matches_torch(load_weights(io_fixture("deflate.pth")), "bare.pth");
  expect_matches_torch(load_weights(io_fixture("zip64.pth")), "bare.pth");
}

TEST(IoPth, RealDeitTinyMatchesSafetensors) {
  QVIT_REQUIRE_DATA_PATH(pth, "models/deit_tiny_patch16_224.pth");
  QVIT_REQUIRE_DATA_PATH(st, "models/deit_tiny_patch16_224.safetensors");
  WeightFile a = load_weights(pth);
  WeightFile b = load_safetensors(st);
  EXPECT_EQ(a.format, "pth");
  ASSERT_EQ(a.tensors.size(), 152u);
  ASSERT_EQ(b.tensors.size(), 152u);
  EXPECT_EQ(a.tensors.at("blocks.0.attn.qkv.weight").shape(), (Shape{576, 192}));
  for (const auto& [name, t] : b.tensors) {
    auto it = a.tensors.find(name);
    ASSERT_NE(it, a.tensors.end()) << name;
    EXPECT_EQ(it->second.shape(), t.shape()) << name;
    ASSERT_EQ(it->second.dtype(), t.dtype()) << name;
    EXPECT_EQ(std::memcmp(it->second.raw(), t.raw(), t.nbytes()), 0) << name;
  }
}

TEST(IoPth, ForbiddenGlobalsAreNeverCalled) {
  const std::string marker = "/tmp/qvit_io_fixture_pwned";
  fs::remove(marker);
  expect_error(io_fixture("forbidden.pth"), "pth",
               "pickle references forbidden global 'posix.system'");
  expect_error(io_fixture("forbidden_p4.pth"), "pth", "forbidden global 'posix.system'");
  EXPECT_FALSE(fs::exists(marker));

  // The message format, on a hand-written protocol-0 style pickle.
  const std::string pkl = "cos\nsystem\n(S'echo hi'\ntR.";
  try {
    io::unpickle(reinterpret_cast<const uint8_t*>(pkl.data()), pkl.size(), {}, "pth", "FILE");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind(
                  "[pth] FILE: pickle references forbidden global 'os.system'", 0),
              0u)
        << e.what();
  }
}

TEST(IoPth, LegacyFormatIsExplained) {
  expect_error(io_fixture("legacy.pth"), "pth", "_use_new_zipfile_serialization=True");
  expect_error(io_fixture("legacy.pth"), "pth", "legacy");
}

TEST(IoPth, BrokenArchivesAndPickles) {
  expect_error(io_fixture("missing_storage.pth"), "pth", "data/0' is missing");
  expect_error(io_fixture("pickle_truncated.pth"), "pth", "truncated");
  expect_error(io_fixture("pickle_bad_opcode.pth"), "pth", "unsupported opcode 0xff");
  expect_error(io_fixture("pickle_not_dict.pth"), "pth", "top-level object is a list");
  expect_error(io_fixture("pickle_no_tensors.pth"), "pth",
               "no tensors found (top-level keys: 'epoch', 'lr')");
  std::string dir = test::temp_dir();
  std::string path = dir + "/notzip.pth";
  test::write_bytes(path, {'P', 'K', 3, 4, 0, 0});
  expect_error(path, "pth", "end-of-central-directory");
  EXPECT_THROW(load_pth(io_fixture("dtypes.safetensors")), Error);
  fs::remove_all(dir);
}

TEST(IoPth, TruncatedAtEveryByte) {
  std::string dir = scratch_dir();
  std::string path = dir + "/cut.pth";
  for (const char* name : {"bare.pth", "deflate.pth", "zip64.pth"}) {
    auto good = test::read_bytes(io_fixture(name));
    for (size_t cut = 4; cut < good.size(); ++cut) {
      test::write_bytes(path, std::vector<uint8_t>(good.begin(), good.begin() + cut));
      expect_error(path);
    }
  }
  fs::remove_all(dir);
}

// Replaces every little-endian occurrence of `from` (a CRC in the central directory or a data
// descriptor) by `to`, so that a mutated pickle reaches the unpickler.
void patch_u32(std::vector<uint8_t>& bytes, uint32_t from, uint32_t to) {
  for (size_t i = 0; i + 4 <= bytes.size(); ++i) {
    if (std::memcmp(&bytes[i], &from, 4) == 0) std::memcpy(&bytes[i], &to, 4);
  }
}

TEST(IoPth, MutationsNeverCrash) {
  std::string dir = scratch_dir();
  std::string path = dir + "/fuzz.pth";
  auto good = test::read_bytes(io_fixture("wrapped.pth"));
  io::ZipReader zip(good.data(), good.size(), "wrapped.pth", "pth");
  const io::ZipEntry* pkl = zip.find("archive/data.pkl");
  ASSERT_NE(pkl, nullptr);
  std::mt19937 rng(99);
  int loaded = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::vector<uint8_t> bytes = good;
    bool in_pickle = iter % 4 != 0;
    for (int k = 0, n = 1 + static_cast<int>(rng() % 3); k < n; ++k) {
      size_t pos = in_pickle ? pkl->data_offset + rng() % pkl->size : rng() % bytes.size();
      bytes[pos] = static_cast<uint8_t>(rng() % 2 ? rng() : bytes[pos] ^ (1u << (rng() % 8)));
    }
    if (in_pickle) {  // keep the CRC right so the pickle itself is exercised
      uint32_t crc = static_cast<uint32_t>(
          crc32(0, bytes.data() + pkl->data_offset, static_cast<uInt>(pkl->size)));
      patch_u32(bytes, pkl->crc32, crc);
    }
    test::write_bytes(path, bytes);
    try {
      load_weights(path);
      ++loaded;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  }
  EXPECT_GT(loaded, 0);
  fs::remove_all(dir);
}

TEST(IoPth, UnpicklerEdgeCases) {
  using namespace std::string_literals;
  auto run = [](const std::string& p) {
    return io::unpickle(reinterpret_cast<const uint8_t*>(p.data()), p.size(), {}, "pth", "F");
  };
  // A list that contains itself (legal pickle): no recursion, no leak.
  io::Pickle cyclic =
      run("\x80\x02]q\x00h\x00"
          "a."s);
  ASSERT_EQ(cyclic.root.kind, io::PickleValue::Kind::list);
  EXPECT_EQ(cyclic.seq(cyclic.root).size(), 1u);
  // Deep nesting is just data.
  std::string deep = "\x80\x02";
  for (int i = 0; i < 100000; ++i) deep += "]";
  for (int i = 0; i < 99999; ++i) deep += "a";
  deep += ".";
  EXPECT_EQ(run(deep).root.kind, io::PickleValue::Kind::list);
  // LONG1 sign extension; integers wider than 64 bits become floats.
  EXPECT_EQ(run("\x80\x02\x8a\x02\xfe\xff."s).root.i, -2);
  EXPECT_EQ(run("\x8a\x01\x7f."s).root.i, 127);
  EXPECT_EQ(run("\x8a\x09\0\0\0\0\0\0\0\0\x01."s).root.f, 0x1p64);
  EXPECT_EQ(run("J\xff\xff\xff\xff."s).root.i, -1);
  EXPECT_EQ(run("G\x40\x09\x21\xfb\x54\x44\x2d\x18."s).root.f, 3.141592653589793);
  const std::string bad[] = {
      "t."s,     "a."s,           "h\x05."s, "\x80\x02}"s, "X\xff\xff\xff\x7f"s,
      "(s."s,    "K\x01K\x02s."s, ""s,       "\x80\x09."s, "\x8a\xff\x01."s,
      "(\x94."s, "cfoo"s,         ")R."s,    "K\x01)R."s};
  for (const std::string& b : bad) EXPECT_THROW(run(b), Error) << b;
  // Memoised values may be fetched again after the stack moved on.
  EXPECT_EQ(run("K\x07q\x01\x30h\x01."s).root.i, 7);
}

}  // namespace
}  // namespace qvit
