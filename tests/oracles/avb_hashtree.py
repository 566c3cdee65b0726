#!/usr/bin/env python3
"""Independent writer and reader of AVB hashtree footers, used as a test oracle.

avbtool is not packaged on PyPI or Debian, so this follows the format facts of
AOSP external/avb (libavb avb_footer.h, avb_vbmeta_image.h,
avb_hashtree_descriptor.h, avbtool's add_hashtree_footer); the hash tree, FEC
parity and root digest come from elsewhere (cryptsetup's veritysetup in the
tests).

Layout written by `make` (all integers big-endian):
  data (image_size bytes, a multiple of the block size)
  | hash tree at tree_offset = image_size
  | FEC parity at image_size + tree_size, zero-padded to a block
  | vbmeta blob: 256-byte header, authentication block (empty: algorithm NONE,
    or 64 bytes of a fake hash/signature with --signed), auxiliary block
    holding one hashtree descriptor, padded to 64
  | zeros | footer in the last 64 bytes.
Footer: "AVBf", u32 major 1, u32 minor 0, u64 original image size,
u64 vbmeta offset, u64 vbmeta size, 28 reserved bytes.
Hashtree descriptor: u64 tag 1, u64 num_bytes_following (multiple of 8),
u32 dm-verity version 1, u64 image size, u64 tree offset, u64 tree size,
u32 data block size, u32 hash block size, u32 FEC roots, u64 FEC offset,
u64 FEC size, 32-byte NUL-padded algorithm name, u32 name length, u32 salt
length, u32 root digest length, u32 flags, 60 reserved bytes, then name, salt,
root digest, zero padding.
"""
import argparse
import json
import struct
import sys

DESC = "!QQLQQQLLLQQ32sLLLL60s"
HEADER = "!4sLLQQLQQQQQQQQQQQLL48s80x"
FOOTER = "!4sLLQQQ28x"


def rnd(n, m):
    return (n + m - 1) // m * m


def descriptor(a, image_size, tree_size, fec_offset, fec_size, root):
    name, salt = a.name.encode(), bytes.fromhex(a.salt)
    following = struct.calcsize(DESC) - 16 + len(name) + len(salt) + len(root)
    padded = rnd(following, 8)
    head = struct.pack(DESC, 1, padded, 1, image_size, image_size, tree_size,
                       a.block_size, a.block_size, a.roots, fec_offset, fec_size,
                       a.algorithm.encode(), len(name), len(salt), len(root), 0, b"")
    return head + name + salt + root + b"\0" * (padded - following)


def vbmeta(desc, signed):
    auth = b"\x5a" * 64 if signed else b""
    aux = desc + b"\0" * (rnd(len(desc), 64) - len(desc))
    alg = 1 if signed else 0  # 1 = SHA256_RSA2048
    hash_size, sig_size = (32, 32) if signed else (0, 0)
    head = struct.pack(HEADER, b"AVB0", 1, 0, len(auth), len(aux), alg, 0, hash_size,
                       hash_size, sig_size, 0, 0, 0, 0, 0, len(desc), 0, 0, 0,
                       b"avbtool 1.3.0".ljust(48, b"\0"))
    return head + auth + aux


def make(a):
    data = open(a.data, "rb").read()
    tree = open(a.tree, "rb").read()
    fec = open(a.fec, "rb").read() if a.fec else b""
    image_size = rnd(len(data), a.block_size)
    out = data + b"\0" * (image_size - len(data)) + tree
    fec_offset = len(out) if fec else 0
    out += fec + b"\0" * (rnd(len(fec), a.block_size) - len(fec))
    blob = vbmeta(descriptor(a, image_size, len(tree), fec_offset, len(fec),
                             bytes.fromhex(a.root)), a.signed)
    vbmeta_offset = len(out)
    out += blob
    if len(out) + 64 > a.partition_size:
        sys.exit("partition too small")
    out += b"\0" * (a.partition_size - 64 - len(out))
    out += struct.pack(FOOTER, b"AVBf", 1, 0, a.original_size or len(data),
                       vbmeta_offset, len(blob))
    open(a.out, "wb").write(out)


def parse(a):
    img = open(a.image, "rb").read()
    magic, major, minor, orig, off, size = struct.unpack(FOOTER, img[-64:])
    assert magic == b"AVBf", magic
    blob = img[off:off + size]
    h = struct.unpack(HEADER, blob[:256])
    assert h[0] == b"AVB0"
    auth_size, desc_off, desc_size = h[3], h[14], h[15]
    pos = 256 + auth_size + desc_off
    end = pos + desc_size
    while pos < end:
        tag, following = struct.unpack("!QQ", blob[pos:pos + 16])
        if tag == 1:
            f = struct.unpack(DESC, blob[pos:pos + struct.calcsize(DESC)])
            var = blob[pos + struct.calcsize(DESC):]
            nl, sl, rl = f[12], f[13], f[14]
            print(json.dumps({
                "original_image_size": orig, "vbmeta_offset": off, "vbmeta_size": size,
                "image_size": f[3], "tree_offset": f[4], "tree_size": f[5],
                "data_block_size": f[6], "hash_block_size": f[7], "fec_num_roots": f[8],
                "fec_offset": f[9], "fec_size": f[10],
                "hash_algorithm": f[11].rstrip(b"\0").decode(),
                "partition_name": var[:nl].decode(), "salt": var[nl:nl + sl].hex(),
                "root_digest": var[nl + sl:nl + sl + rl].hex()}))
            return
        pos += 16 + following
    sys.exit("no hashtree descriptor")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("out")
    for k in ("--data", "--tree", "--root", "--salt", "--name", "--algorithm"):
        m.add_argument(k, required=True)
    m.add_argument("--fec")
    m.add_argument("--roots", type=int, default=0)
    m.add_argument("--block-size", type=int, default=4096)
    m.add_argument("--partition-size", type=int, required=True)
    m.add_argument("--original-size", type=int, default=0)
    m.add_argument("--signed", action="store_true")
    r = sub.add_parser("parse")
    r.add_argument("image")
    a = p.parse_args()
    make(a) if a.cmd == "make" else parse(a)


if __name__ == "__main__":
    main()
