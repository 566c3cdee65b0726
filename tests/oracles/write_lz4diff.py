#!/usr/bin/env python3
"""Independent writer of update_engine LZ4DIFF patches (the data of
LZ4DIFF_BSDIFF / LZ4DIFF_PUFFDIFF operations), used as a test oracle: applied
to OLD, a patch written here must give exactly NEW.

Format facts relied on (AOSP system/update_engine lz4diff/: lz4diff.proto,
lz4diff_format.h, lz4diff.cc, lz4patch.cc, lz4diff_compress.cc):

* Patch = "LZ4DIFF" (7 bytes) + u32 BE version (1) at offset 7 + u32 BE size
  of the protobuf header at offset 11 + one zero byte + the proto3
  Lz4diffHeader at offset 16 + the inner patch (bsdiff, or PUF1 for PUFFDIFF).
* Lz4diffHeader { CompressionInfo src_info = 1; dst_info = 2;
  InnerPatchType inner_type = 3 (BSDIFF 0, PUFFDIFF 1) }.
  CompressionInfo { CompressionAlgorithm algo = 1; repeated
  CompressedBlockInfo block_info = 2; bool zero_padding_enabled = 3 }.
  CompressionAlgorithm { Type type = 1 (UNCOMPRESSED 0, LZ4 1, LZ4HC 2);
  int32 level = 2 }. CompressedBlockInfo { uint64 uncompressed_offset = 1,
  uncompressed_length = 2, compressed_length = 3; bytes sha256_hash = 4;
  bytes postfix_bspatch = 5 }.
* The generator's inner bsdiff patch is BSDF2 with brotli streams (made
  here by re-wrapping a bsdiff4 BSDIFF40 patch); postfix patches are
  BSDIFF40.
* A block is compressed when compressed_length < uncompressed_length, else
  stored. The applier decompresses the source blocks (zero padding: skip
  leading zeros of a cluster), applies the inner patch, then compresses each
  destination block with LZ4_compress_destSize / LZ4_compress_HC_destSize
  (level) into compressed_length bytes, given every byte from the block's
  start to the end of the blocks; a shorter result is zero-padded in front
  (zero padding) or behind. The generator stores sha256(recompressed block)
  and, where that differs from the target block, postfix_bspatch =
  bsdiff(recompressed block, target block). Bytes after the last block pass
  through unchanged.

liblz4 is called through ctypes (the system library; its LZ4 and LZ4HC >= 3
output equals liblz4 1.10's); target blocks that are not destSize clusters
come from the PyPI `lz4` package; patches from PyPI `bsdiff4`.

Usage: write_lz4diff.py OUTDIR  (writes CASE.old, CASE.new, CASE.lz4diff and
CASE.kind for each case, plus hostile variants).
"""
import ctypes
import ctypes.util
import hashlib
import os
import random
import struct
import sys

import bsdiff4
import lz4.block
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from write_delta_payload import bsdf2_brotli  # noqa: E402
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

F = descriptor_pb2.FieldDescriptorProto
U64, I32, BYTES, BOOL, MSG, ENUM = (F.TYPE_UINT64, F.TYPE_INT32, F.TYPE_BYTES,
                                    F.TYPE_BOOL, F.TYPE_MESSAGE, F.TYPE_ENUM)
OPT, REP = F.LABEL_OPTIONAL, F.LABEL_REPEATED
PKG = "chromeos_update_engine"
SCHEMA = {
    "CompressionAlgorithm": [("type", 1, OPT, I32), ("level", 2, OPT, I32)],
    "CompressedBlockInfo": [("uncompressed_offset", 1, OPT, U64),
                            ("uncompressed_length", 2, OPT, U64),
                            ("compressed_length", 3, OPT, U64),
                            ("sha256_hash", 4, OPT, BYTES),
                            ("postfix_bspatch", 5, OPT, BYTES)],
    "CompressionInfo": [("algo", 1, OPT, MSG, "CompressionAlgorithm"),
                        ("block_info", 2, REP, MSG, "CompressedBlockInfo"),
                        ("zero_padding_enabled", 3, OPT, BOOL)],
    "Lz4diffHeader": [("src_info", 1, OPT, MSG, "CompressionInfo"),
                      ("dst_info", 2, OPT, MSG, "CompressionInfo"),
                      ("inner_type", 3, OPT, I32)],
}
BLOCK = 4096


def classes():
    fdp = descriptor_pb2.FileDescriptorProto(name="romkit_oracle_lz4diff.proto",
                                             package=PKG, syntax="proto3")
    for name, fields in SCHEMA.items():
        m = fdp.message_type.add(name=name)
        for fname, num, label, ftype, *ref in fields:
            f = m.field.add(name=fname, number=num, label=label, type=ftype)
            if ref:
                f.type_name = ".%s.%s" % (PKG, ref[0])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {n: message_factory.GetMessageClass(pool.FindMessageTypeByName(PKG + "." + n))
            for n in SCHEMA}


PB = classes()
LIB = ctypes.CDLL(ctypes.util.find_library("lz4") or "liblz4.so.1")


def dest_size(rest, cap, level):
    """liblz4's destSize compression of the start of `rest` into `cap`
    bytes: (compressed bytes, input bytes consumed). level None = LZ4."""
    out = ctypes.create_string_buffer(cap)
    n = ctypes.c_int(len(rest))
    if level is None:
        w = LIB.LZ4_compress_destSize(rest, out, ctypes.byref(n), cap)
    else:
        state = ctypes.create_string_buffer(LIB.LZ4_sizeofStateHC())
        w = LIB.LZ4_compress_HC_destSize(state, rest, out, ctypes.byref(n), cap, level)
    assert w > 0
    return out.raw[:w], n.value


def text(seed, n):
    rng = random.Random(seed)
    words = [bytes(rng.choice(b"etaoinshrdlucmfwyp ") for _ in range(rng.randint(2, 10)))
             for _ in range(400)]
    out = bytearray()
    while len(out) < n:
        out += rng.choice(words) + b" "
    return bytes(out[:n])


def erofs_clusters(plain, level, stored_at=()):
    """Clusters of exactly BLOCK bytes, zero padded in front (EROFS lz4 with
    0padding), made with destSize; blocks listed in stored_at are stored.
    A last cluster too small to be compressed is cut off (and every cluster
    made again, since each one sees the bytes up to the end).
    Returns (plain, image, blocks)."""
    while True:
        blocks, out, off = [], bytearray(), 0
        while off < len(plain):
            if len(blocks) in stored_at:
                chunk = plain[off:off + BLOCK]
                blocks.append((off, len(chunk), len(chunk)))
                out += chunk
                off += len(chunk)
                continue
            comp, used = dest_size(plain[off:], BLOCK, level)
            if used <= BLOCK:
                break
            blocks.append((off, used, BLOCK))
            out += bytes(BLOCK - len(comp)) + comp
            off += used
        if off == len(plain):
            return plain, bytes(out), blocks
        plain = plain[:off]


def info(blocks, algo_type, level, padding, hashes=None, postfix=None):
    ci = PB["CompressionInfo"](zero_padding_enabled=padding)
    ci.algo.type, ci.algo.level = algo_type, level
    for i, (off, ulen, clen) in enumerate(blocks):
        b = ci.block_info.add(uncompressed_offset=off, uncompressed_length=ulen,
                              compressed_length=clen)
        if hashes:
            b.sha256_hash = hashes[i]
        if postfix and postfix[i]:
            b.postfix_bspatch = postfix[i]
    return ci


def recompressed(plain, blocks, level, padding):
    """What the applier produces for each block (as lz4diff_compress.cc)."""
    end = blocks[-1][0] + blocks[-1][1]
    for off, ulen, clen in blocks:
        if clen >= ulen:
            yield plain[off:off + ulen]
            continue
        comp, _ = dest_size(plain[off:end], clen, level)
        pad = bytes(clen - len(comp))
        yield pad + comp if padding else comp + pad


def patch(header, inner):
    pb = header.SerializeToString()
    return b"LZ4DIFF" + struct.pack(">II", 1, len(pb)) + b"\0" + pb + inner


def case_erofs(level):
    """EROFS-like clusters on both sides, recompressed byte-exact: no postfix."""
    old_plain = text(1, 300_000)
    new_plain = bytearray(old_plain)
    for i in range(5000, len(new_plain), 37_000):
        new_plain[i:i + 300] = text(i, 300)
    new_plain = bytes(new_plain) + text(9, 20_000)
    old_plain, old, ob = erofs_clusters(old_plain, level, stored_at=(3,))
    new_plain, new, nb = erofs_clusters(new_plain, level, stored_at=(5,))
    hashes = [hashlib.sha256(new[sum(b[2] for b in nb[:i]):][:c]).digest()
              for i, (_, _, c) in enumerate(nb)]
    h = PB["Lz4diffHeader"](inner_type=0)
    h.src_info.CopyFrom(info(ob, 2, level, True))
    h.dst_info.CopyFrom(info(nb, 2, level, True, hashes))
    return old, new, patch(h, bsdf2_brotli(bsdiff4.diff(old_plain, new_plain)))


def case_postfix(fast):
    """Target blocks from the PyPI lz4 package (whole 8 KiB chunks, no
    destSize): the recompressed blocks differ, postfix patches fix them."""
    level = 9
    old_plain = text(2, 200_000)
    new_plain = old_plain[:70_000] + text(3, 9_000) + old_plain[70_000:150_000]
    old_plain, old, ob = erofs_clusters(old_plain, level)
    nb, new = [], bytearray()
    for off in range(0, len(new_plain), 8192):
        chunk = new_plain[off:off + 8192]
        comp = (lz4.block.compress(chunk, store_size=False) if fast else
                lz4.block.compress(chunk, mode="high_compression", compression=level,
                                   store_size=False))
        nb.append((off, len(chunk), len(comp)) if len(comp) < len(chunk)
                  else (off, len(chunk), len(chunk)))
        new += comp if len(comp) < len(chunk) else chunk
    algo = (1, 0) if fast else (2, level)
    again = list(recompressed(new_plain, nb, None if fast else level, False))
    hashes, postfix, at = [], [], 0
    for (off, ulen, clen), r in zip(nb, again):
        target = bytes(new[at:at + clen])
        at += clen
        hashes.append(hashlib.sha256(r).digest())
        postfix.append(bsdiff4.diff(r, target) if r != target else b"")
    assert any(postfix), "expected some recompressed block to differ"
    h = PB["Lz4diffHeader"](inner_type=0)
    h.src_info.CopyFrom(info(ob, 2, level, True))
    h.dst_info.CopyFrom(info(nb, *algo, False, hashes, postfix))
    # Pad to whole blocks (the operation writes whole blocks; the applier
    # leaves zeros after its output).
    new = bytes(new) + bytes(-len(new) % BLOCK)
    return old, new, patch(h, bsdf2_brotli(bsdiff4.diff(old_plain, new_plain)))


def case_puffdiff(vectors):
    """Inner PUF1 patch (AOSP puffin's vector) between stored blocks."""
    read = lambda p: open(os.path.join(vectors, p), "rb").read()
    old, new = read("aosp-puffin/deflates_sample1.bin"), read("aosp-puffin/deflates_sample2.bin")
    h = PB["Lz4diffHeader"](inner_type=1)
    h.src_info.CopyFrom(info([(0, len(old), len(old))], 0, 0, False))
    h.dst_info.CopyFrom(info([(0, len(new), len(new))], 0, 0, False))
    return old, new, patch(h, read("aosp-puffin/patch_1_to_2.puf"))


def hostile(old, good):
    """Damaged copies of a good patch (header only; the rest kept)."""
    pb_len = struct.unpack(">I", good[11:15])[0]
    h = PB["Lz4diffHeader"].FromString(good[16:16 + pb_len])
    inner = good[16 + pb_len:]
    past = PB["Lz4diffHeader"]()
    past.CopyFrom(h)
    past.src_info.block_info[-1].compressed_length += 8192
    past.src_info.block_info[-1].uncompressed_length += 1 << 20
    huge = PB["Lz4diffHeader"]()
    huge.CopyFrom(h)
    huge.dst_info.block_info[-1].uncompressed_length = 1 << 40
    return {
        "truncated": good[:12],
        "past": patch(past, inner),
        "huge": patch(huge, inner),
        "badpb": good[:16] + b"\xff" * pb_len + inner,
    }


def main():
    out = sys.argv[1]
    vectors = sys.argv[2]
    os.makedirs(out, exist_ok=True)
    cases = {
        "erofs_hc9": ("LZ4DIFF_BSDIFF",) + case_erofs(9),
        "erofs_hc12": ("LZ4DIFF_BSDIFF",) + case_erofs(12),
        "postfix_hc": ("LZ4DIFF_BSDIFF",) + case_postfix(False),
        "postfix_lz4": ("LZ4DIFF_BSDIFF",) + case_postfix(True),
        "puffdiff": ("LZ4DIFF_PUFFDIFF",) + case_puffdiff(vectors),
    }
    for name, (kind, old, new, p) in cases.items():
        for ext, data in (("old", old), ("new", new), ("lz4diff", p), ("kind", kind.encode())):
            with open(os.path.join(out, "%s.%s" % (name, ext)), "wb") as f:
                f.write(data)
    old, _, good = cases["erofs_hc9"][1:]
    for name, data in hostile(old, good).items():
        with open(os.path.join(out, "hostile_%s.lz4diff" % name), "wb") as f:
            f.write(data)
    print(" ".join(sorted(cases)))


if __name__ == "__main__":
    main()
