#include "fuzz_common.h"

#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "qvit/error.h"
#include "qvit/image.h"
#include "qvit/io.h"
#include "qvit/quant_session.h"
#include "qvit/qvit_file.h"

namespace qvit::fuzz {

namespace {

// Writes the bytes to a per-process temporary file and calls f(path). Only qvit::Error may escape f.
template <class F>
void with_file(const uint8_t* data, size_t size, const char* ext, F f) {
  const char* dir = std::getenv("TMPDIR");
  const std::string path = std::string(dir ? dir : "/tmp") + "/qvit_fuzz_" + std::to_string(getpid()) + ext;
  FILE* fp = std::fopen(path.c_str(), "wb");
  if (!fp) return;
  if (size) std::fwrite(data, 1, size, fp);
  std::fclose(fp);
  try {
    f(path);
  } catch (const Error&) {
  }
  std::remove(path.c_str());
}

}  // namespace

void safetensors(const uint8_t* data, size_t size) {
  with_file(data, size, ".safetensors", [](const std::string& p) { load_safetensors(p); });
}

void pth(const uint8_t* data, size_t size) {
  with_file(data, size, ".pth", [](const std::string& p) { load_pth(p); });
}

void qparams(const uint8_t* data, size_t size) {
  const nlohmann::json j = nlohmann::json::parse(data, data + size, nullptr, false);
  if (j.is_discarded()) return;  // not JSON: the loader reports that with the file name
  try {
    QuantSession::from_json(j, "deit_tiny_patch16_224", "fuzz.json");
  } catch (const Error&) {
  }
}

void image(const uint8_t* data, size_t size) {
  try {
    decode_image_memory(data, size, "fuzz", int64_t(1) << 26);
  } catch (const Error&) {
  }
}

void qvit_file(const uint8_t* data, size_t size) {
  auto bytes = std::make_shared<std::vector<uint8_t>>(data, data + size);
  try {
    QvitFile f = parse_qvit(bytes, "fuzz.qvit");
    for (const std::string& n : f.names()) f.tensor(n);
  } catch (const Error&) {
  }
}

}  // namespace qvit::fuzz
