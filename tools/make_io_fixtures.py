#!/usr/bin/python3
"""Writes the small weight-file fixtures for tests/io_*_test.cpp into tests/fixtures/io/.

Run with Debian's python (it has torch): /usr/bin/python3 tools/make_io_fixtures.py
The .pth files come from torch.save (plus hand-made zips for ZIP64, deflate and corrupt cases);
the expected values go into expected.safetensors, written by the tiny writer below so the C++
tests compare against something independent of the C++ readers.
"""
import collections
import io
import json
import os
import pickle
import struct
import zipfile
import zlib

import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "io")
ST_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
             torch.float64: "F64", torch.int64: "I64", torch.int32: "I32", torch.int8: "I8",
             torch.uint8: "U8"}


def tensor_bytes(t):
    t = t.contiguous()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def write_safetensors(path, tensors, metadata=None):
    """Minimal safetensors writer: {name: tensor} in insertion order, 8-byte aligned header."""
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        b = tensor_bytes(t)
        header[name] = {"dtype": ST_DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def expected_value(t):
    """What the C++ loader must produce: floating types as float32, integers unchanged."""
    return (t.float() if t.is_floating_point() else t).detach().clone()


def torch_save_bytes(obj, **kwargs):
    buf = io.BytesIO()
    torch.save(obj, buf, **kwargs)
    return buf.getvalue()


def zip_entries(data):
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return [(i.filename, z.read(i.filename)) for i in z.infolist()]


def write_zip(path, entries, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression=compression) as z:
        for name, data in entries:
            z.writestr(zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0)), data,
                       compress_type=compression)


def write_zip64(path, entries):
    """A stored zip whose local and central headers both use ZIP64 extra fields (sizes and
    offsets 0xffffffff), with ZIP64 end records, as large torch checkpoints have."""
    out, central = bytearray(), bytearray()
    for name, data in entries:
        nb, crc = name.encode(), zlib.crc32(data)
        offset = len(out)
        extra = struct.pack("<HHQQ", 1, 16, len(data), len(data))
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 0, 0, 0, crc, 0xFFFFFFFF,
                           0xFFFFFFFF, len(nb), len(extra)) + nb + extra + data
        cextra = struct.pack("<HHQQQ", 1, 24, len(data), len(data), offset)
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 0, 0, 0, crc,
                               0xFFFFFFFF, 0xFFFFFFFF, len(nb), len(cextra), 0, 0, 0, 0,
                               0xFFFFFFFF) + nb + cextra
    cd_offset, n = len(out), len(entries)
    out += central
    end64 = len(out)
    out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, n, n, len(central), cd_offset)
    out += struct.pack("<IIQI", 0x07064B50, 0, end64, 1)
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    with open(path, "wb") as f:
        f.write(out)
    with zipfile.ZipFile(path) as z:  # sanity check of the writer itself
        assert [(i.filename, z.read(i.filename)) for i in z.infolist()] == list(entries)


class RunsCommand:
    """Unpickling this with pickle.load would run a shell command."""
    def __reduce__(self):
        return (os.system, ("touch /tmp/qvit_io_fixture_pwned",))


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(6, 4)
        self.norm = torch.nn.LayerNorm(4)
        self.register_buffer("index", torch.arange(5, dtype=torch.int64).reshape(5, 1) - 2)

    def forward(self, x):
        return self.norm(self.fc(x))


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    expected = {}

    def save(name, obj, sd, **kwargs):
        data = torch_save_bytes(obj, **kwargs)
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
        for k, t in sd.items():
            expected[f"{name}/{k}"] = expected_value(t)
        return data

    # A bare state dict (an OrderedDict with _metadata, pickled with BUILD).
    model = Tiny()
    sd = model.state_dict()
    bare = save("bare.pth", sd, sd)

    # The DeiT/timm training layout: {"model": sd} beside non-tensor entries and optimizer state.
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 6)).sum().backward()
    opt.step()
    sd = model.state_dict()
    wrapped = {"model": sd, "optimizer": opt.state_dict(), "epoch": 3, "best_acc": 72.25,
               "step": 2 ** 40, "seed": -7, "hash": 2 ** 80, "name": "tiny", "done": True,
               "note": None, "history": [1, 2.5, "x"], "pair": (1, 2)}
    save("wrapped.pth", wrapped, sd)

    # Parameters (pickled through _rebuild_parameter) in a plain dict.
    params = {"weight": torch.nn.Parameter(torch.randn(3, 2)),
              "frozen": torch.nn.Parameter(torch.randn(2), requires_grad=False)}
    save("params.pth", params, {k: v.detach() for k, v in params.items()})

    # Every supported element type.
    special = torch.tensor([0.0, 1.0, -2.0, 0.5, 65504.0, 6e-8, float("inf"), float("nan")])
    dtypes = {"f32": torch.randn(2, 3), "f16": special.half(), "bf16": torch.randn(5).bfloat16(),
              "f64": torch.tensor([1e-3, -1e300, 1e300, 3.25], dtype=torch.float64),
              "i64": torch.tensor([-(2 ** 62), -1, 0, 2 ** 40], dtype=torch.int64),
              "i32": torch.tensor([[-5, 7], [2 ** 30, -(2 ** 31)]], dtype=torch.int32),
              "i8": torch.tensor([-128, -1, 0, 127], dtype=torch.int8),
              "u8": torch.tensor([0, 1, 200, 255], dtype=torch.uint8)}
    save("dtypes.pth", dtypes, dtypes)

    # Views: transposed, offset and strided slices sharing one storage; scalars; empty tensors.
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    cube = torch.arange(60, dtype=torch.float32).reshape(3, 4, 5)
    views = {"base": base, "transposed": base.t(), "row2": base[2], "block": base[1:3, 2:5],
             "every_other": base[:, ::2], "permuted": cube.permute(2, 0, 1), "tail": cube[1:, 2],
             "scalar": torch.tensor(3.5), "empty": torch.zeros(0, 3),
             "half_t": torch.arange(6, dtype=torch.float32).reshape(2, 3).half().t()}
    assert views["row2"].storage_offset() == 12 and not views["transposed"].is_contiguous()
    save("views.pth", views, views)

    # Hand-made archive variants of the bare state dict.
    entries = zip_entries(bare)
    prefix = entries[0][0].split("/")[0]
    write_zip(os.path.join(OUT, "deflate.pth"), entries, zipfile.ZIP_DEFLATED)
    write_zip64(os.path.join(OUT, "zip64.pth"), entries)
    write_zip(os.path.join(OUT, "missing_storage.pth"),
              [e for e in entries if e[0] != f"{prefix}/data/0"])
    pkl = dict(entries)[f"{prefix}/data.pkl"]

    def with_pickle(name, data):
        write_zip(os.path.join(OUT, name), [(n, data if n.endswith("/data.pkl") else d)
                                            for n, d in entries])
    with_pickle("pickle_truncated.pth", pkl[: len(pkl) // 2])
    with_pickle("pickle_bad_opcode.pth", pkl[:2] + b"\xff" + pkl[2:])
    with_pickle("pickle_not_dict.pth", pickle.dumps([1, 2, 3], protocol=2))
    with_pickle("pickle_no_tensors.pth", pickle.dumps({"epoch": 3, "lr": 0.5}, protocol=2))

    # Pickles that would run a command: via GLOBAL (protocol 2, what torch.save writes) and via
    # STACK_GLOBAL (protocol 4), beside real tensors.
    save("forbidden.pth", {"model": {"w": torch.ones(2)}, "hook": RunsCommand()}, {})
    with_pickle("forbidden_p4.pth", pickle.dumps({"x": RunsCommand()}, protocol=4))

    # torch < 1.6 layout.
    save("legacy.pth", {"w": torch.ones(2)}, {}, _use_new_zipfile_serialization=False)

    # safetensors written by the independent writer above, with metadata and odd shapes.
    st = dict(dtypes)
    st.update({"arange": torch.arange(12, dtype=torch.float32).reshape(3, 4),
               "scalar": torch.tensor(2.5), "empty": torch.zeros(0, 3)})
    write_safetensors(os.path.join(OUT, "dtypes.safetensors"), st,
                      {"format": "pt", "note": "qvit io fixture"})
    for k, t in st.items():
        expected[f"dtypes.safetensors/{k}"] = expected_value(t)

    write_safetensors(os.path.join(OUT, "expected.safetensors"), expected)
    for name in sorted(os.listdir(OUT)):
        print(f"{os.path.getsize(os.path.join(OUT, name)):8d}  {name}")


if __name__ == "__main__":
    main()
