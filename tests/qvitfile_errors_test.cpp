// .qvit reader on bad input: each error with its exact message, every single-byte change and every
// truncation detected, random garbage never crashes (also with checksums off, which reaches the
// structural checks behind the header CRC).
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>

#include "qvit/error.h"
#include "qvit/qvit_file.h"
#include "qvitfile_test_util.h"
#include "test_util.h"

namespace qvit {
namespace {

namespace fs = std::filesystem;
using test::get_le;
using test::put_le;
using Bytes = std::vector<uint8_t>;

// Table order of sample_writer(): 0 __metadata__, 1 w8, 2 w4, 3 u, 4 f, 5 b, 6 idx, 7 scalar, 8 empty.
enum { kMeta = 0, kW8 = 1, kW4 = 2, kU = 3, kF = 4, kB = 5, kIdx = 6 };

const Bytes& good() {
  static const Bytes b = test::sample_writer().to_bytes();
  return b;
}

std::string parse_error(const Bytes& b, bool verify = true) {
  try {
    parse_qvit(std::make_shared<Bytes>(b), "m.qvit", {.verify_checksums = verify});
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

uint64_t offset_of(const Bytes& b, size_t i) { return get_le<uint64_t>(b, test::entry_at(i) + 16); }
uint64_t size_of(const Bytes& b, size_t i) { return get_le<uint64_t>(b, test::entry_at(i) + 24); }
std::string hex(uint32_t v) { return fmt::format("0x{:08x}", v); }

// Applies `patch` to a copy of the good file and fixes the header CRC.
template <typename F>
Bytes patched(F&& patch) {
  Bytes b = good();
  patch(b);
  test::fix_header_crc(b);
  return b;
}

TEST(QvitErrors, Truncated) {
  const Bytes& g = good();
  EXPECT_EQ(parse_error(Bytes(g.begin(), g.begin() + 10)),
            "[qvit] m.qvit: truncated: 10 bytes, shorter than the 64-byte header");
  EXPECT_EQ(parse_error(Bytes(g.begin(), g.end() - 1)),
            fmt::format("[qvit] m.qvit: truncated: the header says {} bytes, the file has {}",
                        g.size(), g.size() - 1));
  Bytes longer = g;
  longer.push_back(0);
  EXPECT_EQ(parse_error(longer), fmt::format("[qvit] m.qvit: {} bytes, but the header says {} "
                                             "(trailing data)", g.size() + 1, g.size()));
}

TEST(QvitErrors, MagicAndVersion) {
  Bytes b = good();
  std::memcpy(b.data(), "PK\x03\x04", 4);
  EXPECT_EQ(parse_error(b), "[qvit] m.qvit: not a qvit file (bad magic 'PK\\x03\\x04')");
  b = good();
  put_le<uint32_t>(b, 4, 7);  // no CRC fix needed: the version is checked first
  EXPECT_EQ(parse_error(b), "[qvit] m.qvit: format version 7 is newer than this qvit supports (1)");
  put_le<uint32_t>(b, 4, 0);
  EXPECT_EQ(parse_error(b), "[qvit] m.qvit: invalid format version 0");
}

TEST(QvitErrors, HeaderChecksum) {
  Bytes b = good();
  const uint32_t stored = get_le<uint32_t>(b, 60);
  b[test::entry_at(kU) + 16] ^= 0x40;  // an offset in the table
  uint32_t crc = test::crc32_bitwise(b.data(), 60);
  crc = test::crc32_bitwise(b.data() + 64, test::table_end(b) - 64, crc);
  EXPECT_EQ(parse_error(b), "[qvit] m.qvit: checksum mismatch in the header and section table "
                            "(stored " + hex(stored) + ", computed " + hex(crc) + ")");
}

TEST(QvitErrors, SectionChecksumNamesTheSection) {
  Bytes b = good();
  b[offset_of(b, kF) + 5] ^= 0x01;
  const uint32_t crc = test::crc32_bitwise(b.data() + offset_of(b, kF), size_of(b, kF));
  EXPECT_EQ(parse_error(b), "[qvit] m.qvit: checksum mismatch in section 'f' (stored " +
                                hex(get_le<uint32_t>(b, test::entry_at(kF) + 12)) +
                                ", computed " + hex(crc) + ")");
  EXPECT_EQ(parse_error(b, /*verify=*/false), "(no error)");  // verification can be skipped
}

TEST(QvitErrors, SectionTableProblems) {
  const auto ent = [](size_t i) { return test::entry_at(i); };
  EXPECT_EQ(parse_error(patched([&](Bytes& b) {
              put_le<uint64_t>(b, ent(kF) + 16, offset_of(b, kU));
            })),
            "[qvit] m.qvit: sections 'u' and 'f' overlap");
  EXPECT_EQ(parse_error(patched([&](Bytes& b) {
              put_le<uint64_t>(b, ent(kF) + 16, (b.size() + 63) / 64 * 64);
            })),
            fmt::format("[qvit] m.qvit: section 'f': bytes [{}, +16) outside the data area [{}, {})",
                        (good().size() + 63) / 64 * 64, (test::table_end(good()) + 63) / 64 * 64,
                        good().size()));
  EXPECT_EQ(parse_error(patched([&](Bytes& b) { put_le<uint64_t>(b, ent(kF) + 16, 0); })),
            fmt::format("[qvit] m.qvit: section 'f': bytes [0, +16) outside the data area [{}, {})",
                        (test::table_end(good()) + 63) / 64 * 64, good().size()));
  EXPECT_EQ(parse_error(patched([&](Bytes& b) {
              put_le<uint64_t>(b, ent(kF) + 16, offset_of(b, kF) + 8);
            })),
            fmt::format("[qvit] m.qvit: section 'f': offset {} is not a multiple of 64",
                        offset_of(good(), kF) + 8));
  EXPECT_EQ(parse_error(patched([&](Bytes& b) {
              put_le<uint64_t>(b, ent(kF) + 24, UINT64_MAX - 8);
            })),
            fmt::format("[qvit] m.qvit: section 'f': {} bytes, but shape [2,2] of F32 (32 bits) "
                        "needs 16", UINT64_MAX - 8));
  EXPECT_EQ(parse_error(patched([&](Bytes& b) {
              put_le<int64_t>(b, ent(kF) + 32, int64_t{1} << 40);
              put_le<int64_t>(b, ent(kF) + 40, int64_t{1} << 40);
            })),
            "[qvit] m.qvit: section 'f': 16 bytes, but shape [1099511627776,1099511627776] of F32 "
            "(32 bits) needs more than 2^64");
  EXPECT_EQ(parse_error(patched([&](Bytes& b) { put_le<int64_t>(b, ent(kF) + 32, -2); })),
            "[qvit] m.qvit: section 'f': negative dimension -2");
  // 'u' and 'f' both have 1-byte names: point u's name at f's.
  EXPECT_EQ(parse_error(patched([&](Bytes& b) {
              put_le<uint32_t>(b, ent(kU), get_le<uint32_t>(b, ent(kF)));
            })),
            "[qvit] m.qvit: duplicate section name 'f'");
  EXPECT_EQ(parse_error(patched([&](Bytes& b) { put_le<uint32_t>(b, ent(kU), 1000); })),
            "[qvit] m.qvit: section 3: name [1000, +1) outside the name area of 33 bytes");
  EXPECT_EQ(parse_error(patched([&](Bytes& b) { b[ent(kF) + 9] = 9; })),
            "[qvit] m.qvit: section 'f': unknown dtype code 9");
  EXPECT_EQ(parse_error(patched([&](Bytes& b) { b[ent(kF) + 10] = 16; })),
            "[qvit] m.qvit: section 'f': 16 bits with dtype F32 (expected 32, or 4 for I8)");
  EXPECT_EQ(parse_error(patched([&](Bytes& b) { b[ent(kF) + 8] = 5; })),
            "[qvit] m.qvit: section 'f': unknown kind 5");
  EXPECT_EQ(parse_error(patched([&](Bytes& b) { b[ent(kF) + 11] = 9; })),
            "[qvit] m.qvit: section 'f': 9 dimensions (limit 8)");
  EXPECT_EQ(parse_error(patched([&](Bytes& b) { b[ent(kF) + 32 + 8 * 7] = 1; })),
            "[qvit] m.qvit: section 'f': unused dimension slots are not zero");
  EXPECT_EQ(parse_error(patched([&](Bytes& b) { 
              b[ent(kMeta) + 8] = 1;  // a U8 tensor [size]
              b[ent(kMeta) + 9] = 3;
              b[ent(kMeta) + 10] = 8;
              b[ent(kMeta) + 11] = 1;
              put_le<int64_t>(b, ent(kMeta) + 32, static_cast<int64_t>(size_of(b, kMeta)));
            })),
            "[qvit] m.qvit: no metadata section");
  EXPECT_EQ(parse_error(patched([&](Bytes& b) { b[ent(kF) + 8] = 0; })),
            "[qvit] m.qvit: two metadata sections ('__metadata__' and 'f')");
  EXPECT_EQ(parse_error(patched([&](Bytes& b) { put_le<uint32_t>(b, 16, 100000); })),
            fmt::format("[qvit] m.qvit: a section table of 100000 entries and 33 name bytes does "
                        "not fit in {} bytes", good().size()));
  EXPECT_EQ(parse_error(patched([&](Bytes& b) { put_le<uint32_t>(b, 16, UINT32_MAX); })),
            "[qvit] m.qvit: section count 4294967295 out of range [1, 1048576]");
  EXPECT_EQ(parse_error(patched([&](Bytes& b) { b[30] = 1; })),
            "[qvit] m.qvit: reserved header bytes are not zero");
  // The name area holds "__metadata__w8w4ufbidxscalarempty": put a control character in 'u'.
  EXPECT_EQ(parse_error(patched([&](Bytes& b) { b[test::table_end(b) - 33 + 16] = '\t'; })),
            "[qvit] m.qvit: section 3: name '\\x09' contains control characters");
}

TEST(QvitErrors, PaddingMustBeZero) {
  Bytes b = good();
  b[offset_of(b, kW8) + size_of(b, kW8)] = 1;  // just after w8
  EXPECT_EQ(parse_error(b), "[qvit] m.qvit: padding before section 'w4' is not zero");
  b = good();
  b[test::table_end(b)] = 1;  // between the name area and the first section
  EXPECT_EQ(parse_error(b), "[qvit] m.qvit: padding before section '__metadata__' is not zero");
  // The unused high nibble of an odd-length int4 tensor.
  b = good();
  b[offset_of(b, kW4) + 7] |= 0x10;
  test::fix_section_crc(b, kW4);
  test::fix_header_crc(b);
  EXPECT_EQ(parse_error(b),
            "[qvit] m.qvit: section 'w4': the unused high nibble of the last byte is not zero");
}

TEST(QvitErrors, BadMetadata) {
  const uint64_t m = offset_of(good(), kMeta);
  auto with_meta = [&](const std::string& text) {
    Bytes b = good();
    if (text.size() > size_of(b, kMeta)) throw std::logic_error("metadata text too long");
    std::memcpy(b.data() + m, text.data(), text.size());
    std::memset(b.data() + m + text.size(), ' ', size_of(b, kMeta) - text.size());
    test::fix_section_crc(b, kMeta);
    test::fix_header_crc(b);
    return b;
  };
  const std::string err = parse_error(with_meta("{\"model\": tru"));
  EXPECT_EQ(err.rfind("[qvit] m.qvit: metadata section '__metadata__' is not valid JSON: "
                      "[json.exception.parse_error.101] parse error",
                      0),
            0u)
      << err;
  EXPECT_EQ(parse_error(with_meta("[1, 2]")),
            "[qvit] m.qvit: metadata section '__metadata__' is not a JSON object");
  EXPECT_EQ(parse_error(with_meta("{}")), "(no error)");
  // Nesting deeper than 128 levels is refused.
  QvitWriter w;
  nlohmann::json deep = 1;
  for (int i = 0; i < 200; ++i) deep = nlohmann::json::array({deep});
  w.set_meta({{"deep", deep}});
  EXPECT_EQ(parse_error(w.to_bytes()),
            "[qvit] m.qvit: metadata section '__metadata__' is not valid JSON: nesting deeper "
            "than 128");
}

TEST(QvitErrors, EverySingleByteChangeIsDetected) {
  const Bytes& g = good();
  for (size_t i = 0; i < g.size(); ++i) {
    for (uint8_t x : {uint8_t{0x01}, uint8_t{0x80}, uint8_t{0xff}}) {
      Bytes b = g;
      b[i] ^= x;
      const std::string err = parse_error(b);
      EXPECT_EQ(err.rfind("[qvit] m.qvit: ", 0), 0u) << "byte " << i << " ^ " << int(x) << ": " << err;
    }
  }
}

TEST(QvitErrors, EveryTruncationIsDetected) {
  const Bytes& g = good();
  for (size_t n = 0; n < g.size(); ++n) {
    const std::string err = parse_error(Bytes(g.begin(), g.begin() + static_cast<long>(n)));
    EXPECT_EQ(err.rfind("[qvit] m.qvit: truncated: ", 0), 0u) << n << ": " << err;
  }
}

// QVIT_FUZZ_ITERS raises the iteration count for longer runs (e.g. under the sanitizer build).
TEST(QvitErrors, GarbageNeverCrashes) {
  std::mt19937 rng(4321);
  const Bytes& g = good();
  const char* env = std::getenv("QVIT_FUZZ_ITERS");
  const int iters = env ? std::atoi(env) : 4000;
  int accepted = 0;
  for (int iter = 0; iter < iters; ++iter) {
    Bytes b = g;
    if (iter % 10 == 0) {  // pure garbage, sometimes with the right magic and version
      b.resize(rng() % 3000);
      for (auto& c : b) c = static_cast<uint8_t>(rng());
      if (b.size() >= 8 && iter % 20 == 0) std::memcpy(b.data(), "QVIT\x01\0\0\0", 8);
    } else {  // a few mutations, mostly in the header, table and metadata
      for (int k = 0, n = 1 + static_cast<int>(rng() % 4); k < n; ++k) {
        const size_t pos = rng() % (rng() % 4 ? test::table_end(g) + 64 : b.size());
        b[pos] = static_cast<uint8_t>(rng() % 2 ? rng() : b[pos] ^ (1u << (rng() % 8)));
      }
      if (rng() % 2) test::fix_header_crc(b);
    }
    // With checksums off the structural checks see the mutations.
    const std::string err = parse_error(b, /*verify=*/iter % 3 == 0);
    if (err == "(no error)") {
      ++accepted;
    } else {
      EXPECT_EQ(err.rfind("[qvit] m.qvit: ", 0), 0u) << err;
    }
  }
  EXPECT_LT(accepted, iters);
}

TEST(QvitErrors, OpenNamesTheFile) {
  std::string dir = test::temp_dir();
  Bytes b = good();
  b[offset_of(b, kW8)] ^= 1;
  test::write_bytes(dir + "/bad.qvit", b);
  try {
    QvitFile::open(dir + "/bad.qvit");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("[qvit] " + dir + "/bad.qvit: checksum mismatch in "
                                          "section 'w8' (stored ", 0), 0u) << e.what();
  }
  try {
    QvitFile::open(dir + "/missing.qvit");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "[io] " + dir + "/missing.qvit: cannot open: No such file or directory");
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace qvit
