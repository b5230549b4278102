// Errors crossing the library boundary. Every message starts with the component in brackets and
// names the file or tensor concerned, e.g.
//   [safetensors] model.safetensors: tensor 'head.weight' has shape [1000,192], expected [1000,384]
// The library never exits; the CLI turns an Error into a one-line message and a non-zero exit code.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>
#include <string_view>

namespace qvit {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// Throws Error("[component] message").
template <typename... Args>
[[noreturn]] void fail(std::string_view component, fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format("[{}] {}", component, fmt::format(f, std::forward<Args>(args)...)));
}

}  // namespace qvit
