// .safetensors reading and writing: 8-byte little-endian header length N, N bytes of JSON
// ({"name": {"dtype", "shape", "data_offsets"}, "__metadata__": {str: str}}), then the raw data.
// Every field is validated before any data is touched; floating tensors are converted to f32.
#include <algorithm>
#include <cstring>
#include <optional>
#include <string_view>
#include <vector>

#include "io/file_util.h"
#include "qvit/error.h"
#include "qvit/io.h"

namespace qvit {

namespace {

using nlohmann::json;

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // the reference implementation allows 100 MB
constexpr size_t kMaxDims = 32;

struct Entry {
  std::string name;
  io::RawType type;
  Shape shape;
  uint64_t begin = 0, end = 0;
};

std::optional<io::RawType> parse_dtype(std::string_view s) {
  using io::RawType;
  static constexpr std::pair<std::string_view, RawType> kTypes[] = {
      {"F32", RawType::f32}, {"F16", RawType::f16}, {"BF16", RawType::bf16}, {"F64", RawType::f64},
      {"I64", RawType::i64}, {"I32", RawType::i32}, {"I8", RawType::i8},     {"U8", RawType::u8}};
  for (const auto& [name, type] : kTypes)
    if (name == s) return type;
  return std::nullopt;
}

bool is_known_unsupported(std::string_view s) {
  static constexpr std::string_view kKnown[] = {"BOOL", "I16",     "U16",     "U32",
                                                "U64",  "F8_E4M3", "F8_E5M2", "F8_E8M0",
                                                "F4",   "F6_E2M3", "F6_E3M2", "C64"};
  return std::find(std::begin(kKnown), std::end(kKnown), s) != std::end(kKnown);
}

// Reads a non-negative JSON integer, or nullopt for anything else (floats, negatives, strings).
std::optional<uint64_t> json_uint(const json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer() && v.get<int64_t>() >= 0)
    return static_cast<uint64_t>(v.get<int64_t>());
  return std::nullopt;
}

Entry parse_entry(const std::string& path, const std::string& name, const json& v,
                  uint64_t data_size) {
  const std::string shown = io::printable(name);
  if (!v.is_object())
    fail("safetensors", "{}: tensor '{}': header entry is not an object", path, shown);
  Entry e;
  e.name = name;

  auto dt = v.find("dtype");
  if (dt == v.end() || !dt->is_string())
    fail("safetensors", "{}: tensor '{}': missing or non-string 'dtype'", path, shown);
  const std::string& dtype = dt->get_ref<const std::string&>();
  auto type = parse_dtype(dtype);
  if (!type) {
    fail("safetensors",
         "{}: tensor '{}': {} dtype '{}' (supported: F32 F16 BF16 F64 I64 I32 I8 U8)", path, shown,
         is_known_unsupported(dtype) ? "unsupported" : "unknown", io::printable(dtype));
  }
  e.type = *type;

  auto sh = v.find("shape");
  if (sh == v.end() || !sh->is_array())
    fail("safetensors", "{}: tensor '{}': missing or non-array 'shape'", path, shown);
  if (sh->size() > kMaxDims)
    fail("safetensors", "{}: tensor '{}': shape has {} dimensions (limit {})", path, shown,
         sh->size(), kMaxDims);
  uint64_t numel = 1;
  bool overflow = false;
  for (const json& d : *sh) {
    auto n = json_uint(d);
    if (!n || *n > static_cast<uint64_t>(INT64_MAX))
      fail("safetensors", "{}: tensor '{}': shape entries must be non-negative integers", path,
           shown);
    e.shape.push_back(static_cast<int64_t>(*n));
    overflow = overflow || __builtin_mul_overflow(numel, *n, &numel);
  }

  auto off = v.find("data_offsets");
  if (off == v.end() || !off->is_array() || off->size() != 2)
    fail("safetensors", "{}: tensor '{}': 'data_offsets' must be [begin, end]", path, shown);
  auto begin = json_uint((*off)[0]);
  auto end = json_uint((*off)[1]);
  if (!begin || !end)
    fail("safetensors", "{}: tensor '{}': 'data_offsets' must be non-negative integers", path,
         shown);
  if (*begin > *end || *end > data_size)
    fail("safetensors", "{}: tensor '{}': data_offsets [{},{}] outside the data area of {} bytes",
         path, shown, *begin, *end, data_size);
  e.begin = *begin;
  e.end = *end;

  uint64_t bytes = 0;
  overflow = overflow || __builtin_mul_overflow(numel, io::raw_size(e.type), &bytes);
  if (overflow || bytes != e.end - e.begin) {
    fail("safetensors", "{}: tensor '{}': {} bytes of data, but dtype {} and shape {} need {}",
         path, shown, e.end - e.begin, dtype, shape_str(e.shape),
         overflow ? std::string("more than 2^64") : std::to_string(bytes));
  }
  return e;
}

json parse_metadata(const std::string& path, const json& v) {
  if (!v.is_object()) fail("safetensors", "{}: __metadata__ must be an object of strings", path);
  for (const auto& [key, value] : v.items()) {
    if (!value.is_string())
      fail("safetensors", "{}: __metadata__ value for '{}' is not a string", path,
           io::printable(key));
  }
  return v;
}

json parse_header(const std::string& path, const uint8_t* begin, size_t n) {
  try {
    return json::parse(begin, begin + n);
  } catch (const json::exception& e) {
    fail("safetensors", "{}: header is not valid JSON: {}", path, io::printable(e.what(), 200));
  }
}

}  // namespace

namespace io {

WeightFile parse_safetensors(const MappedFile& file) {
  const std::string& path = file.path();
  const uint8_t* data = file.data();
  const size_t size = file.size();
  if (size < 8)
    fail("safetensors", "{}: file has {} bytes, too short for the 8-byte header length", path,
         size);
  uint64_t n = 0;
  std::memcpy(&n, data, 8);
  if (n > kMaxHeaderBytes)
    fail("safetensors", "{}: header length {} exceeds the {} byte limit (not a safetensors file?)",
         path, n, kMaxHeaderBytes);
  if (n > size - 8)
    fail("safetensors", "{}: header length {} exceeds the file size {} (truncated?)", path, n,
         size);

  json header = parse_header(path, data + 8, n);
  if (!header.is_object()) fail("safetensors", "{}: header is not a JSON object", path);

  const uint8_t* area = data + 8 + n;
  const uint64_t area_size = size - 8 - n;
  WeightFile out;
  out.path = path;
  out.format = "safetensors";
  out.metadata = json::object();
  std::vector<Entry> entries;
  entries.reserve(header.size());
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      out.metadata = parse_metadata(path, value);
    } else {
      entries.push_back(parse_entry(path, key, value, area_size));
    }
  }

  // Overlapping tensors would alias; empty tensors occupy no bytes and never overlap.
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.begin < b.begin; });
  const Entry* prev = nullptr;
  for (const Entry& e : entries) {
    if (e.end == e.begin) continue;
    if (prev && e.begin < prev->end)
      fail("safetensors", "{}: tensors '{}' and '{}' overlap in the data area", path,
           io::printable(prev->name), io::printable(e.name));
    prev = &e;
  }

  // In file order, so that reading the mapping is sequential.
  for (const Entry& e : entries) {
    Tensor t(e.shape, io::raw_to_dtype(e.type));
    io::decode_elements(area + e.begin, e.type, static_cast<size_t>(t.numel()), t.raw());
    out.tensors.emplace(e.name, std::move(t));
  }
  return out;
}

}  // namespace io

WeightFile load_safetensors(const std::string& path) {
  return io::parse_safetensors(io::MappedFile(path));
}

void save_safetensors(const std::string& path, const WeightMap& tensors, const json& metadata) {
  json header = json::object();
  if (!metadata.is_null()) {
    if (!metadata.is_object())
      fail("safetensors", "{}: metadata must be a JSON object of strings", path);
    for (const auto& [key, value] : metadata.items()) {
      if (!value.is_string())
        fail("safetensors",
             "{}: metadata value for '{}' must be a string (safetensors stores "
             "str -> str)",
             path, io::printable(key));
    }
    if (!metadata.empty()) header["__metadata__"] = metadata;
  }
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__")
      fail("safetensors", "{}: '__metadata__' cannot be used as a tensor name", path);
    if (t.numel() != shape_numel(t.shape()) || (t.numel() > 0 && !t.raw()))
      fail("safetensors", "{}: tensor '{}' is uninitialised", path, io::printable(name));
    header[name] = {{"dtype", dtype_name(t.dtype())},
                    {"shape", t.shape()},
                    {"data_offsets", {offset, offset + t.nbytes()}}};
    offset += t.nbytes();
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const json::exception& e) {
    fail("safetensors", "{}: cannot encode header: {}", path, io::printable(e.what(), 200));
  }
  // Pad with spaces so the data starts 8-byte aligned, as the reference writer does.
  text.append((8 - text.size() % 8) % 8, ' ');

  io::AtomicFile file(path);
  uint64_t n = text.size();
  file.write(&n, 8);
  file.write(text.data(), text.size());
  for (const auto& [name, t] : tensors) file.write(t.raw(), t.nbytes());
  file.commit();
}

}  // namespace qvit
