// A minimal, safe unpickler for the protocol-2 pickles torch.save writes (data.pkl). It builds an
// inert object graph and never calls anything: GLOBAL only accepts names from an allow-list,
// REDUCE records the call (callable + arguments) for the caller to interpret, BINPERSID records
// the persistent id. OrderedDict() is the one call given a meaning (an empty dict), because
// SETITEMS then fills it.
//
// Objects live in arenas owned by the Pickle and refer to each other by index, so shared and even
// cyclic references (legal in pickles) cost nothing and cannot leak or recurse on destruction.
#pragma once

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace qvit::io {

struct PickleValue {
  enum class Kind : uint8_t {
    none,
    boolean,
    integer,
    floating,
    string,  // unicode or bytes; index into Pickle::strings
    tuple,   // index into Pickle::seqs
    list,    // index into Pickle::seqs
    dict,    // index into Pickle::dicts
    global,  // "module.name"; index into Pickle::strings
    call,    // callable(args): index into Pickle::calls
    persid,  // persistent id: index into Pickle::seqs, a one-element sequence holding the pid
  };
  Kind kind = Kind::none;
  int64_t i = 0;  // boolean, integer
  double f = 0;   // floating
  uint32_t ref = 0;
};

struct PickleCall {
  PickleValue callable;  // always a global
  PickleValue args;      // usually a tuple
};

struct Pickle {
  PickleValue root;
  std::vector<std::string> strings;
  std::vector<std::vector<PickleValue>> seqs;
  std::vector<std::vector<std::pair<PickleValue, PickleValue>>> dicts;
  std::vector<PickleCall> calls;

  // Accessors; they throw Error if `v` has another kind.
  const std::string& str(const PickleValue& v) const;
  const std::vector<PickleValue>& seq(const PickleValue& v) const;  // tuple or list
  const std::vector<std::pair<PickleValue, PickleValue>>& dict(const PickleValue& v) const;
  const PickleCall& call(const PickleValue& v) const;
  bool is_str(const PickleValue& v) const { return v.kind == PickleValue::Kind::string; }
};

const char* pickle_kind_name(PickleValue::Kind k);

// Unpickles `data`. `allowed_globals` holds "module.name" strings; any other global raises
// "[component] path: pickle references forbidden global 'module.name'".
Pickle unpickle(const uint8_t* data, size_t size, const std::set<std::string>& allowed_globals,
                const std::string& component, const std::string& path);

}  // namespace qvit::io
