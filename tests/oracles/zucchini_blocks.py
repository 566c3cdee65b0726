#!/usr/bin/env python3
"""Turns a Zucchini ensemble patch between two small files into the data of
an update_engine ZUCCHINI operation over whole blocks, used as a test oracle.

update_engine's ZUCCHINI operation reads every source block, and requires the
patch's new size to be the destination blocks' size (AOSP
payload_consumer/install_operation_executor.cc, ExecuteZucchiniOperation);
its data is the brotli-compressed ensemble patch. So the files are padded with
zeros to whole blocks, and the patch gets:

* a header with the padded sizes and their CRC-32s (zlib's), the magic and
  minor version kept and the major version as given (1: AOSP
  external/zucchini, 2: Chromium; the layout is the same);
* the original elements, byte for byte;
* one more raw ("NoOp", version 1) element from the old padding to the new
  padding: no equivalences, the padding's zeros as extra data, no raw or
  reference deltas, no extra-target pools (Chromium/AOSP zucchini
  patch_reader.cc: element header = u32 old offset, old length, new offset,
  new length, u32 executable type, u16 version; then the buffers src_skip,
  dst_skip, copy_count, extra_data, raw_delta_skip, raw_delta_diff,
  reference_delta, then u32 pool count; a buffer is a u32 size and bytes).

Usage: zucchini_blocks.py OLD NEW PATCH.zuc OUTDIR NAME MAJOR
Writes OUTDIR/NAME.old, NAME.new (padded) and NAME.zuc.br.
"""
import os
import struct
import sys
import zlib

import brotli

BLOCK = 4096


def buf(data=b""):
    return struct.pack("<I", len(data)) + data


def main():
    old_path, new_path, patch_path, out, name, major = sys.argv[1:7]
    old, new, patch = (open(p, "rb").read() for p in (old_path, new_path, patch_path))
    magic, _, minor, old_size, old_crc, new_size, new_crc = struct.unpack("<4sHHIIII", patch[:24])
    assert magic == b"Zucc"
    assert (old_size, old_crc) == (len(old), zlib.crc32(old)), "patch is not for OLD"
    assert (new_size, new_crc) == (len(new), zlib.crc32(new)), "patch is not for NEW"
    count = struct.unpack("<I", patch[24:28])[0]
    pad = lambda b: b + bytes(-len(b) % BLOCK or BLOCK)
    old_p, new_p = pad(old), pad(new)
    gap_new = len(new_p) - len(new)
    gap = (struct.pack("<IIII", len(old), len(old_p) - len(old), len(new), gap_new)
           + b"NoOp" + struct.pack("<H", 1)
           + buf() + buf() + buf()          # equivalences
           + buf(bytes(gap_new))            # extra data
           + buf() + buf()                  # raw deltas
           + buf()                          # reference deltas
           + struct.pack("<I", 0))          # extra-target pools
    header = struct.pack("<4sHHIIII", magic, int(major), minor, len(old_p), zlib.crc32(old_p),
                         len(new_p), zlib.crc32(new_p))
    ensemble = header + struct.pack("<I", count + 1) + patch[28:] + gap
    for ext, data in (("old", old_p), ("new", new_p), ("zuc.br", brotli.compress(ensemble))):
        with open(os.path.join(out, "%s.%s" % (name, ext)), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
