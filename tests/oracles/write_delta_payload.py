#!/usr/bin/env python3
"""Independent writer of Android update_engine *incremental* payloads, used as
a test oracle: applied to the old images, what this writes must give exactly
the new images.

Format facts relied on, besides those in write_payload.py (AOSP
system/update_engine: update_metadata.proto, payload_consumer/delta_performer.cc,
payload_generator/delta_diff_utils.cc; bsdiff/bspatch; AOSP external/bsdiff):

* An incremental PartitionUpdate carries old_partition_info (size, sha256 of
  the whole old image) besides new_partition_info; minor_version > 0.
* Operations that read the old image list src_extents and carry
  src_sha256_hash = sha256(the bytes of the src extents, concatenated).
* SOURCE_COPY: dst bytes = src bytes (same block count), no data blob.
  MOVE (minor version 1, in place): the same, reading the partition before any
  later write. BSDIFF (minor 1) / SOURCE_BSDIFF (minor >= 2): data = a
  BSDIFF40 patch (bsdiff 4.x: "BSDIFF40", three bzip2 streams) turning the src
  bytes into the dst bytes. BROTLI_BSDIFF (minor >= 4): data = an AOSP BSDF2
  patch: "BSDF2" + one compression byte per stream (0 none, 1 bz2, 2 brotli),
  the same three 8-byte sign-magnitude lengths as BSDIFF40, then the control,
  diff and extra streams; here each is brotli-compressed.
* REPLACE_XZ / ZERO as in full payloads.

Usage: write_delta_payload.py OUT --part NAME=OLD.img:NEW.img[:KINDS] ...
KINDS cycles per chunk of the new image over copy, move, bsdiff, brotli, xz,
zero: `copy`/`move` use SOURCE_COPY/MOVE when the chunk is found (block
aligned) in the old image, else fall back to a diff; a diff op reads the old
image at the same offset (or its last chunk when the old image is shorter).
"""
import argparse
import bz2
import hashlib
import lzma
import os
import struct
import sys

import brotli
import bsdiff4

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from write_payload import OP, PB, properties, write_zip  # noqa: E402


def offtin_fields(header):
    """The three sign-magnitude lengths of a BSDIFF40 header."""
    out = []
    for i in range(3):
        raw = header[8 + 8 * i:16 + 8 * i]
        v = struct.unpack("<Q", raw)[0]
        out.append(-(v & ~(1 << 63)) if v >> 63 else v)
    return out


def offtout(v):
    return struct.pack("<Q", (-v) | (1 << 63) if v < 0 else v)


def bsdf2_brotli(bsdiff40):
    """Re-wraps a BSDIFF40 patch as BSDF2 with brotli-compressed streams."""
    assert bsdiff40[:8] == b"BSDIFF40"
    ctrl_len, diff_len, new_size = offtin_fields(bsdiff40[:32])
    body = bsdiff40[32:]
    ctrl = bz2.decompress(body[:ctrl_len])
    diff = bz2.decompress(body[ctrl_len:ctrl_len + diff_len])
    extra = bz2.decompress(body[ctrl_len + diff_len:])
    c, d, e = (brotli.compress(x, quality=9) for x in (ctrl, diff, extra))
    return b"BSDF2" + bytes([2, 2, 2]) + offtout(len(c)) + offtout(len(d)) + offtout(new_size) + c + d + e


def find_aligned(old, chunk, prefer, bs, search=True):
    if old[prefer:prefer + len(chunk)] == chunk:
        return prefer
    if not search:
        return None
    at = old.find(chunk)
    while at >= 0:
        if at % bs == 0:
            return at
        at = old.find(chunk, at + 1)
    return None


def extents(start, length, bs):
    return [(start // bs, length // bs)]


class Writer:
    def __init__(self, args):
        self.args = args
        self.blobs = []
        self.offset = 0
        self.counts = {}
        self.mangled = False

    def blob(self, op, data):
        mangle = self.args.mangle
        if mangle and not self.mangled and op.type != OP["REPLACE_XZ"]:
            self.mangled = True
            if mangle == "truncate":
                data = data[:len(data) // 2]
            elif mangle == "huge" and data[:5] in (b"BSDIF", b"BSDF2"):
                data = data[:24] + offtout(1 << 40) + data[32:]
            elif mangle == "garbage":
                data = data[:8] + bytes(b ^ 0x5A for b in data[8:])
            else:
                self.mangled = False
        op.data_offset, op.data_length = self.offset, len(data)
        op.data_sha256_hash = hashlib.sha256(data).digest()
        self.blobs.append(data)
        self.offset += len(data)

    def add_op(self, part, kind, old, src, dst, data=None):
        op = part.operations.add(type=OP[kind])
        for s, n in src:
            op.src_extents.add(start_block=s, num_blocks=n)
        for s, n in dst:
            op.dst_extents.add(start_block=s, num_blocks=n)
        bs = self.args.block_size
        if src:
            src_bytes = b"".join(old[s * bs:(s + n) * bs] for s, n in src)
            op.src_length = len(src_bytes)
            op.src_sha256_hash = hashlib.sha256(src_bytes).digest()
        op.dst_length = sum(n for _, n in dst) * bs
        if data is not None:
            self.blob(op, data)
        self.counts[kind] = self.counts.get(kind, 0) + 1
        return op

    def partition(self, manifest, name, old, new, kinds):
        bs, chunk = self.args.block_size, self.args.chunk
        in_place = self.args.minor_version == 1
        part = manifest.partitions.add(partition_name=name)
        part.old_partition_info.size = len(old)
        part.old_partition_info.hash = hashlib.sha256(old).digest()
        part.new_partition_info.size = len(new)
        part.new_partition_info.hash = hashlib.sha256(new).digest()
        written = []  # dst byte ranges written so far (in-place hazards)

        def clean(start, length):
            return all(start + length <= a or b <= start for a, b in written)

        for i, at in enumerate(range(0, len(new), chunk)):
            cur = new[at:at + chunk]
            n = len(cur)
            dst = extents(at, n, bs)
            kind = kinds[i % len(kinds)]
            if kind == "zero" and cur.count(0) == n:
                self.add_op(part, "ZERO", old, [], dst)
                written.append((at, at + n))
                continue
            if kind in ("copy", "move"):
                src_at = find_aligned(old, cur, at, bs, not self.args.no_search)
                if src_at is not None and (not in_place or clean(src_at, n)):
                    k = "MOVE" if in_place else "SOURCE_COPY"
                    self.add_op(part, k, old, extents(src_at, n, bs), dst)
                    written.append((at, at + n))
                    continue
                kind = "bsdiff"
            if kind in ("bsdiff", "brotli"):
                src_at = at if at + n <= len(old) else max(0, (len(old) - n) // bs * bs)
                src_n = min(n, len(old) - src_at)
                if src_n > 0 and (not in_place or clean(src_at, src_n)):
                    patch = bsdiff4.diff(old[src_at:src_at + src_n], cur)
                    if kind == "brotli" and not in_place:
                        k, patch = "BROTLI_BSDIFF", bsdf2_brotli(patch)
                    else:
                        k = "BSDIFF" if in_place else "SOURCE_BSDIFF"
                    self.add_op(part, k, old, extents(src_at, src_n, bs), dst, patch)
                    written.append((at, at + n))
                    continue
            self.add_op(part, "REPLACE_XZ", old, [], dst,
                        lzma.compress(cur, format=lzma.FORMAT_XZ, check=lzma.CHECK_NONE))
            written.append((at, at + n))


def blob_partition(w, manifest, spec):
    """NAME=OLD:NEW:TYPE:BLOB: one operation of TYPE with the given data,
    reading all of OLD and writing all of NEW, both zero-padded to blocks."""
    bs = w.args.block_size
    name, _, rest = spec.partition("=")
    old_path, new_path, kind, blob_path = rest.split(":")
    pad = lambda b: b + bytes(-len(b) % bs)
    with open(old_path, "rb") as f:
        old = pad(f.read())
    with open(new_path, "rb") as f:
        new = pad(f.read())
    with open(blob_path, "rb") as f:
        blob = f.read()
    part = manifest.partitions.add(partition_name=name)
    part.old_partition_info.size = len(old)
    part.old_partition_info.hash = hashlib.sha256(old).digest()
    part.new_partition_info.size = len(new)
    part.new_partition_info.hash = hashlib.sha256(new).digest()
    w.add_op(part, kind, old, extents(0, len(old), bs), extents(0, len(new), bs), blob)
    return old, new


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--block-size", type=int, default=4096)
    ap.add_argument("--chunk", type=int, default=1 << 20)
    ap.add_argument("--minor-version", type=int, default=6)
    ap.add_argument("--part", action="append", default=[],
                    metavar="NAME=OLD.img:NEW.img[:KINDS]")
    ap.add_argument("--blob-part", action="append", default=[],
                    metavar="NAME=OLD:NEW:TYPE:BLOB",
                    help="one TYPE operation with a given patch; writes NAME.old.img and "
                         "NAME.new.img (zero-padded) beside OUT")
    ap.add_argument("--mangle", choices=["truncate", "huge", "garbage"],
                    help="damage the first patch blob (hashes still match it)")
    ap.add_argument("--overlap", action="store_true",
                    help="make the second operation of the first partition also write "
                         "the first one's first block")
    ap.add_argument("--partial", action="store_true", help="set partial_update")
    ap.add_argument("--no-search", action="store_true",
                    help="copy/move only from the same offset (fast on big images)")
    ap.add_argument("--zip", metavar="OUT.zip")
    args = ap.parse_args()
    if args.chunk % args.block_size:
        sys.exit("--chunk must be a multiple of --block-size")
    manifest = PB["DeltaArchiveManifest"](block_size=args.block_size,
                                          minor_version=args.minor_version)
    if args.partial:
        manifest.partial_update = True
    w = Writer(args)
    for spec in args.part:
        name, _, rest = spec.partition("=")
        fields = rest.split(":")
        if len(fields) < 2:
            sys.exit("bad --part %r" % spec)
        kinds = (fields[2] if len(fields) > 2 else "copy,bsdiff,brotli").split(",")
        with open(fields[0], "rb") as f:
            old = f.read()
        with open(fields[1], "rb") as f:
            new = f.read()
        if len(old) % args.block_size or len(new) % args.block_size:
            sys.exit("%s: image sizes must be multiples of the block size" % name)
        w.partition(manifest, name, old, new, kinds)
    for spec in args.blob_part:
        old, new = blob_partition(w, manifest, spec)
        name = spec.partition("=")[0]
        for suffix, img in (("old", old), ("new", new)):
            with open(os.path.join(os.path.dirname(os.path.abspath(args.out)),
                                   "%s.%s.img" % (name, suffix)), "wb") as f:
                f.write(img)
    if args.overlap:
        ops = manifest.partitions[0].operations
        ops[1].dst_extents.add(start_block=ops[0].dst_extents[0].start_block, num_blocks=1)
    data = b"".join(w.blobs)
    mb = manifest.SerializeToString()
    metadata = b"CrAU" + struct.pack(">QQI", 2, len(mb), 0) + mb
    payload = metadata + data
    with open(args.out, "wb") as f:
        f.write(payload)
    if args.zip:
        write_zip(args.zip, payload, properties(payload, len(metadata)))
    print("%s: %d bytes; %s" % (args.out, len(payload),
                                 ", ".join("%s %d" % kv for kv in sorted(w.counts.items()))))


if __name__ == "__main__":
    main()
