#!/usr/bin/python3
"""Writes the image-module fixtures into tests/fixtures/images/ (run with Debian's /usr/bin/python3,
which has PIL 9.4, torch 1.13 and torchvision 0.14).

What it writes, all described by index.json:
  * synthetic source images (JPEG RGB/gray/CMYK/YCCK/progressive/odd subsampling, PNG of every
    colour type and bit depth, interlaced, a PNG named .JPEG) and what PIL decodes them to
    (Image.open(f).convert("RGB")): raw RGB8 for small images, a CRC32 of it for larger ones;
  * golden uint8 crops (torchvision Resize(short) + CenterCrop) for synthetic images and for a
    few real images read from the shared data folder at test time (not copied here);
  * a few golden float tensors of the whole eval transform (Resize, CenterCrop, ToTensor,
    Normalize) for the DeiT and ViT configurations and for crops larger than the resized image;
  * torch's ToTensor+Normalize of every byte value, per configuration;
  * PIL resize outputs over a grid of sizes, from noise images the tests regenerate themselves
    (noise_image below; the C++ tests implement the same formula);
  * CRC32s of PIL's decoding and crops of every image in imagenet-sample;
  * broken files (bad CRC, corrupt IDAT, absurd dimensions) and truncation points at which PIL
    refuses the file.
Run from anywhere: /usr/bin/python3 tools/make_image_fixtures.py [--data /work/shared/data]
"""
import argparse
import ctypes
import io
import json
import os
import struct
import zlib

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image, ImageFile

assert not ImageFile.LOAD_TRUNCATED_IMAGES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "images")
RAW_GOLDEN_MAX_BYTES = 40000  # decoded goldens up to this size are raw RGB8, larger ones a CRC32

CONFIGS = {
    "deit": dict(resize_short=256, crop=224, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
    "vit": dict(resize_short=248, crop=224, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
    # Crops larger than the resized image (torchvision pads with zeros) and bilinear.
    "small_pad": dict(resize_short=48, crop=64, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
    "small_bilinear": dict(resize_short=40, crop=36, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
                           interpolation="bilinear"),
}
INTERP = {"bicubic": T.InterpolationMode.BICUBIC, "bilinear": T.InterpolationMode.BILINEAR}
PIL_FILTER = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR}


def interp(cfg):
    return cfg.get("interpolation", "bicubic")


def crop_transform(cfg):
    return T.Compose([T.Resize(cfg["resize_short"], interpolation=INTERP[interp(cfg)]),
                      T.CenterCrop(cfg["crop"])])


def full_transform(cfg):
    return T.Compose([crop_transform(cfg), T.ToTensor(), T.Normalize(cfg["mean"], cfg["std"])])


def pil_load(path_or_bytes):
    """torchvision's default loader."""
    f = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else open(path_or_bytes, "rb")
    with f:
        return Image.open(f).convert("RGB")


def rgb_bytes(im):
    assert im.mode == "RGB"
    return np.asarray(im, dtype=np.uint8).tobytes()


def noise_image(w, h, seed):
    """Deterministic noise, w*h*3 bytes: byte i = low byte of fmix64(i + seed * golden)."""
    x = np.arange(w * h * 3, dtype=np.uint64) + np.uint64(seed * 0x9E3779B97F4A7C15 % 2**64)
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xFF51AFD7ED558CCD)
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xC4CEB9FE1A85EC53)
    x ^= x >> np.uint64(33)
    return (x & np.uint64(0xFF)).astype(np.uint8).reshape(h, w, 3)


def synthetic(w, h, seed):
    """A smooth picture with edges and a little noise (compresses well, exercises filters)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.empty((h, w, 3))
    for c in range(3):
        fx, fy, ph = rng.uniform(0.02, 0.15), rng.uniform(0.02, 0.15), rng.uniform(0, 6.3)
        img[..., c] = 128 + 90 * np.sin(x * fx + ph) * np.cos(y * fy - ph)
    for _ in range(4):  # hard-edged rectangles
        x0, y0 = rng.integers(0, w), rng.integers(0, h)
        img[y0:y0 + rng.integers(1, h // 2 + 2), x0:x0 + rng.integers(1, w // 2 + 2)] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 4, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


# ---- hand-written PNG (PIL cannot write 16-bit colour, LA16 or interlaced PNGs) ----------------

def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(arr, color_type, bit_depth, interlace=False, plte=None, trns=None):
    """arr: HxWxC array of sample values (uint8 or uint16, already at bit_depth)."""
    h, w = arr.shape[:2]
    arr = arr.reshape(h, w, -1)

    def pack_rows(a):
        rows = []
        for row in a:
            if bit_depth == 16:
                data = row.astype(">u2").tobytes()
            elif bit_depth == 8:
                data = row.astype(np.uint8).tobytes()
            else:  # 1, 2, 4 bits, one sample per pixel
                bits = np.unpackbits(row.astype(np.uint8).reshape(-1, 1), axis=1)[:, 8 - bit_depth:]
                data = np.packbits(bits.reshape(-1)).tobytes()
            rows.append(b"\0" + data)
        return b"".join(rows)

    if interlace:  # Adam7: passes (x0, y0, dx, dy)
        passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
        raw = b"".join(pack_rows(arr[y0::dy, x0::dx]) for x0, y0, dx, dy in passes
                       if arr[y0::dy, x0::dx].size)
    else:
        raw = pack_rows(arr)
    out = b"\x89PNG\r\n\x1a\n"
    out += png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, int(interlace)))
    if plte is not None:
        out += png_chunk(b"PLTE", bytes(plte))
    if trns is not None:
        out += png_chunk(b"tRNS", bytes(trns))
    out += png_chunk(b"IDAT", zlib.compress(raw, 9))
    return out + png_chunk(b"IEND", b"")


# ---- TurboJPEG through ctypes, for JPEGs PIL cannot write (YCCK, 4:4:0, 4:1:1) ----------------

def turbojpeg_encode(arr, pixel_format, subsamp, quality=90):
    tj = ctypes.CDLL("libturbojpeg.so.0")
    tj.tjInitCompress.restype = ctypes.c_void_p
    handle = ctypes.c_void_p(tj.tjInitCompress())
    h, w, c = arr.shape
    src = np.ascontiguousarray(arr, dtype=np.uint8)
    buf = ctypes.POINTER(ctypes.c_ubyte)()
    size = ctypes.c_ulong(0)
    rc = tj.tjCompress2(handle, src.ctypes.data_as(ctypes.c_void_p), w, w * c, h, pixel_format,
                        ctypes.byref(buf), ctypes.byref(size), subsamp, quality, 0)
    assert rc == 0
    data = ctypes.string_at(buf, size.value)
    tj.tjFree(buf)
    tj.tjDestroy(handle)
    return data


TJPF_RGB, TJPF_CMYK = 0, 11
TJSAMP_440, TJSAMP_411 = 4, 5


def jpeg_bytes(im, **kw):
    b = io.BytesIO()
    im.save(b, "JPEG", **kw)
    return b.getvalue()


def png_pil_bytes(im, **kw):
    b = io.BytesIO()
    im.save(b, "PNG", **kw)
    return b.getvalue()


def synthetic_sources():
    """(file name, bytes, note) of every synthetic source image."""
    out = []
    rgb = lambda w, h, s: Image.fromarray(synthetic(w, h, s), "RGB")
    out.append(("rgb_37x53_420.jpg", jpeg_bytes(rgb(37, 53, 1), quality=90), "4:2:0, odd size"))
    out.append(("rgb_100x300_444.jpg", jpeg_bytes(rgb(100, 300, 2), quality=92, subsampling=0), "4:4:4, tall"))
    out.append(("rgb_640x480_420.jpg", jpeg_bytes(rgb(640, 480, 3), quality=85), "typical photo size"))
    out.append(("rgb_800x120_422.jpg", jpeg_bytes(rgb(800, 120, 4), quality=88, subsampling=1), "very wide, 4:2:2"))
    out.append(("rgb_150x150_prog.jpg", jpeg_bytes(rgb(150, 150, 5), quality=80, progressive=True), "progressive"))
    out.append(("rgb_300x100.jpg", jpeg_bytes(rgb(300, 100, 6), quality=75), "short side < 224"))
    out.append(("gray_121x77.jpg", jpeg_bytes(rgb(121, 77, 7).convert("L"), quality=90), "grayscale"))
    out.append(("cmyk_90x70.jpg", jpeg_bytes(Image.fromarray(
        np.dstack([synthetic(90, 70, 8), synthetic(90, 70, 9)[..., :1]]), "CMYK"), quality=90),
        "CMYK written by PIL (Adobe, inverted)"))
    out.append(("ycck_61x47.jpg", turbojpeg_encode(np.dstack([synthetic(61, 47, 10), synthetic(61, 47, 11)[..., :1]]),
                                                   TJPF_CMYK, 2), "YCCK (Adobe transform 2) by TurboJPEG"))
    out.append(("rgb_61x47_440.jpg", turbojpeg_encode(synthetic(61, 47, 12), TJPF_RGB, TJSAMP_440), "4:4:0"))
    out.append(("rgb_67x45_411.jpg", turbojpeg_encode(synthetic(67, 45, 13), TJPF_RGB, TJSAMP_411), "4:1:1"))

    # Damaged JPEGs that libjpeg only warns about, and PIL therefore decodes.
    base = jpeg_bytes(rgb(80, 60, 14), quality=90)
    out.append(("warn_extraneous_80x60.jpg", base[:-2] + b"\x00\x01\x02" + base[-2:],
                "junk before EOI (libjpeg warning)"))
    dht = base.index(b"\xff\xc4")
    out.append(("warn_junk_80x60.jpg", base[:dht] + b"\x00\x01" + base[dht:],
                "junk before DHT (libjpeg warning)"))
    sos = base.index(b"\xff\xda")
    mid = (sos + len(base)) // 2
    out.append(("warn_corrupt_80x60.jpg", base[:mid] + b"\xff\x00" * 6 + base[mid + 12:],
                "corrupt entropy data (libjpeg warning)"))

    s = synthetic(64, 48, 20)
    out.append(("rgb_64x48.png", png_pil_bytes(Image.fromarray(s)), "PNG RGB"))
    a = np.dstack([synthetic(50, 40, 21), noise_image(50, 40, 22)[..., :1]])
    out.append(("rgba_50x40.png", png_pil_bytes(Image.fromarray(a, "RGBA")), "PNG RGBA"))
    p = Image.fromarray(synthetic(45, 33, 23)).quantize(200)
    out.append(("palette_45x33.png", png_pil_bytes(p, transparency=3), "PNG palette with tRNS"))
    idx = noise_image(29, 19, 24)[..., 0] % 16
    pal = noise_image(16, 1, 25).reshape(-1)[:36]  # 12 entries: indices 12..15 are out of range
    out.append(("palette4_29x19.png", png_bytes(idx, 3, 4, plte=pal), "4-bit palette, indices past PLTE"))
    out.append(("gray_41x29.png", png_pil_bytes(Image.fromarray(synthetic(41, 29, 26)).convert("L")), "PNG gray"))
    out.append(("gray1_33x9.png", png_bytes(noise_image(33, 9, 27)[..., 0] & 1, 0, 1), "1-bit gray"))
    out.append(("gray2_31x7.png", png_bytes(noise_image(31, 7, 28)[..., 0] & 3, 0, 2, trns=b"\0\1"), "2-bit gray, tRNS"))
    out.append(("gray4_9x13.png", png_bytes(noise_image(9, 13, 29)[..., 0] & 15, 0, 4), "4-bit gray"))
    la = np.dstack([synthetic(30, 20, 30)[..., :1], noise_image(30, 20, 31)[..., :1]])
    out.append(("la_30x20.png", png_pil_bytes(Image.fromarray(la, "LA")), "PNG gray+alpha"))
    n16 = noise_image(27, 21, 32).astype(np.uint16)
    g16 = (n16[..., 0] << 8 | n16[..., 1]) >> (n16[..., 2] % 9)  # many values < 256: PIL clips
    out.append(("gray16_27x21.png", png_bytes(g16, 0, 16), "16-bit gray (PIL mode I, clipped)"))
    rgb16 = n16 << 8 | noise_image(27, 21, 33).astype(np.uint16)
    out.append(("rgb16_27x21.png", png_bytes(rgb16, 2, 16), "16-bit RGB"))
    rgba16 = np.dstack([rgb16, n16[..., :1] * 257])
    out.append(("rgba16_27x21.png", png_bytes(rgba16, 6, 16), "16-bit RGBA"))
    out.append(("la16_27x21.png", png_bytes(np.dstack([rgb16[..., :1], rgb16[..., 1:2]]), 4, 16), "16-bit LA"))
    out.append(("rgb_interlaced_35x27.png", png_bytes(synthetic(35, 27, 34), 2, 8, interlace=True), "Adam7"))
    out.append(("png_named_as.JPEG", png_pil_bytes(Image.fromarray(synthetic(58, 43, 35))), "PNG data, .JPEG name"))
    out.append(("rgb_200x50.png", png_pil_bytes(Image.fromarray(synthetic(200, 50, 36))), "wide PNG"))
    return out


# Synthetic images whose crops are stored (configs: which crops), and float goldens.
CROP_GOLDENS = {
    "rgb_37x53_420.jpg": ["deit", "vit", "small_pad"],
    "rgb_100x300_444.jpg": ["deit", "small_pad", "small_bilinear"],
    "rgb_640x480_420.jpg": ["deit", "vit", "small_bilinear"],
    "rgb_800x120_422.jpg": ["deit", "small_pad"],
    "rgb_150x150_prog.jpg": ["deit"],
    "rgb_300x100.jpg": ["deit", "vit", "small_pad", "small_bilinear"],
    "cmyk_90x70.jpg": ["deit"],
    "rgba_50x40.png": ["small_pad"],
    "png_named_as.JPEG": ["small_bilinear"],
    "rgb_200x50.png": ["small_pad", "small_bilinear"],
}
FLOAT_GOLDENS = [  # (source, name, config)
    ("data", "n01440764/n01440764_tench.JPEG", "deit"),
    ("data", "n01496331/n01496331_electric_ray.JPEG", "vit"),
    ("fixture", "rgb_100x300_444.jpg", "small_pad"),
    ("fixture", "rgb_200x50.png", "small_pad"),
    ("fixture", "rgb_37x53_420.jpg", "small_bilinear"),
]
REAL_IMAGES = [  # real ImageNet images whose crops are stored (two are grayscale JPEGs)
    "n01440764/n01440764_tench.JPEG",
    "n01443537/n01443537_goldfish.JPEG",
    "n01494475/n01494475_hammerhead.JPEG",
    "n01496331/n01496331_electric_ray.JPEG",
    "n03045698/n03045698_cloak.JPEG",
    "n02096051/n02096051_Airedale.JPEG",
    "n03417042/n03417042_garbage_truck.JPEG",
]

# PIL resize over a grid: (in_w, in_h, seed, [(out_w, out_h), ...]); every case runs with both filters.
RESIZE_GRID = [
    (1, 1, 1, [(1, 1), (5, 3)]),
    (2, 3, 2, [(1, 1), (7, 9), (2, 1)]),
    (7, 5, 3, [(7, 11), (3, 5), (13, 2), (1, 1)]),
    (31, 15, 4, [(16, 8), (62, 30), (97, 3), (5, 44), (30, 15)]),
    (64, 48, 5, [(160, 120), (33, 25), (15, 15), (64, 47), (224, 1)]),
    (97, 61, 6, [(24, 15), (200, 7), (11, 130)]),
    (300, 17, 7, [(3, 17), (7, 2), (29, 51)]),
    (17, 300, 8, [(17, 3), (2, 7), (51, 29)]),
    (1000, 23, 9, [(3, 2), (9, 23), (256, 6), (1, 1)]),
    (23, 1000, 10, [(2, 3), (23, 9)]),
    (250, 187, 11, [(171, 128)]),
]


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def refuses(data):
    try:
        pil_load(data)
    except Exception:
        return True
    return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/work/shared/data", help="shared data folder (imagenet-sample inside)")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(os.path.join(OUT, f))
    index = {"note": "written by tools/make_image_fixtures.py; do not edit", "configs": CONFIGS}

    # Decoding goldens.
    sources = synthetic_sources()
    index["decode"] = []
    loaded = {}
    for name, data, note in sources:
        write(name, data)
        im = pil_load(data)
        loaded[name] = im
        entry = {"file": name, "width": im.width, "height": im.height, "note": note}
        if im.width * im.height * 3 <= RAW_GOLDEN_MAX_BYTES:
            entry["golden_rgb"] = name + ".rgb"
            write(entry["golden_rgb"], rgb_bytes(im))
        else:
            entry["golden_crc32"] = zlib.crc32(rgb_bytes(im))
        index["decode"].append(entry)

    # Crop goldens (uint8, stored as RGB PNG) for synthetic and real images.
    data_root = os.path.join(args.data, "imagenet-sample")
    index["crops"] = []
    for name, cfgs in CROP_GOLDENS.items():
        for cfg in cfgs:
            crop = crop_transform(CONFIGS[cfg])(loaded[name])
            golden = f"{name}.{cfg}.crop.png"
            write(golden, png_pil_bytes(crop))
            index["crops"].append({"source": "fixture", "file": name, "config": cfg, "golden_png": golden})
    for name in REAL_IMAGES:
        crop = crop_transform(CONFIGS["deit"])(pil_load(os.path.join(data_root, name)))
        golden = os.path.basename(name) + ".deit.crop.png"
        write(golden, png_pil_bytes(crop))
        index["crops"].append({"source": "data", "file": name, "config": "deit", "golden_png": golden})

    # Float goldens of the whole transform, and torch's value for every byte.
    index["floats"] = []
    for source, name, cfg in FLOAT_GOLDENS:
        im = loaded[name] if source == "fixture" else pil_load(os.path.join(data_root, name))
        t = full_transform(CONFIGS[cfg])(im)
        assert t.dtype == torch.float32 and t.shape == (3, CONFIGS[cfg]["crop"], CONFIGS[cfg]["crop"])
        golden = f"{os.path.basename(name)}.{cfg}.f32"
        write(golden, t.numpy().astype("<f4").tobytes())
        index["floats"].append({"source": source, "file": name, "config": cfg, "golden_f32": golden})
    index["normalize_tables"] = {}
    ramp = Image.fromarray(np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2), "RGB")
    for cfg_name, cfg in CONFIGS.items():
        t = T.Normalize(cfg["mean"], cfg["std"])(T.ToTensor()(ramp))  # [3, 1, 256]
        golden = f"normalize_{cfg_name}.f32"
        write(golden, t.numpy().astype("<f4").tobytes())
        index["normalize_tables"][cfg_name] = golden

    # Resize grid from noise images.
    index["resize_grid"] = {"file": "resize_grid.u8", "cases": []}
    blob = bytearray()
    for in_w, in_h, seed, outs in RESIZE_GRID:
        src = Image.fromarray(noise_image(in_w, in_h, seed), "RGB")
        for out_w, out_h in outs:
            for filt in ("bicubic", "bilinear"):
                res = src.resize((out_w, out_h), PIL_FILTER[filt])
                index["resize_grid"]["cases"].append({"in": [in_w, in_h], "seed": seed, "out": [out_w, out_h],
                                                      "filter": filt, "offset": len(blob)})
                blob += rgb_bytes(res)
    write("resize_grid.u8", bytes(blob))

    # CRC32s of PIL's decoding and crops for the whole imagenet-sample folder.
    hashes = {}
    for wnid in sorted(os.listdir(data_root)):
        for f in sorted(os.listdir(os.path.join(data_root, wnid))):
            im = pil_load(os.path.join(data_root, wnid, f))
            hashes[f"{wnid}/{f}"] = {
                "size": [im.width, im.height], "decoded": zlib.crc32(rgb_bytes(im)),
                "deit": zlib.crc32(rgb_bytes(crop_transform(CONFIGS["deit"])(im))),
                "vit": zlib.crc32(rgb_bytes(crop_transform(CONFIGS["vit"])(im)))}
    with open(os.path.join(OUT, "imagenet_crc32.json"), "w") as f:  # one line per image
        f.write("{\n" + ",\n".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in hashes.items()) + "\n}\n")
    index["imagenet_crc32"] = "imagenet_crc32.json"

    # Broken files. Truncation points are checked against PIL, which must refuse each of them.
    bad = {}
    png = dict((n, d) for n, d, _ in sources)["rgb_64x48.png"]
    idat = png.index(b"IDAT")
    length = struct.unpack(">I", png[idat - 4:idat])[0]
    bad_crc = bytearray(png)
    bad_crc[idat + 4 + length] ^= 0x55  # the stored CRC of intact IDAT data
    write("bad_crc.png", bytes(bad_crc))
    bad["bad_crc.png"] = "IDAT CRC mismatch (libpng refuses; PIL does not check IDAT CRCs)"
    body = bytearray(png[idat + 4:idat + 4 + length])
    body[length // 2:length // 2 + 8] = b"\xff" * 8
    bad_idat = png[:idat - 4] + png_chunk(b"IDAT", bytes(body)) + png[idat + 4 + length + 4:]
    assert refuses(bad_idat)
    write("bad_idat.png", bad_idat)
    bad["bad_idat.png"] = "corrupt deflate data with a valid CRC"
    huge_png = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)) + \
        png_chunk(b"IDAT", zlib.compress(b"\0" * 100)) + png_chunk(b"IEND", b"")
    write("huge_60000x60000.png", huge_png)
    bad["huge_60000x60000.png"] = "IHDR claims 3.6 Gpixel"
    jpg = dict((n, d) for n, d, _ in sources)["rgb_37x53_420.jpg"]
    sof = jpg.index(b"\xff\xc0")
    huge_jpg = jpg[:sof + 5] + struct.pack(">HH", 65000, 65000) + jpg[sof + 9:]
    write("huge_65000x65000.jpg", huge_jpg)
    bad["huge_65000x65000.jpg"] = "SOF claims 4.2 Gpixel"
    dht = jpg.index(b"\xff\xc4")
    after_warning = jpg[:dht] + b"\x00\x01" + jpg[dht:dht + 5] + b"\xff" * 16 + jpg[dht + 21:]
    assert refuses(after_warning)
    write("bad_after_warning.jpg", after_warning)
    bad["bad_after_warning.jpg"] = "junk before DHT (a libjpeg warning), then a bogus DHT (fatal)"
    junk = dict((n, d) for n, d, _ in sources)["warn_junk_80x60.jpg"]
    junk_cut = junk[:len(junk) * 7 // 10]
    assert refuses(junk_cut)
    write("bad_warning_then_truncated.jpg", junk_cut)
    bad["bad_warning_then_truncated.jpg"] = "a libjpeg warning early, then cut short"
    index["bad_files"] = bad

    index["truncations"] = {}
    for name in ("rgb_640x480_420.jpg", "rgb_150x150_prog.jpg", "gray_121x77.jpg", "rgb_64x48.png",
                 "rgb_interlaced_35x27.png", "rgb_200x50.png"):
        data = dict((n, d) for n, d, _ in sources)[name]
        cuts = {1, 3, 10, 40, 200, len(data) // 3, len(data) // 2, len(data) * 9 // 10, len(data) - 30}
        if name.endswith(".jpg"):  # PIL refuses a JPEG without its EOI marker too (PNG: IEND is optional)
            cuts |= {len(data) - 2, len(data) - 1}
        cuts = sorted(cuts)
        cuts = [c for c in cuts if 0 < c < len(data)]
        for c in cuts:
            assert refuses(data[:c]), (name, c)
        index["truncations"][name] = cuts

    with open(os.path.join(OUT, "index.json"), "w") as f:
        json.dump(index, f, indent=1, sort_keys=True)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"wrote {len(os.listdir(OUT))} files, {total / 1e6:.2f} MB, into {OUT}")


if __name__ == "__main__":
    main()
