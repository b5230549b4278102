// The safe unpickler: a loop over the opcodes torch.save's pickles use (protocol 2, plus the few
// protocol 3/4 additions that are just as inert), with every read and stack access checked.
#include "io/pickle.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <unordered_map>

#include "io/file_util.h"
#include "qvit/error.h"

namespace qvit::io {

using Kind = PickleValue::Kind;

const char* pickle_kind_name(Kind k) {
  switch (k) {
    case Kind::none:
      return "None";
    case Kind::boolean:
      return "bool";
    case Kind::integer:
      return "int";
    case Kind::floating:
      return "float";
    case Kind::string:
      return "str";
    case Kind::tuple:
      return "tuple";
    case Kind::list:
      return "list";
    case Kind::dict:
      return "dict";
    case Kind::global:
      return "global";
    case Kind::call:
      return "call";
    case Kind::persid:
      return "persistent id";
  }
  return "?";
}

namespace {

[[noreturn]] void wrong_kind(const PickleValue& v, const char* want) {
  fail("pickle", "expected a {}, got a {}", want, pickle_kind_name(v.kind));
}

}  // namespace

const std::string& Pickle::str(const PickleValue& v) const {
  if (v.kind != Kind::string && v.kind != Kind::global) wrong_kind(v, "str");
  return strings.at(v.ref);
}
const std::vector<PickleValue>& Pickle::seq(const PickleValue& v) const {
  if (v.kind != Kind::tuple && v.kind != Kind::list && v.kind != Kind::persid)
    wrong_kind(v, "tuple");
  return seqs.at(v.ref);
}
const std::vector<std::pair<PickleValue, PickleValue>>& Pickle::dict(const PickleValue& v) const {
  if (v.kind != Kind::dict) wrong_kind(v, "dict");
  return dicts.at(v.ref);
}
const PickleCall& Pickle::call(const PickleValue& v) const {
  if (v.kind != Kind::call) wrong_kind(v, "call");
  return calls.at(v.ref);
}

namespace {

class Unpickler {
 public:
  Unpickler(const uint8_t* data, size_t size, const std::set<std::string>& allowed,
            const std::string& component, const std::string& path)
      : data_(data), size_(size), allowed_(allowed), component_(component), path_(path) {}

  Pickle run();

 private:
  template <typename... Args>
  [[noreturn]] void error(fmt::format_string<Args...> f, Args&&... args) const {
    fail(component_, "{}: pickle: {} (opcode at offset {})", path_,
         fmt::format(f, std::forward<Args>(args)...), op_pos_);
  }

  const uint8_t* take(uint64_t n) {
    if (n > size_ - pos_) error("truncated data");
    const uint8_t* p = data_ + pos_;
    pos_ += static_cast<size_t>(n);
    return p;
  }
  template <typename T>
  T read_le() {
    T v;
    std::memcpy(&v, take(sizeof v), sizeof v);
    return v;
  }
  std::string read_line() {
    const void* nl = std::memchr(data_ + pos_, '\n', size_ - pos_);
    if (!nl) error("truncated GLOBAL name");
    size_t len = static_cast<size_t>(static_cast<const uint8_t*>(nl) - (data_ + pos_));
    std::string s(reinterpret_cast<const char*>(take(len)), len);
    take(1);
    return s;
  }

  size_t frame_base() const { return marks_.empty() ? 0 : marks_.back(); }
  PickleValue& top() {
    if (stack_.size() <= frame_base()) error("stack underflow");
    return stack_.back();
  }
  PickleValue pop() {
    PickleValue v = top();
    stack_.pop_back();
    return v;
  }
  std::vector<PickleValue> pop_mark() {
    if (marks_.empty()) error("no MARK on the stack");
    size_t base = marks_.back();
    marks_.pop_back();
    std::vector<PickleValue> items(stack_.begin() + static_cast<ptrdiff_t>(base), stack_.end());
    stack_.resize(base);
    return items;
  }

  PickleValue make(Kind kind, uint32_t ref) { return PickleValue{kind, 0, 0, ref}; }
  PickleValue new_string(const uint8_t* p, size_t n) {
    out_.strings.emplace_back(reinterpret_cast<const char*>(p), n);
    return make(Kind::string, static_cast<uint32_t>(out_.strings.size() - 1));
  }
  PickleValue new_seq(Kind kind, std::vector<PickleValue> items) {
    out_.seqs.push_back(std::move(items));
    return make(kind, static_cast<uint32_t>(out_.seqs.size() - 1));
  }
  PickleValue new_dict() {
    out_.dicts.emplace_back();
    return make(Kind::dict, static_cast<uint32_t>(out_.dicts.size() - 1));
  }
  PickleValue integer(int64_t i) { return PickleValue{Kind::integer, i, 0, 0}; }

  PickleValue global(const std::string& module, const std::string& name);
  PickleValue long_int(uint64_t n);
  void reduce();
  void set_items(const std::vector<PickleValue>& items);
  void append_items(const std::vector<PickleValue>& items);
  void memo_put(uint64_t key) { memo_[key] = top(); }
  void memo_get(uint64_t key) {
    auto it = memo_.find(key);
    if (it == memo_.end()) error("memo key {} not defined", key);
    stack_.push_back(it->second);
  }

  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  size_t op_pos_ = 0;
  const std::set<std::string>& allowed_;
  const std::string& component_;
  const std::string& path_;
  std::vector<PickleValue> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, PickleValue> memo_;
  Pickle out_;
};

PickleValue Unpickler::global(const std::string& module, const std::string& name) {
  std::string full = module + "." + name;
  if (!allowed_.count(full))
    fail(component_,
         "{}: pickle references forbidden global '{}' (only state dicts of tensors can "
         "be loaded; nothing is executed)",
         path_, printable(full));
  out_.strings.push_back(std::move(full));
  return make(Kind::global, static_cast<uint32_t>(out_.strings.size() - 1));
}

// LONG1/LONG4: little-endian two's complement of n bytes. Wider than 64 bits (never a tensor
// size, but e.g. a hash in a training checkpoint) becomes an approximate float.
PickleValue Unpickler::long_int(uint64_t n) {
  const uint8_t* p = take(n);
  if (n > 8) {
    double v = 0;
    for (uint64_t k = n; k-- > 0;) v = v * 256 + p[k];
    if (p[n - 1] & 0x80) v -= std::ldexp(1.0, static_cast<int>(std::min<uint64_t>(8 * n, 4096)));
    return PickleValue{Kind::floating, 0, v, 0};
  }
  uint64_t v = 0;
  for (uint64_t k = 0; k < n; ++k) v |= uint64_t{p[k]} << (8 * k);
  if (n > 0 && n < 8 && (p[n - 1] & 0x80)) v |= ~uint64_t{0} << (8 * n);  // sign-extend
  return integer(static_cast<int64_t>(v));
}

void Unpickler::reduce() {
  PickleValue args = pop();
  PickleValue callable = pop();
  if (callable.kind != Kind::global)
    error("REDUCE on a {}, not a global", pickle_kind_name(callable.kind));
  if (out_.strings[callable.ref] == "collections.OrderedDict") {
    if (args.kind != Kind::tuple || !out_.seqs[args.ref].empty())
      error("OrderedDict() with arguments is not supported");
    stack_.push_back(new_dict());
    return;
  }
  out_.calls.push_back({callable, args});
  stack_.push_back(make(Kind::call, static_cast<uint32_t>(out_.calls.size() - 1)));
}

void Unpickler::set_items(const std::vector<PickleValue>& items) {
  PickleValue& target = top();
  if (target.kind != Kind::dict) error("SETITEM on a {}", pickle_kind_name(target.kind));
  if (items.size() % 2) error("SETITEMS with an odd number of items");
  auto& d = out_.dicts[target.ref];
  for (size_t k = 0; k < items.size(); k += 2) d.emplace_back(items[k], items[k + 1]);
}

void Unpickler::append_items(const std::vector<PickleValue>& items) {
  PickleValue& target = top();
  if (target.kind != Kind::list) error("APPEND on a {}", pickle_kind_name(target.kind));
  auto& s = out_.seqs[target.ref];
  s.insert(s.end(), items.begin(), items.end());
}

// The opcodes understood, named as in Python's pickle module.
enum Op : uint8_t {
  kProto = 0x80,
  kFrame = 0x95,
  kStop = '.',
  kMark = '(',
  kEmptyDict = '}',
  kEmptyList = ']',
  kEmptyTuple = ')',
  kTuple = 't',
  kTuple1 = 0x85,
  kTuple2 = 0x86,
  kTuple3 = 0x87,
  kBinUnicode = 'X',
  kShortBinUnicode = 0x8c,
  kBinUnicode8 = 0x8d,
  kBinBytes = 'B',
  kShortBinBytes = 'C',
  kBinBytes8 = 0x8e,
  kBinInt = 'J',
  kBinInt1 = 'K',
  kBinInt2 = 'M',
  kLong1 = 0x8a,
  kLong4 = 0x8b,
  kBinFloat = 'G',
  kNone = 'N',
  kNewTrue = 0x88,
  kNewFalse = 0x89,
  kSetItem = 's',
  kSetItems = 'u',
  kAppend = 'a',
  kAppends = 'e',
  kBinPut = 'q',
  kLongBinPut = 'r',
  kMemoize = 0x94,
  kBinGet = 'h',
  kLongBinGet = 'j',
  kGlobal = 'c',
  kStackGlobal = 0x93,
  kReduce = 'R',
  kBuild = 'b',
  kBinPersId = 'Q',
  kPop = '0',
  kPopMark = '1',
  kDup = '2',
};

Pickle Unpickler::run() {
  while (pos_ < size_) {
    op_pos_ = pos_;
    const uint8_t op = data_[pos_++];
    switch (op) {
      case kProto: {
        uint8_t v = read_le<uint8_t>();
        if (v > 5) error("unsupported pickle protocol {}", v);
        break;
      }
      case kFrame:  // a length hint only
        take(8);
        break;
      case kStop:
        out_.root = pop();
        return std::move(out_);
      case kMark:
        marks_.push_back(stack_.size());
        break;
      case kEmptyDict:
        stack_.push_back(new_dict());
        break;
      case kEmptyList:
        stack_.push_back(new_seq(Kind::list, {}));
        break;
      case kEmptyTuple:
        stack_.push_back(new_seq(Kind::tuple, {}));
        break;
      case kTuple:
        stack_.push_back(new_seq(Kind::tuple, pop_mark()));
        break;
      case kTuple1:
      case kTuple2:
      case kTuple3: {
        std::vector<PickleValue> items(op - kTuple1 + 1u);
        for (size_t k = items.size(); k-- > 0;) items[k] = pop();
        stack_.push_back(new_seq(Kind::tuple, std::move(items)));
        break;
      }
      case kBinUnicode:
      case kBinBytes: {
        uint32_t n = read_le<uint32_t>();
        stack_.push_back(new_string(take(n), n));
        break;
      }
      case kShortBinUnicode:
      case kShortBinBytes: {
        uint8_t n = read_le<uint8_t>();
        stack_.push_back(new_string(take(n), n));
        break;
      }
      case kBinUnicode8:
      case kBinBytes8: {
        uint64_t n = read_le<uint64_t>();
        const uint8_t* p = take(n);
        stack_.push_back(new_string(p, static_cast<size_t>(n)));
        break;
      }
      case kBinInt:
        stack_.push_back(integer(read_le<int32_t>()));
        break;
      case kBinInt1:
        stack_.push_back(integer(read_le<uint8_t>()));
        break;
      case kBinInt2:
        stack_.push_back(integer(read_le<uint16_t>()));
        break;
      case kLong1:
        stack_.push_back(long_int(read_le<uint8_t>()));
        break;
      case kLong4: {
        int32_t n = read_le<int32_t>();
        if (n < 0) error("negative LONG4 length");
        stack_.push_back(long_int(static_cast<uint64_t>(n)));
        break;
      }
      case kBinFloat: {  // big-endian
        uint64_t bits = __builtin_bswap64(read_le<uint64_t>());
        stack_.push_back(PickleValue{Kind::floating, 0, std::bit_cast<double>(bits), 0});
        break;
      }
      case kNone:
        stack_.push_back(PickleValue{});
        break;
      case kNewTrue:
      case kNewFalse:
        stack_.push_back(PickleValue{Kind::boolean, op == kNewTrue, 0, 0});
        break;
      case kSetItem: {
        PickleValue value = pop();
        PickleValue key = pop();
        set_items({key, value});
        break;
      }
      case kSetItems:
        set_items(pop_mark());
        break;
      case kAppend: {
        PickleValue value = pop();
        append_items({value});
        break;
      }
      case kAppends:
        append_items(pop_mark());
        break;
      case kBinPut:
        memo_put(read_le<uint8_t>());
        break;
      case kLongBinPut:
        memo_put(read_le<uint32_t>());
        break;
      case kMemoize:
        memo_put(memo_.size());
        break;
      case kBinGet:
        memo_get(read_le<uint8_t>());
        break;
      case kLongBinGet:
        memo_get(read_le<uint32_t>());
        break;
      case kGlobal: {
        std::string module = read_line();
        std::string name = read_line();
        stack_.push_back(global(module, name));
        break;
      }
      case kStackGlobal: {
        PickleValue name = pop();
        PickleValue module = pop();
        if (module.kind != Kind::string || name.kind != Kind::string)
          error("STACK_GLOBAL needs two strings");
        stack_.push_back(global(out_.strings[module.ref], out_.strings[name.ref]));
        break;
      }
      case kReduce:
        reduce();
        break;
      case kBuild: {  // object state (e.g. a state dict's _metadata) is not needed
        pop();
        Kind k = top().kind;
        if (k != Kind::dict && k != Kind::call) error("BUILD on a {}", pickle_kind_name(k));
        break;
      }
      case kBinPersId: {
        PickleValue pid = pop();
        stack_.push_back(new_seq(Kind::persid, {pid}));
        break;
      }
      case kPop:
        if (stack_.size() > frame_base()) {
          stack_.pop_back();
        } else {
          pop_mark();
        }
        break;
      case kPopMark:
        pop_mark();
        break;
      case kDup: {
        PickleValue v = top();
        stack_.push_back(v);
        break;
      }
      default:
        error("unsupported opcode 0x{:02x}", op);
    }
  }
  op_pos_ = pos_;
  error("truncated data (no STOP opcode)");
}

}  // namespace

Pickle unpickle(const uint8_t* data, size_t size, const std::set<std::string>& allowed_globals,
                const std::string& component, const std::string& path) {
  if (size > (size_t{1} << 31)) fail(component, "{}: pickle of {} bytes is too large", path, size);
  return Unpickler(data, size, allowed_globals, component, path).run();
}

}  // namespace qvit::io
