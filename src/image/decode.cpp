// Decoding JPEG (TurboJPEG) and PNG (libpng) into 8-bit RGB exactly as PIL 9.4's
// Image.open(path).convert("RGB") does. The format is chosen from the first bytes, never the
// file name. Every failure, including truncated data, becomes a qvit::Error naming the file.
#include <png.h>
#include <sys/stat.h>
#include <turbojpeg.h>

#include <algorithm>
#include <cerrno>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "qvit/error.h"
#include "qvit/image.h"

namespace qvit {
namespace {

void check_size(const std::string& name, int64_t width, int64_t height, int64_t max_pixels) {
  if (width <= 0 || height <= 0) fail("image", "{}: invalid image size {}x{}", name, width, height);
  if (width * height > max_pixels) {
    fail("image", "{}: {}x{} image has {} pixels, more than the limit of {}", name, width, height,
         width * height, max_pixels);
  }
}

// ---------------------------------------------------------------------------------------------
// JPEG

// What PIL looks at in the frame header: it picks the mode from the number of components only
// (1 → L, 3 → RGB, 4 → CMYK) and refuses anything but 8-bit samples.
struct JpegFrame {
  int width = 0;
  int height = 0;
  int components = 0;
  int precision = 0;
  size_t scan_offset = 0;  // first SOS marker, 0 if none was found
};

// Walks the marker segments up to the first SOS, reading the first SOFn on the way. Returns
// false when there is no frame header before SOS/EOF.
bool read_jpeg_frame(const uint8_t* data, size_t size, JpegFrame* frame) {
  bool have_frame = false;
  size_t pos = 2;  // after SOI
  while (pos + 1 < size) {
    if (data[pos] != 0xFF) {  // junk between markers: libjpeg skips it (with a warning)
      ++pos;
      continue;
    }
    const uint8_t marker = data[pos + 1];
    if (marker == 0xFF) {  // fill byte
      ++pos;
      continue;
    }
    if (marker == 0xDA) frame->scan_offset = pos;
    pos += 2;
    if (marker == 0x01 || marker == 0x00 || (marker >= 0xD0 && marker <= 0xD8)) continue;
    if (marker == 0xD9 || marker == 0xDA) break;
    if (pos + 2 > size) break;
    const size_t length = (size_t(data[pos]) << 8) | data[pos + 1];
    const bool is_sof =
        marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
    if (is_sof && !have_frame) {
      if (length < 8 || pos + 8 > size) return false;
      frame->precision = data[pos + 2];
      frame->height = (data[pos + 3] << 8) | data[pos + 4];
      frame->width = (data[pos + 5] << 8) | data[pos + 6];
      frame->components = data[pos + 7];
      have_frame = true;
    }
    if (length < 2) break;
    pos += length;
  }
  return have_frame;
}

// Entropy-coded data never holds FF D9 (0xFF is stuffed as FF 00), so a file without EOI after
// its first scan was cut short. PIL refuses such files, even when only the EOI is missing.
bool has_eoi_after(const uint8_t* data, size_t size, size_t from) {
  for (size_t i = from; i + 1 < size; ++i) {
    if (data[i] == 0xFF && data[i + 1] == 0xD9) return true;
  }
  return false;
}

struct TjDeleter {
  void operator()(void* handle) const { tjDestroy(handle); }
};

// PIL reads 4-component JPEGs as "CMYK;I" (Adobe polarity: stored inverted) and converts with
// Convert.c's cmyk2rgb: nk = 255 - k; out = nk - nk * c / 255 (rounded as MULDIV255).
inline uint8_t muldiv255(int a, int b) {
  int t = a * b + 128;
  return static_cast<uint8_t>(((t >> 8) + t) >> 8);
}

void cmyk_to_rgb(const uint8_t* cmyk, uint8_t* rgb, size_t pixels) {
  for (size_t i = 0; i < pixels; ++i, cmyk += 4, rgb += 3) {
    int nk = cmyk[3];  // inverted K is 255 - k, i.e. the stored byte
    rgb[0] = static_cast<uint8_t>(nk - muldiv255(255 - cmyk[0], nk));
    rgb[1] = static_cast<uint8_t>(nk - muldiv255(255 - cmyk[1], nk));
    rgb[2] = static_cast<uint8_t>(nk - muldiv255(255 - cmyk[2], nk));
  }
}

Image decode_jpeg(const uint8_t* data, size_t size, const std::string& name, int64_t max_pixels) {
  JpegFrame frame;
  if (!read_jpeg_frame(data, size, &frame)) fail("image", "{}: JPEG has no frame header", name);
  if (frame.precision != 8) {
    fail("image", "{}: cannot handle {}-bit JPEG samples", name, frame.precision);
  }
  if (frame.components != 1 && frame.components != 3 && frame.components != 4) {
    fail("image", "{}: cannot handle JPEG with {} components", name, frame.components);
  }
  check_size(name, frame.width, frame.height, max_pixels);

  std::unique_ptr<void, TjDeleter> tj(tjInitDecompress());
  if (!tj) fail("image", "{}: cannot initialise TurboJPEG: {}", name, tjGetErrorStr2(nullptr));

  // Default flags: ISLOW IDCT and fancy upsampling, as PIL's decoder uses.
  const int pixel_format = frame.components == 1   ? TJPF_GRAY
                           : frame.components == 3 ? TJPF_RGB
                                                   : TJPF_CMYK;
  const int channels = tjPixelSize[pixel_format];
  const size_t pixels = size_t(frame.width) * size_t(frame.height);
  std::vector<uint8_t> buf(pixels * size_t(channels));
  auto decompress = [&](uint8_t* dst, int flags) {
    return tjDecompress2(tj.get(), data, static_cast<unsigned long>(size), dst, frame.width,
                         frame.width * channels, frame.height, pixel_format, flags) == 0;
  };
  if (!decompress(buf.data(), 0)) {
    // libjpeg warns and carries on for many small defects, which PIL ignores too; running out
    // of data is the exception: PIL (without LOAD_TRUNCATED_IMAGES) refuses truncated files.
    const std::string message = tjGetErrorStr2(tj.get());
    if (message.find("Premature end of JPEG file") != std::string::npos) {
      fail("image", "{}: truncated JPEG file", name);
    }
    // TurboJPEG keeps the text of the first warning, or of a later fatal error, and reports
    // "warning" as its error code once any warning happened. A second run that stops at the
    // first warning tells a warning (keep the image) from a fatal error (refuse it).
    std::vector<uint8_t> probe(buf.size());
    if (!decompress(probe.data(), TJFLAG_STOPONWARNING)) {
      const std::string first = tjGetErrorStr2(tj.get());
      if (tjGetErrorCode(tj.get()) != TJERR_WARNING)
        fail("image", "{}: invalid JPEG: {}", name, first);
      if (first != message) fail("image", "{}: invalid JPEG: {}", name, message);
    }
    // TurboJPEG reports only the first warning: a file cut short after an earlier harmless
    // defect has to be recognised by its missing EOI.
    if (frame.scan_offset == 0 || !has_eoi_after(data, size, frame.scan_offset)) {
      fail("image", "{}: truncated JPEG file", name);
    }
  }

  Image img;
  img.width = frame.width;
  img.height = frame.height;
  if (pixel_format == TJPF_RGB) {
    img.rgb = std::move(buf);
    return img;
  }
  img.rgb.resize(pixels * 3);
  if (pixel_format == TJPF_GRAY) {
    for (size_t i = 0; i < pixels; ++i)
      img.rgb[3 * i] = img.rgb[3 * i + 1] = img.rgb[3 * i + 2] = buf[i];
  } else {
    cmyk_to_rgb(buf.data(), img.rgb.data(), pixels);
  }
  return img;
}

// ---------------------------------------------------------------------------------------------
// PNG. libpng reports errors by longjmp; the functions that call it keep only trivially
// destructible locals, and every buffer is owned by the caller.

struct PngReader {
  const uint8_t* data = nullptr;
  size_t size = 0;
  size_t pos = 0;
  char message[256] = {};
  png_structp png = nullptr;
  png_infop info = nullptr;
  ~PngReader() {
    if (png) png_destroy_read_struct(&png, info ? &info : nullptr, nullptr);
  }
};

void png_read_memory(png_structp png, png_bytep out, size_t n) {
  auto* r = static_cast<PngReader*>(png_get_io_ptr(png));
  if (n > r->size - r->pos) png_error(png, "unexpected end of file (truncated PNG)");
  std::memcpy(out, r->data + r->pos, n);
  r->pos += n;
}

void png_on_error(png_structp png, png_const_charp msg) {
  auto* r = static_cast<PngReader*>(png_get_error_ptr(png));
  std::snprintf(r->message, sizeof r->message, "%s", msg);
  png_longjmp(png, 1);
}

void png_on_warning(png_structp, png_const_charp) {}  // PIL ignores what libpng only warns about

struct PngHeader {
  png_uint_32 width = 0;
  png_uint_32 height = 0;
  int bit_depth = 0;
  int color_type = 0;
  int channels = 0;  // after the transformations set up by png_read_header
  size_t rowbytes = 0;
};

// Reads up to the image data and sets the transformations. Returns false (with r->message) on
// error.
bool png_read_header(PngReader* r, PngHeader* h) {
  if (setjmp(png_jmpbuf(r->png))) return false;
  png_set_user_limits(r->png, 0x7fffffff, 0x7fffffff);  // the caller's pixel cap decides
  png_set_read_fn(r->png, r, png_read_memory);
  png_read_info(r->png, r->info);
  png_get_IHDR(r->png, r->info, &h->width, &h->height, &h->bit_depth, &h->color_type, nullptr,
               nullptr, nullptr);
  return true;
}

bool png_prepare(PngReader* r, PngHeader* h) {
  if (setjmp(png_jmpbuf(r->png))) return false;
  // Palette indices stay indices (mapped below like PIL); gray 1/2/4-bit scale up to 8 bits
  // (x255, x85, x17, as PIL's "1", "L;2", "L;4"); 16-bit keeps the high byte (PIL's ";16B"
  // raw modes) except gray, which PIL opens as mode "I" and clips.
  if (h->color_type == PNG_COLOR_TYPE_PALETTE) {
    png_set_packing(r->png);
  } else if (h->color_type == PNG_COLOR_TYPE_GRAY && h->bit_depth < 8) {
    png_set_expand_gray_1_2_4_to_8(r->png);
  }
  if (h->bit_depth == 16 && h->color_type != PNG_COLOR_TYPE_GRAY) png_set_strip_16(r->png);
  png_set_interlace_handling(r->png);
  png_read_update_info(r->png, r->info);
  h->channels = png_get_channels(r->png, r->info);
  h->rowbytes = png_get_rowbytes(r->png, r->info);
  return true;
}

bool png_read_pixels(PngReader* r, png_bytep* rows) {
  if (setjmp(png_jmpbuf(r->png))) return false;
  png_read_image(r->png, rows);
  return true;
}

// PIL's palette starts as a gray ramp and PLTE overwrites its first entries, so indices past
// the palette come out gray rather than black.
void png_palette(const PngReader& r, uint8_t table[256][3]) {
  for (int i = 0; i < 256; ++i) table[i][0] = table[i][1] = table[i][2] = uint8_t(i);
  png_colorp palette = nullptr;
  int count = 0;
  if (png_get_PLTE(r.png, r.info, &palette, &count) & PNG_INFO_PLTE) {
    for (int i = 0; i < std::min(count, 256); ++i) {
      table[i][0] = palette[i].red;
      table[i][1] = palette[i].green;
      table[i][2] = palette[i].blue;
    }
  }
}

Image decode_png(const uint8_t* data, size_t size, const std::string& name, int64_t max_pixels) {
  PngReader r;
  r.data = data;
  r.size = size;
  r.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &r, png_on_error, png_on_warning);
  if (!r.png) fail("image", "{}: cannot initialise libpng", name);
  r.info = png_create_info_struct(r.png);
  if (!r.info) fail("image", "{}: cannot initialise libpng", name);

  PngHeader h;
  if (!png_read_header(&r, &h)) fail("image", "{}: invalid PNG: {}", name, r.message);
  check_size(name, h.width, h.height, max_pixels);
  if (!png_prepare(&r, &h)) fail("image", "{}: invalid PNG: {}", name, r.message);

  std::vector<uint8_t> raw(h.rowbytes * h.height);
  std::vector<png_bytep> rows(h.height);
  for (png_uint_32 y = 0; y < h.height; ++y) rows[y] = raw.data() + size_t(y) * h.rowbytes;
  if (!png_read_pixels(&r, rows.data())) fail("image", "{}: invalid PNG: {}", name, r.message);

  Image img;
  img.width = static_cast<int>(h.width);
  img.height = static_cast<int>(h.height);
  const size_t pixels = size_t(h.width) * h.height;
  img.rgb.resize(pixels * 3);
  uint8_t* out = img.rgb.data();
  const uint8_t* in = raw.data();
  if (h.color_type == PNG_COLOR_TYPE_PALETTE) {
    uint8_t table[256][3];
    png_palette(r, table);
    for (size_t i = 0; i < pixels; ++i, out += 3) std::memcpy(out, table[in[i]], 3);
  } else if (h.bit_depth == 16 && h.color_type == PNG_COLOR_TYPE_GRAY) {
    for (size_t i = 0; i < pixels; ++i, out += 3) {
      int v = (in[2 * i] << 8) | in[2 * i + 1];
      out[0] = out[1] = out[2] = static_cast<uint8_t>(std::min(v, 255));
    }
  } else if (h.channels <= 2) {  // gray, gray + alpha: replicate, drop alpha
    for (size_t i = 0; i < pixels; ++i, out += 3) out[0] = out[1] = out[2] = in[i * h.channels];
  } else if (h.channels == 3) {
    std::memcpy(out, in, pixels * 3);
  } else {  // RGBA: PIL's convert("RGB") drops alpha without compositing
    for (size_t i = 0; i < pixels; ++i, out += 3) std::memcpy(out, in + 4 * i, 3);
  }
  return img;
}

}  // namespace

Image decode_image_memory(const uint8_t* data, size_t size, const std::string& name,
                          int64_t max_pixels) {
  static constexpr uint8_t kJpegMagic[3] = {0xFF, 0xD8, 0xFF};
  static constexpr uint8_t kPngMagic[4] = {0x89, 0x50, 0x4E, 0x47};
  if (size >= 3 && std::memcmp(data, kJpegMagic, 3) == 0) {
    return decode_jpeg(data, size, name, max_pixels);
  }
  if (size >= 4 && std::memcmp(data, kPngMagic, 4) == 0)
    return decode_png(data, size, name, max_pixels);
  fail("image", "{}: not a JPEG or PNG file", name);
}

Image decode_image_file(const std::string& path, int64_t max_pixels) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) fail("image", "{}: cannot open: {}", path, std::strerror(errno));
  struct stat st;
  if (fstat(fileno(f.get()), &st) != 0 || !S_ISREG(st.st_mode)) {
    fail("image", "{}: not a regular file", path);
  }
  std::vector<uint8_t> bytes;
  bytes.reserve(static_cast<size_t>(st.st_size));
  uint8_t chunk[1 << 16];
  size_t n;
  while ((n = std::fread(chunk, 1, sizeof chunk, f.get())) > 0)
    bytes.insert(bytes.end(), chunk, chunk + n);
  if (std::ferror(f.get())) fail("image", "{}: read error: {}", path, std::strerror(errno));
  return decode_image_memory(bytes.data(), bytes.size(), path, max_pixels);
}

}  // namespace qvit
