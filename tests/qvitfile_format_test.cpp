// .qvit round trips (every dtype, int4 packing), the byte layout against docs/qvit-format.md,
// mmap reading, deterministic and atomic writing.
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "qvit/error.h"
#include "qvit/qvit_file.h"
#include "qvitfile_test_util.h"
#include "test_util.h"

namespace qvit {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() &&
         (a.nbytes() == 0 || std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0);
}

// The tensors that sample_writer() adds, rebuilt for comparison.
std::map<std::string, Tensor> sample_tensors() {
  std::map<std::string, Tensor> m;
  QvitFile f = parse_qvit(
      std::make_shared<std::vector<uint8_t>>(test::sample_writer().to_bytes()), "sample");
  for (const auto& n : f.names()) m[n] = f.tensor(n);
  return m;
}

TEST(QvitFormat, CrcReferenceVector) {
  const char* s = "123456789";  // the standard CRC-32 check value
  EXPECT_EQ(test::crc32_bitwise(reinterpret_cast<const uint8_t*>(s), 9), 0xCBF43926u);
}

TEST(QvitFormat, Int4PackingByHand) {
  const int8_t v[5] = {1, -1, 7, -8, 3};
  uint8_t p[3] = {0xaa, 0xaa, 0xaa};
  pack_int4(v, 5, p);
  EXPECT_EQ(p[0], 0xF1);  // 1 low, -1 (0xF) high
  EXPECT_EQ(p[1], 0x87);  // 7 low, -8 (0x8) high
  EXPECT_EQ(p[2], 0x03);  // odd count: high nibble zero
  int8_t back[5];
  unpack_int4(p, 5, back);
  EXPECT_EQ(std::memcmp(back, v, 5), 0);
  // Every value in [-8, 7] at both nibble positions.
  for (int a = -8; a <= 7; ++a) {
    for (int b = -8; b <= 7; ++b) {
      const int8_t in[2] = {static_cast<int8_t>(a), static_cast<int8_t>(b)};
      uint8_t q;
      pack_int4(in, 2, &q);
      EXPECT_EQ(q, static_cast<uint8_t>((a & 15) | ((b & 15) << 4)));
      int8_t out[2];
      unpack_int4(&q, 2, out);
      EXPECT_EQ(out[0], a);
      EXPECT_EQ(out[1], b);
    }
  }
  const int8_t bad[2] = {0, 8};
  try {
    pack_int4(bad, 2, p);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "[qvit] pack_int4: value 8 at index 1 is outside [-8, 7]");
  }
}

TEST(QvitFormat, RoundTripEveryDtype) {
  QvitWriter w = test::sample_writer();
  auto bytes = std::make_shared<std::vector<uint8_t>>(w.to_bytes());
  QvitFile f = parse_qvit(bytes, "sample.qvit");
  EXPECT_EQ(f.version(), 1u);
  EXPECT_EQ(f.file_size(), bytes->size());
  EXPECT_EQ(f.meta(), json({{"model", "toy"}, {"scales", {0.5, 0.25}}, {"bits", 8}}));
  EXPECT_EQ(f.names(),
            (std::vector<std::string>{"w8", "w4", "u", "f", "b", "idx", "scalar", "empty"}));
  // Values by hand, as sample_writer() builds them.
  Tensor w8 = f.tensor("w8"), w4 = f.tensor("w4");
  ASSERT_EQ(w8.dtype(), DType::i8);
  ASSERT_EQ(w4.dtype(), DType::i8);
  ASSERT_EQ(w4.shape(), (Shape{3, 5}));
  for (int i = 0; i < 15; ++i) {
    EXPECT_EQ(w8.data<int8_t>()[i], i * 17 - 128);
    EXPECT_EQ(w4.data<int8_t>()[i], i % 16 - 8);
  }
  EXPECT_EQ(f.section("w4").bits, 4);
  EXPECT_EQ(f.section("w4").nbytes, 8u);  // 15 values -> 8 bytes
  EXPECT_EQ(f.section("w8").bits, 8);
  EXPECT_EQ(f.tensor("u").data<uint8_t>()[3], 253);
  EXPECT_EQ(f.tensor("f").f32()[3], 0.1f * 3.0f - 1.5f);
  EXPECT_EQ(f.tensor("b").data<int32_t>()[0], INT32_MIN);
  EXPECT_EQ(f.tensor("b").data<int32_t>()[2], 123456789);
  EXPECT_EQ(f.tensor("idx").data<int64_t>()[1], -(int64_t{1} << 60));
  EXPECT_EQ(f.tensor("scalar").shape(), Shape{});
  EXPECT_EQ(f.tensor("scalar").f32()[0], 3.25f);
  EXPECT_EQ(f.tensor("empty").shape(), (Shape{0, 4}));
  EXPECT_TRUE(f.has("f"));
  EXPECT_FALSE(f.has("__metadata__"));
  try {
    f.tensor("nope");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "[qvit] sample.qvit: no tensor 'nope'");
  }
}

TEST(QvitFormat, Int4RoundTripAllValuesManyLengths) {
  for (int64_t n : {0, 1, 2, 7, 31, 32, 33, 197}) {
    Tensor t({n}, DType::i8);
    for (int64_t i = 0; i < n; ++i) t.data<int8_t>()[i] = static_cast<int8_t>((i * 7 + 3) % 16 - 8);
    QvitWriter w;
    w.add("t", t, 4);
    w.add("same", t);
    auto f = parse_qvit(std::make_shared<std::vector<uint8_t>>(w.to_bytes()), "x");
    EXPECT_EQ(f.section("t").nbytes, static_cast<uint64_t>((n + 1) / 2));
    EXPECT_TRUE(same_bits(f.tensor("t"), t)) << n;
    EXPECT_TRUE(same_bits(f.tensor("same"), t)) << n;
  }
}

TEST(QvitFormat, ByteLayoutMatchesTheSpec) {
  const std::vector<uint8_t> b = test::sample_writer().to_bytes();
  ASSERT_GE(b.size(), 64u);
  EXPECT_EQ(std::memcmp(b.data(), "QVIT", 4), 0);
  EXPECT_EQ(test::get_le<uint32_t>(b, 4), 1u);                // version
  EXPECT_EQ(test::get_le<uint64_t>(b, 8), b.size());          // file size
  const uint32_t count = test::get_le<uint32_t>(b, 16);
  EXPECT_EQ(count, 9u);                                       // metadata + 8 tensors
  const std::string names = "__metadata__w8w4ufbidxscalarempty";
  EXPECT_EQ(test::get_le<uint32_t>(b, 20), names.size());
  for (size_t i = 24; i < 60; ++i) EXPECT_EQ(b[i], 0) << i;  // flags + reserved
  const size_t tend = 64 + 96 * count + names.size();
  EXPECT_EQ(std::string(b.begin() + 64 + 96 * count, b.begin() + tend), names);
  uint32_t crc = test::crc32_bitwise(b.data(), 60);
  EXPECT_EQ(test::get_le<uint32_t>(b, 60), test::crc32_bitwise(b.data() + 64, tend - 64, crc));

  // Entries: metadata first, then tensors in the order added, each 64-aligned, zero padding.
  struct Want { const char* name; uint8_t kind, dtype, bits; std::vector<int64_t> dims; uint64_t size; };
  const std::string meta_text = R"({"bits":8,"model":"toy","scales":[0.5,0.25]})";
  const Want want[] = {{"__metadata__", 0, 0, 0, {}, meta_text.size()},
                       {"w8", 1, 2, 8, {3, 5}, 15}, {"w4", 1, 2, 4, {3, 5}, 8},
                       {"u", 1, 3, 8, {4}, 4},       {"f", 1, 1, 32, {2, 2}, 16},
                       {"b", 1, 4, 32, {3}, 12},     {"idx", 1, 5, 64, {2}, 16},
                       {"scalar", 1, 1, 32, {}, 4},  {"empty", 1, 1, 32, {0, 4}, 0}};
  uint64_t expect_off = (tend + 63) / 64 * 64, name_off = 0, end = 0;
  for (size_t i = 0; i < count; ++i) {
    const size_t e = test::entry_at(i);
    const Want& w = want[i];
    SCOPED_TRACE(w.name);
    EXPECT_EQ(test::get_le<uint32_t>(b, e), name_off);
    EXPECT_EQ(test::get_le<uint32_t>(b, e + 4), std::strlen(w.name));
    name_off += std::strlen(w.name);
    EXPECT_EQ(b[e + 8], w.kind);
    EXPECT_EQ(b[e + 9], w.dtype);
    EXPECT_EQ(b[e + 10], w.bits);
    EXPECT_EQ(b[e + 11], w.dims.size());
    const uint64_t off = test::get_le<uint64_t>(b, e + 16), size = test::get_le<uint64_t>(b, e + 24);
    EXPECT_EQ(off, expect_off);
    EXPECT_EQ(size, w.size);
    EXPECT_EQ(test::get_le<uint32_t>(b, e + 12), test::crc32_bitwise(b.data() + off, size));
    for (size_t d = 0; d < 8; ++d)
      EXPECT_EQ(test::get_le<int64_t>(b, e + 32 + 8 * d), d < w.dims.size() ? w.dims[d] : 0);
    for (uint64_t k = end == 0 ? tend : end; k < off; ++k) EXPECT_EQ(b[k], 0);
    end = off + size;
    expect_off = (end + 63) / 64 * 64;
  }
  EXPECT_EQ(std::string(b.begin() + static_cast<long>(test::get_le<uint64_t>(b, 64 + 16)),
                        b.begin() + static_cast<long>(test::get_le<uint64_t>(b, 64 + 16) +
                                                      meta_text.size())),
            meta_text);
  EXPECT_EQ(b.size(), end);  // no trailing padding after the last section
  // int4 payload of w4: values i % 16 - 8 for i = 0..14, two per byte, low nibble first.
  const uint64_t w4 = test::get_le<uint64_t>(b, test::entry_at(2) + 16);
  EXPECT_EQ(b[w4], 0x98);      // -8 (0x8) low, -7 (0x9) high
  EXPECT_EQ(b[w4 + 7], 0x06);  // 6, then the zero pad nibble
}

// A file written from docs/qvit-format.md by an independent Python implementation
// (tools/make_qvit_fixtures.py), laid out unlike QvitWriter's output: metadata second in the
// table under another name, sections stored in reverse order with extra zero gaps.
TEST(QvitFormat, ReadsTheSpecExampleFromPython) {
  const std::string path = test::fixture("qvit/spec_example.qvit");
  std::ifstream desc_file(test::fixture("qvit/spec_example.json"));
  const json desc = json::parse(desc_file);
  const QvitFile f = QvitFile::open(path);
  EXPECT_EQ(f.meta(), desc["metadata"]);
  std::vector<std::string> names;
  for (const json& t : desc["tensors"]) names.push_back(t["name"]);
  EXPECT_EQ(f.names(), names);
  ASSERT_EQ(f.sections().size(), names.size() + 1);
  EXPECT_TRUE(f.sections()[1].is_metadata);
  EXPECT_EQ(f.sections()[1].name, desc["metadata_name"]);
  for (const json& t : desc["tensors"]) {
    const std::string name = t["name"];
    SCOPED_TRACE(name);
    const Tensor x = f.tensor(name);
    EXPECT_EQ(dtype_name(x.dtype()), t["dtype"].get<std::string>());
    EXPECT_EQ(x.shape(), t["shape"].get<Shape>());
    EXPECT_EQ(f.section(name).bits, t["bits"].get<int>());
    const json& v = t["values"];
    ASSERT_EQ(static_cast<size_t>(x.numel()), v.size());
    for (size_t i = 0; i < v.size(); ++i) {
      switch (x.dtype()) {
        case DType::f32: EXPECT_EQ(x.f32()[i], v[i].get<float>()) << i; break;
        case DType::i8: EXPECT_EQ(x.data<int8_t>()[i], v[i].get<int>()) << i; break;
        case DType::u8: EXPECT_EQ(x.data<uint8_t>()[i], v[i].get<int>()) << i; break;
        case DType::i32: EXPECT_EQ(x.data<int32_t>()[i], v[i].get<int32_t>()) << i; break;
        case DType::i64: EXPECT_EQ(x.data<int64_t>()[i], v[i].get<int64_t>()) << i; break;
      }
    }
  }
  // Every single-byte change of this layout is detected too.
  const auto good = test::read_bytes(path);
  for (size_t i = 0; i < good.size(); ++i) {
    auto bad = std::make_shared<std::vector<uint8_t>>(good);
    (*bad)[i] ^= 0x10;
    EXPECT_THROW(parse_qvit(bad, "spec"), Error) << i;
  }
}

TEST(QvitFormat, DeterministicBytes) {
  const auto a = test::sample_writer().to_bytes();
  const auto b = test::sample_writer().to_bytes();
  EXPECT_EQ(a, b);
  // Metadata keys in a different insertion order give the same bytes (keys are sorted).
  QvitWriter w1, w2;
  w1.set_meta({{"a", 1}, {"b", {{"y", 2}, {"x", 0.1}}}});
  json m2 = json::object();
  m2["b"]["x"] = 0.1;
  m2["b"]["y"] = 2;
  m2["a"] = 1;
  w2.set_meta(m2);
  EXPECT_EQ(w1.to_bytes(), w2.to_bytes());
  // save() writes exactly to_bytes(), every time.
  std::string dir = test::temp_dir();
  test::sample_writer().save(dir + "/a.qvit");
  test::sample_writer().save(dir + "/b.qvit");
  EXPECT_EQ(test::read_bytes(dir + "/a.qvit"), a);
  EXPECT_EQ(test::read_bytes(dir + "/b.qvit"), a);
  fs::remove_all(dir);
}

TEST(QvitFormat, MmapReadingInPlace) {
  std::string dir = test::temp_dir();
  const std::string path = dir + "/m.qvit";
  test::sample_writer().save(path);
  auto expected = sample_tensors();
  QvitFile copy = [&] {
    QvitFile f = QvitFile::open(path);
    EXPECT_EQ(f.path(), path);
    for (const QvitSection& s : f.sections()) {
      EXPECT_EQ(reinterpret_cast<uintptr_t>(s.data) % 64, 0u) << s.name;  // usable in place
    }
    return f;  // the copy keeps the mapping alive
  }();
  fs::remove(path);  // the mapping survives unlinking
  for (const auto& [name, t] : expected) EXPECT_TRUE(same_bits(copy.tensor(name), t)) << name;
  const QvitSection& w8 = copy.section("w8");
  EXPECT_EQ(static_cast<const int8_t*>(w8.data)[14], 14 * 17 - 128);
  // Bytes at an odd address are copied to aligned memory: sections stay 64-byte aligned.
  const auto bytes = test::sample_writer().to_bytes();
  auto shifted = std::make_shared<std::vector<uint8_t>>(bytes.size() + 1);
  std::memcpy(shifted->data() + 1, bytes.data(), bytes.size());
  QvitFile odd = parse_qvit_view(shifted, shifted->data() + 1, bytes.size(), "odd");
  for (const QvitSection& s : odd.sections())
    EXPECT_EQ(reinterpret_cast<uintptr_t>(s.data) % 64, 0u) << s.name;
  for (const auto& [name, t] : expected) EXPECT_TRUE(same_bits(odd.tensor(name), t)) << name;
  // Skipping checksums reads the same thing.
  test::sample_writer().save(path);
  QvitFile fast = QvitFile::open(path, {.verify_checksums = false});
  for (const auto& [name, t] : expected) EXPECT_TRUE(same_bits(fast.tensor(name), t)) << name;
  fs::remove_all(dir);
}

TEST(QvitFormat, WriterRejectsBadInput) {
  QvitWriter w;
  auto expect_error = [](auto&& fn, const std::string& msg) {
    try {
      fn();
      ADD_FAILURE() << "no error, expected " << msg;
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()), msg);
    }
  };
  Tensor i8({2}, DType::i8);
  w.add("a", i8);
  expect_error([&] { w.add("a", i8); }, "[qvit] duplicate tensor name 'a'");
  expect_error([&] { w.add("", i8); }, "[qvit] tensor name '' must have 1 to 4096 bytes");
  expect_error([&] { w.add("__metadata__", i8); },
               "[qvit] '__metadata__' cannot be used as a tensor name");
  expect_error([&] { w.add("x\n", i8); }, "[qvit] tensor name 'x\\x0a' contains control characters");
  expect_error([&] { w.add("f", Tensor({2}), 4); },
               "[qvit] tensor 'f': bits 4 with dtype F32 (0 or 32 stores it as is, 4 packs I8)");
  expect_error([&] { w.add("u", Tensor({2}, DType::u8), 4); },
               "[qvit] tensor 'u': bits 4 with dtype U8 (0 or 8 stores it as is, 4 packs I8)");
  w.add("i8_natural", i8, 8);  // the natural width is the same as 0
  expect_error([&] { w.add("t", Tensor()); }, "[qvit] tensor 't' is uninitialised");
  expect_error([&] { w.set_meta(json::array()); }, "[qvit] metadata must be a JSON object, got array");
  EXPECT_TRUE(w.has("a"));
  EXPECT_FALSE(w.has("x\n"));
  Tensor big({3}, DType::i8);
  big.data<int8_t>()[2] = -9;
  w.add("big", big, 4);  // checked when packing
  std::string dir = test::temp_dir();
  expect_error([&] { w.save(dir + "/x.qvit"); },
               "[qvit] " + dir +
                   "/x.qvit: tensor 'big': [qvit] pack_int4: value -9 at index 2 is outside [-8, 7]");
  EXPECT_TRUE(fs::is_empty(dir));  // nothing left behind
  fs::remove_all(dir);
}

TEST(QvitFormat, AtomicSave) {
  std::string dir = test::temp_dir();
  const std::string path = dir + "/m.qvit";
  test::sample_writer().save(path);
  QvitWriter other;
  other.add("z", Tensor({1}));
  other.save(path);  // replaces it
  EXPECT_EQ(QvitFile::open(path).names(), std::vector<std::string>{"z"});
  fs::create_directory(dir + "/taken");  // renaming over a directory fails after writing
  EXPECT_THROW(other.save(dir + "/taken"), Error);
  EXPECT_THROW(other.save(dir + "/missing/m.qvit"), Error);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 2);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace qvit
