// Shared by the libFuzzer targets (fuzz/*_fuzz.cpp) and by tests/fuzz_corpus_test.cpp, which
// replays every committed corpus file through the same entry points in the normal build.
// Each entry point parses bytes and must either succeed or throw qvit::Error — never crash,
// hang, or throw anything else (a sanitizer or the test turns those into failures).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace qvit::fuzz {

void safetensors(const uint8_t* data, size_t size);  // via a temporary file (the loader mmaps)
void pth(const uint8_t* data, size_t size);          // via a temporary file
void qparams(const uint8_t* data, size_t size);      // QuantSession JSON
void image(const uint8_t* data, size_t size);        // JPEG / PNG decoding (64 Mpixel cap)
void qvit_file(const uint8_t* data, size_t size);    // .qvit container

}  // namespace qvit::fuzz
