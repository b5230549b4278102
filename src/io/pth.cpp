// PyTorch .pth checkpoints (torch.save zip format, torch >= 1.6): finds <prefix>/data.pkl in the
// zip, unpickles it safely and turns the recorded _rebuild_tensor_v2 calls into Tensors, reading
// each storage from <prefix>/data/<key> and honouring storage offsets and arbitrary strides.
#include <cstring>
#include <optional>
#include <set>
#include <span>
#include <unordered_map>

#include "io/file_util.h"
#include "io/pickle.h"
#include "io/zip_reader.h"
#include "qvit/error.h"
#include "qvit/io.h"

namespace qvit {

namespace {

using io::PickleValue;
using Kind = PickleValue::Kind;

constexpr size_t kMaxDims = 32;

// torch.save of torch < 1.6 starts with the pickled magic number 0x1950a86a20f9469cfc6c.
constexpr uint8_t kLegacyMagic[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c,
                                    0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};

const std::set<std::string>& allowed_globals() {
  static const std::set<std::string> kAllowed = {"collections.OrderedDict",
                                                 "torch._utils._rebuild_tensor_v2",
                                                 "torch._utils._rebuild_parameter",
                                                 "torch.FloatStorage",
                                                 "torch.HalfStorage",
                                                 "torch.BFloat16Storage",
                                                 "torch.DoubleStorage",
                                                 "torch.LongStorage",
                                                 "torch.IntStorage",
                                                 "torch.CharStorage",
                                                 "torch.ByteStorage"};
  return kAllowed;
}

std::optional<io::RawType> storage_type(const std::string& global) {
  using io::RawType;
  static const std::pair<const char*, RawType> kTypes[] = {
      {"torch.FloatStorage", RawType::f32},     {"torch.HalfStorage", RawType::f16},
      {"torch.BFloat16Storage", RawType::bf16}, {"torch.DoubleStorage", RawType::f64},
      {"torch.LongStorage", RawType::i64},      {"torch.IntStorage", RawType::i32},
      {"torch.CharStorage", RawType::i8},       {"torch.ByteStorage", RawType::u8}};
  for (const auto& [name, type] : kTypes)
    if (global == name) return type;
  return std::nullopt;
}

// Interprets the unpickled object graph of one checkpoint.
class TorchReader {
 public:
  TorchReader(const io::Pickle& pk, const io::ZipReader& zip, std::string prefix,
              const std::string& path, uint64_t byte_budget)
      : pk_(pk), zip_(zip), prefix_(std::move(prefix)), path_(path), budget_(byte_budget) {}

  bool is_tensor(const PickleValue& v) const {
    if (v.kind != Kind::call) return false;
    const std::string& fn = pk_.str(pk_.call(v).callable);
    return fn == "torch._utils._rebuild_tensor_v2" || fn == "torch._utils._rebuild_parameter";
  }
  Tensor tensor(PickleValue v, const std::string& name);

 private:
  template <typename... Args>
  [[noreturn]] void error(const std::string& name, fmt::format_string<Args...> f,
                          Args&&... args) const {
    fail("pth", "{}: tensor '{}': {}", path_, io::printable(name),
         fmt::format(f, std::forward<Args>(args)...));
  }
  int64_t int_arg(const PickleValue& v, const std::string& name, const char* what) const {
    if (v.kind != Kind::integer || v.i < 0) error(name, "{} must be a non-negative int", what);
    return v.i;
  }
  std::vector<int64_t> int_tuple(const PickleValue& v, const std::string& name,
                                 const char* what) const {
    if (v.kind != Kind::tuple) error(name, "{} must be a tuple", what);
    const auto& items = pk_.seq(v);
    if (items.size() > kMaxDims) error(name, "{} has {} dimensions", what, items.size());
    std::vector<int64_t> out;
    for (const PickleValue& item : items) out.push_back(int_arg(item, name, what));
    return out;
  }
  std::span<const uint8_t> storage_bytes(const std::string& key, const std::string& name);

  const io::Pickle& pk_;
  const io::ZipReader& zip_;
  std::string prefix_;
  const std::string& path_;
  uint64_t budget_;
  struct Storage {
    std::span<const uint8_t> bytes;
    std::vector<uint8_t> inflated;
  };
  std::unordered_map<std::string, Storage> storages_;
};

// Each storage is read (and CRC-checked) once, however many tensors view it.
std::span<const uint8_t> TorchReader::storage_bytes(const std::string& key,
                                                    const std::string& name) {
  auto it = storages_.find(key);
  if (it != storages_.end()) return it->second.bytes;
  std::string entry_name = prefix_ + "data/" + key;
  const io::ZipEntry* entry = zip_.find(entry_name);
  if (!entry)
    error(name, "storage entry '{}' is missing from the archive", io::printable(entry_name));
  Storage& s = storages_[key];
  s.bytes = zip_.read(*entry, s.inflated);  // a view into the file unless deflated
  return s.bytes;
}

Tensor TorchReader::tensor(PickleValue v, const std::string& name) {
  // _rebuild_parameter(data, requires_grad, hooks) wraps a _rebuild_tensor_v2 call.
  for (int depth = 0; pk_.str(pk_.call(v).callable) == "torch._utils._rebuild_parameter"; ++depth) {
    const PickleValue& args = pk_.call(v).args;
    if (depth > 2 || args.kind != Kind::tuple || pk_.seq(args).empty() ||
        !is_tensor(pk_.seq(args)[0]))
      error(name, "malformed _rebuild_parameter call");
    v = pk_.seq(args)[0];
  }
  const PickleValue& args_v = pk_.call(v).args;
  if (args_v.kind != Kind::tuple || pk_.seq(args_v).size() < 6 || pk_.seq(args_v).size() > 7)
    error(name, "_rebuild_tensor_v2 needs 6 or 7 arguments");
  const auto& args = pk_.seq(args_v);

  // Persistent id: ('storage', torch.XStorage, key, location, numel).
  if (args[0].kind != Kind::persid) error(name, "storage is not a persistent id");
  const PickleValue& pid_v = pk_.seq(args[0])[0];
  if (pid_v.kind != Kind::tuple || pk_.seq(pid_v).size() != 5) error(name, "malformed storage id");
  const auto& pid = pk_.seq(pid_v);
  if (!pk_.is_str(pid[0]) || pk_.str(pid[0]) != "storage" || pid[1].kind != Kind::global ||
      !pk_.is_str(pid[2]))
    error(name, "malformed storage id");
  auto type = storage_type(pk_.str(pid[1]));
  if (!type) error(name, "unsupported storage type '{}'", pk_.str(pid[1]));
  const std::string& key = pk_.str(pid[2]);
  const uint64_t storage_numel = static_cast<uint64_t>(int_arg(pid[4], name, "storage size"));
  const size_t esize = io::raw_size(*type);

  const uint64_t offset = static_cast<uint64_t>(int_arg(args[1], name, "storage offset"));
  const Shape shape = int_tuple(args[2], name, "size");
  const std::vector<int64_t> stride = int_tuple(args[3], name, "stride");
  if (stride.size() != shape.size())
    error(name, "size {} and stride {} differ in length", shape_str(shape), shape_str(stride));

  // Bounds: numel and the last element addressed, with overflow checks.
  uint64_t numel = 1, last = offset;
  bool overflow = false;
  for (size_t d = 0; d < shape.size(); ++d) {
    auto n = static_cast<uint64_t>(shape[d]);
    overflow |= __builtin_mul_overflow(numel, n, &numel);
    uint64_t reach = 0;
    if (n > 0) overflow |= __builtin_mul_overflow(n - 1, static_cast<uint64_t>(stride[d]), &reach);
    overflow |= __builtin_add_overflow(last, reach, &last);
  }
  if (overflow) error(name, "size {} stride {} overflows", shape_str(shape), shape_str(stride));

  std::span<const uint8_t> bytes = storage_bytes(key, name);
  if (storage_numel > bytes.size() / esize || storage_numel * esize != bytes.size())
    error(name, "storage '{}' has {} bytes, expected {} elements of {} bytes", io::printable(key),
          bytes.size(), storage_numel, esize);
  if (numel > 0 && last >= storage_numel)
    error(name, "view (offset {}, size {}, stride {}) reaches element {} of a storage of {}",
          offset, shape_str(shape), shape_str(stride), last, storage_numel);
  // Expanded views (stride 0) could blow a tiny file up into terabytes; state dicts never hold
  // them.
  if (numel > storage_numel)
    error(name, "view of {} elements exceeds its storage of {} (expanded tensors are unsupported)",
          numel, storage_numel);
  uint64_t out_bytes = numel * dtype_size(io::raw_to_dtype(*type));
  if (out_bytes > budget_) error(name, "tensors exceed {} bytes in total for this file", budget_);
  budget_ -= out_bytes;

  Tensor t(shape, io::raw_to_dtype(*type));
  if (numel == 0) return t;
  auto* dst = static_cast<uint8_t*>(t.raw());
  const size_t out_esize = dtype_size(t.dtype());
  const uint8_t* src = bytes.data() + offset * esize;

  // Walk the view row by row (rows = the last dimension), decoding into contiguous output.
  const size_t nd = shape.size();
  const int64_t row_len = nd ? shape[nd - 1] : 1;
  const int64_t row_stride = nd ? stride[nd - 1] : 1;
  std::vector<int64_t> index(nd > 0 ? nd - 1 : 0, 0);
  for (uint64_t done = 0; done < numel; done += static_cast<uint64_t>(row_len)) {
    int64_t start = 0;
    for (size_t d = 0; d + 1 < nd; ++d) start += index[d] * stride[d];
    const uint8_t* row = src + static_cast<size_t>(start) * esize;
    if (row_stride == 1 || row_len == 1) {
      io::decode_elements(row, *type, static_cast<size_t>(row_len), dst);
    } else {
      for (int64_t k = 0; k < row_len; ++k)
        io::decode_elements(row + static_cast<size_t>(k * row_stride) * esize, *type, 1,
                            dst + static_cast<size_t>(k) * out_esize);
    }
    dst += static_cast<size_t>(row_len) * out_esize;
    for (size_t d = index.size(); d-- > 0;) {  // odometer increment
      if (++index[d] < shape[d]) break;
      index[d] = 0;
    }
  }
  return t;
}

const PickleValue* dict_get(const io::Pickle& pk, const PickleValue& dict, std::string_view key) {
  const PickleValue* found = nullptr;
  for (const auto& [k, v] : pk.dict(dict))  // last one wins, as in Python
    if (pk.is_str(k) && pk.str(k) == key) found = &v;
  return found;
}

WeightMap read_state_dict(const io::Pickle& pk, TorchReader& reader, const std::string& path) {
  const PickleValue& root = pk.root;
  if (root.kind != Kind::dict)
    fail("pth", "{}: top-level object is a {}, expected a dict (state dict)", path,
         io::pickle_kind_name(root.kind));
  const PickleValue* sd = &root;
  for (const char* wrapper : {"model", "state_dict", "module"}) {
    const PickleValue* inner = dict_get(pk, root, wrapper);
    if (inner && inner->kind == Kind::dict) {
      sd = inner;
      break;
    }
  }
  WeightMap out;
  for (const auto& [k, v] : pk.dict(*sd)) {
    if (!pk.is_str(k) || !reader.is_tensor(v)) continue;  // epoch counters, nested dicts, ...
    const std::string& name = pk.str(k);
    out.insert_or_assign(name, reader.tensor(v, name));
  }
  if (out.empty()) {
    std::string keys;
    for (const auto& [k, v] : pk.dict(root)) {
      if (keys.size() > 100) {
        keys += ", ...";
        break;
      }
      keys += (keys.empty() ? "" : ", ") +
              (pk.is_str(k) ? "'" + io::printable(pk.str(k), 40) + "'" : "<non-str>");
    }
    fail("pth", "{}: no tensors found (top-level keys: {})", path, keys.empty() ? "none" : keys);
  }
  return out;
}

}  // namespace

namespace io {

WeightFile parse_pth(const MappedFile& file) {
  const std::string& path = file.path();
  const uint8_t* data = file.data();
  const size_t size = file.size();
  if (size >= sizeof kLegacyMagic && std::memcmp(data, kLegacyMagic, sizeof kLegacyMagic) == 0)
    fail("pth",
         "{}: legacy torch.save format (torch < 1.6, not a zip) is not supported; re-save "
         "it with torch.save(torch.load(f), f2, _use_new_zipfile_serialization=True)",
         path);
  if (size < 4 || std::memcmp(data, "PK\x03\x04", 4) != 0)
    fail("pth", "{}: not a torch.save zip archive (no zip signature)", path);
  io::ZipReader zip(data, size, path, "pth");

  // torch writes every entry under one folder, <prefix>/data.pkl being the pickle.
  const io::ZipEntry* pkl = nullptr;
  std::string prefix;
  for (const io::ZipEntry& e : zip.entries()) {
    const std::string& n = e.name;
    size_t slash = n.find('/');
    if (n == "data.pkl" || (slash != std::string::npos && n.substr(slash) == "/data.pkl")) {
      pkl = &e;
      prefix = n.substr(0, n.size() - 8);
      break;
    }
  }
  if (!pkl) fail("pth", "{}: no <prefix>/data.pkl entry; not a torch.save checkpoint", path);
  if (const io::ZipEntry* order = zip.find(prefix + "byteorder")) {
    std::vector<uint8_t> scratch;
    auto b = zip.read(*order, scratch);
    if (std::string(b.begin(), b.end()) != "little")
      fail("pth", "{}: byte order '{}' is not supported", path,
           io::printable(std::string(b.begin(), b.end())));
  }

  std::vector<uint8_t> scratch;
  auto pkl_bytes = zip.read(*pkl, scratch);
  io::Pickle pk = io::unpickle(pkl_bytes.data(), pkl_bytes.size(), allowed_globals(), "pth", path);

  WeightFile out;
  out.path = path;
  out.format = "pth";
  out.metadata = nlohmann::json::object();
  // Output may exceed the file (f16 -> f32, a few shared storages) but not by orders of magnitude.
  TorchReader reader(pk, zip, prefix, path, 8 * uint64_t{size} + (64u << 20));
  try {
    out.tensors = read_state_dict(pk, reader, path);
  } catch (const Error& e) {
    std::string what = e.what();
    if (what.rfind("[pickle] ", 0) != 0) throw;
    fail("pth", "{}: unexpected pickle structure: {}", path, what.substr(9));
  }
  return out;
}

}  // namespace io

WeightFile load_pth(const std::string& path) {
  return io::parse_pth(io::MappedFile(path));
}

WeightFile load_weights(const std::string& path) {
  io::MappedFile file(path);  // "[io] PATH: cannot open: ..." for missing files
  bool is_zip = file.size() >= 4 && std::memcmp(file.data(), "PK\x03\x04", 4) == 0;
  bool is_legacy = file.size() >= sizeof kLegacyMagic &&
                   std::memcmp(file.data(), kLegacyMagic, sizeof kLegacyMagic) == 0;
  return is_zip || is_legacy ? io::parse_pth(file) : io::parse_safetensors(file);
}

}  // namespace qvit
