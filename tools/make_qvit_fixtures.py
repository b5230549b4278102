#!/usr/bin/python3
"""Writes tests/fixtures/qvit/spec_example.qvit with an implementation of docs/qvit-format.md that
shares no code with the C++ writer (struct + zlib.crc32), plus spec_example.json describing what
the file holds, so that tests/qvitfile_format_test.cpp checks the C++ reader against the spec.

The file deliberately differs from what QvitWriter would write while staying valid: sections are
stored in a different order than the table lists them, the metadata section is not first in the
table and has another name, and there are extra zero bytes between sections.

Usage: /usr/bin/python3 tools/make_qvit_fixtures.py [OUT_DIR]  (default tests/fixtures/qvit)
"""
import json
import os
import struct
import sys
import zlib

DTYPES = {"F32": (1, "<f", 4), "I8": (2, "<b", 1), "U8": (3, "<B", 1), "I32": (4, "<i", 4),
          "I64": (5, "<q", 8)}


def pack_int4(values):
    out = bytearray((len(values) + 1) // 2)
    for i, v in enumerate(values):
        assert -8 <= v <= 7
        out[i // 2] |= (v & 0xF) << (4 * (i % 2))
    return bytes(out)


def tensor_bytes(dtype, values, bits):
    if bits == 4:
        return pack_int4(values)
    fmt = DTYPES[dtype][1]
    return b"".join(struct.pack(fmt, v) for v in values)


def align(x):
    return (x + 63) // 64 * 64


def write_qvit(path, meta_name, meta, tensors, storage_order, gap):
    """tensors: list of (name, dtype, shape, values, bits) in table order; the metadata entry goes
    second in the table. storage_order: table indices in the order their bytes are stored."""
    entries = []  # (name, kind, dtype_code, bits, shape, payload)
    for i, (name, dtype, shape, values, bits) in enumerate(tensors):
        if i == 1:
            text = json.dumps(meta, separators=(",", ":")).encode()
            entries.append((meta_name, 0, 0, 0, [], text))
        entries.append((name, 1, DTYPES[dtype][0], bits, shape, tensor_bytes(dtype, values, bits)))
    names = b"".join(e[0].encode() for e in entries)
    table_end = 64 + 96 * len(entries) + len(names)
    offsets = [0] * len(entries)
    pos = align(table_end)
    for k, i in enumerate(storage_order):
        if k > 0:
            pos = align(pos + gap)
        offsets[i] = pos
        pos += len(entries[i][5])
    size = pos
    out = bytearray(size)
    table = bytearray()
    name_off = 0
    for i, (name, kind, code, bits, shape, payload) in enumerate(entries):
        dims = list(shape) + [0] * (8 - len(shape))
        table += struct.pack("<IIBBBBIQQ8q", name_off, len(name.encode()), kind, code, bits,
                             len(shape), zlib.crc32(payload), offsets[i], len(payload), *dims)
        name_off += len(name.encode())
        out[offsets[i]:offsets[i] + len(payload)] = payload
    head = bytearray(b"QVIT" + struct.pack("<IQII", 1, size, len(entries), len(names)))
    head += bytes(60 - len(head))
    crc = zlib.crc32(bytes(table) + names, zlib.crc32(bytes(head)))
    head += struct.pack("<I", crc)
    out[0:64] = head
    out[64:table_end] = bytes(table) + names
    with open(path, "wb") as f:
        f.write(out)


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(__file__), "..", "tests", "fixtures", "qvit")
    os.makedirs(out_dir, exist_ok=True)
    tensors = [
        ("blocks.0.attn.qkv.weight", "I8", [3, 4], [(i * 37) % 256 - 128 for i in range(12)], 8),
        ("w4", "I8", [7], [-8, -1, 0, 1, 7, 3, -5], 4),
        ("scale", "F32", [2, 2], [0.5, -1.25, 3.0e-5, 1024.0], 32),
        ("zero", "U8", [5], [0, 1, 128, 254, 255], 8),
        ("bias", "I32", [3], [-2 ** 31, 0, 2 ** 31 - 1], 32),
        ("index", "I64", [2], [-(2 ** 60), 12345], 64),
        ("scalar", "F32", [], [2.5], 32),
        ("empty", "I8", [0, 3], [], 8),
    ]
    meta = {"format": "spec-example", "scales": [0.25, 0.5], "nested": {"a": [1, {"b": None}]}}
    # Table order: tensor 0, metadata, tensors 1..7. Stored in reverse, with 100 zero bytes
    # between sections (each start still rounded up to 64).
    n = len(tensors) + 1
    write_qvit(os.path.join(out_dir, "spec_example.qvit"), "meta", meta, tensors,
               list(reversed(range(n))), 100)
    desc = {"metadata_name": "meta", "metadata": meta,
            "tensors": [{"name": t[0], "dtype": t[1], "shape": t[2], "values": t[3], "bits": t[4]}
                        for t in tensors]}
    with open(os.path.join(out_dir, "spec_example.json"), "w") as f:
        json.dump(desc, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
