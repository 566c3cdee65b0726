#!/usr/bin/env python3
"""Independent writer of Android update_engine full payloads (payload.bin), used
as a test oracle: whatever this writes, romkit must extract byte-identically.

Format facts relied on (from AOSP system/update_engine: update_metadata.proto,
payload_generator/payload_signer.cc, payload_generator/payload_properties.cc,
payload_consumer/delta_performer.cc):

* File layout, all integers big-endian:
      "CrAU" | u64 major_version (= 2) | u64 manifest_size
      | u32 metadata_signature_size | manifest (serialized DeltaArchiveManifest)
      | metadata signature (serialized Signatures, metadata_signature_size bytes)
      | data blobs | payload signature (serialized Signatures)
  "metadata" = header (24 bytes) + manifest; metadata_size = 24 + manifest_size.
* InstallOperation.data_offset is relative to the start of the data section,
  i.e. to metadata_size + metadata_signature_size. Blobs are stored in op order.
  data_sha256_hash = sha256(blob); ops without a blob (ZERO) carry no hash.
* REPLACE = raw bytes, REPLACE_BZ = bzip2 stream, REPLACE_XZ = .xz container.
  update_engine's own generator writes xz with NO integrity check (XZ_CHECK_NO /
  LZMA_CHECK_NONE); --xz-check lets tests choose crc32/crc64 as well.
* Signing (RSA only, modulus 256 or 512 bytes): each signature blob is a
  Signatures message with one Signature{data = PKCS#1 v1.5 SHA-256 signature,
  unpadded_signature_size = len(data)} (the deprecated `version` is not set).
  - metadata signature signs sha256(payload[0 : metadata_size]); its blob size
    goes into the header's metadata_signature_size field.
  - payload signature signs sha256(metadata || data blobs), i.e. the whole file
    up to the payload signature, skipping the metadata signature.
  - manifest.signatures_offset = len(data blobs) (relative to the data section:
    the payload signature blob directly follows the last op blob) and
    manifest.signatures_size = its size. Both are in the signed manifest, so the
    blob size is computed from the key's modulus size before signing.
* payload_properties.txt (brillo_update_payload properties, key=value, sorted):
  FILE_HASH = b64(sha256(entire payload.bin)), FILE_SIZE = its size,
  METADATA_HASH = b64(sha256(header + manifest)) -- NOT including the metadata
  signature -- and METADATA_SIZE = 24 + manifest_size.
"""
import argparse
import base64
import bz2
import hashlib
import lzma
import struct
import subprocess
import sys
import zipfile

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PKG = "chromeos_update_engine"
F = descriptor_pb2.FieldDescriptorProto
OPT, REQ, REP = F.LABEL_OPTIONAL, F.LABEL_REQUIRED, F.LABEL_REPEATED
U64, U32, I64, FX32 = F.TYPE_UINT64, F.TYPE_UINT32, F.TYPE_INT64, F.TYPE_FIXED32
BYTES, STR, BOOL, MSG, ENUM = F.TYPE_BYTES, F.TYPE_STRING, F.TYPE_BOOL, F.TYPE_MESSAGE, F.TYPE_ENUM

OP_TYPES = [("REPLACE", 0), ("REPLACE_BZ", 1), ("MOVE", 2), ("BSDIFF", 3), ("SOURCE_COPY", 4),
            ("SOURCE_BSDIFF", 5), ("ZERO", 6), ("DISCARD", 7), ("REPLACE_XZ", 8), ("PUFFDIFF", 9),
            ("BROTLI_BSDIFF", 10), ("ZUCCHINI", 11), ("LZ4DIFF_BSDIFF", 12),
            ("LZ4DIFF_PUFFDIFF", 13), ("REPLACE_ZSTD", 14)]

# message -> [(field name, number, label, type, referenced type or None, default or None)]
EXT, PINFO, SIG = ".%s.Extent" % PKG, ".%s.PartitionInfo" % PKG, ".%s.Signatures.Signature" % PKG
SCHEMA = {
    "Extent": [("start_block", 1, OPT, U64), ("num_blocks", 2, OPT, U64)],
    "Signatures": [("signatures", 1, REP, MSG, SIG)],
    "Signatures.Signature": [("version", 1, OPT, U32), ("data", 2, OPT, BYTES),
                             ("unpadded_signature_size", 3, OPT, FX32)],
    "PartitionInfo": [("size", 1, OPT, U64), ("hash", 2, OPT, BYTES)],
    "InstallOperation": [
        ("type", 1, REQ, ENUM, ".%s.InstallOperation.Type" % PKG),
        ("data_offset", 2, OPT, U64), ("data_length", 3, OPT, U64),
        ("src_extents", 4, REP, MSG, EXT), ("src_length", 5, OPT, U64),
        ("dst_extents", 6, REP, MSG, EXT), ("dst_length", 7, OPT, U64),
        ("data_sha256_hash", 8, OPT, BYTES), ("src_sha256_hash", 9, OPT, BYTES)],
    "PartitionUpdate": [
        ("partition_name", 1, REQ, STR), ("run_postinstall", 2, OPT, BOOL),
        ("postinstall_path", 3, OPT, STR), ("filesystem_type", 4, OPT, STR),
        ("new_partition_signature", 5, REP, MSG, SIG),
        ("old_partition_info", 6, OPT, MSG, PINFO), ("new_partition_info", 7, OPT, MSG, PINFO),
        ("operations", 8, REP, MSG, ".%s.InstallOperation" % PKG),
        ("postinstall_optional", 9, OPT, BOOL),
        ("hash_tree_data_extent", 10, OPT, MSG, EXT), ("hash_tree_extent", 11, OPT, MSG, EXT),
        ("hash_tree_algorithm", 12, OPT, STR), ("hash_tree_salt", 13, OPT, BYTES),
        ("fec_data_extent", 14, OPT, MSG, EXT), ("fec_extent", 15, OPT, MSG, EXT),
        ("fec_roots", 16, OPT, U32, None, "2"), ("version", 17, OPT, STR),
        # 18 = repeated CowMergeOperation merge_operations (not modelled here)
        ("estimate_cow_size", 19, OPT, U64), ("estimate_op_count_max", 20, OPT, U64)],
    "DynamicPartitionGroup": [("name", 1, REQ, STR), ("size", 2, OPT, U64),
                              ("partition_names", 3, REP, STR)],
    "DynamicPartitionMetadata": [
        ("groups", 1, REP, MSG, ".%s.DynamicPartitionGroup" % PKG),
        ("snapshot_enabled", 2, OPT, BOOL), ("vabc_enabled", 3, OPT, BOOL),
        ("vabc_compression_param", 4, OPT, STR), ("cow_version", 5, OPT, U32),
        # 6 = VABCFeatureSet vabc_feature_set (not modelled here)
        ("compression_factor", 7, OPT, U64)],
    "DeltaArchiveManifest": [
        ("block_size", 3, OPT, U32, None, "4096"), ("signatures_offset", 4, OPT, U64),
        ("signatures_size", 5, OPT, U64), ("minor_version", 12, OPT, U32, None, "0"),
        ("partitions", 13, REP, MSG, ".%s.PartitionUpdate" % PKG),
        ("max_timestamp", 14, OPT, I64),
        ("dynamic_partition_metadata", 15, OPT, MSG, ".%s.DynamicPartitionMetadata" % PKG),
        ("partial_update", 16, OPT, BOOL),
        # 17 = repeated ApexInfo apex_info (not modelled here)
        ("security_patch_level", 18, OPT, STR)],
}


def build_classes():
    """Build the proto2 schema by hand (no protoc) and return {name: class}."""
    fdp = descriptor_pb2.FileDescriptorProto(name="romkit_oracle_update_metadata.proto",
                                             package=PKG, syntax="proto2")
    protos = {}
    for full in SCHEMA:  # parents are listed before their nested types
        parent, _, leaf = full.rpartition(".")
        container = protos[parent].nested_type if parent else fdp.message_type
        protos[full] = msg = container.add(name=leaf)
        for name, number, label, ftype, *rest in SCHEMA[full]:
            ref, default = (rest + [None, None])[:2]
            fld = msg.field.add(name=name, number=number, label=label, type=ftype)
            if ref:
                fld.type_name = ref
            if default is not None:
                fld.default_value = default
    enum = protos["InstallOperation"].enum_type.add(name="Type")
    for name, number in OP_TYPES:
        enum.value.add(name=name, number=number)
    pool = descriptor_pool.DescriptorPool()  # private pool: no clash with other copies
    pool.Add(fdp)
    return {n: message_factory.GetMessageClass(pool.FindMessageTypeByName(PKG + "." + n))
            for n in SCHEMA}


PB = build_classes()
OP = dict(OP_TYPES)
KINDS = {"raw": "REPLACE", "xz": "REPLACE_XZ", "bz2": "REPLACE_BZ", "zero": "ZERO"}
XZ_CHECKS = {"none": lzma.CHECK_NONE, "crc32": lzma.CHECK_CRC32, "crc64": lzma.CHECK_CRC64}


def encode(kind, chunk, xz_check):
    if kind == "xz":
        return lzma.compress(chunk, format=lzma.FORMAT_XZ, check=XZ_CHECKS[xz_check])
    if kind == "bz2":
        return bz2.compress(chunk, 9)
    return chunk


def build_partition(manifest, name, image, kinds, args, blobs, offset):
    """Append a PartitionUpdate for `image`; blobs go to `blobs`. Returns new offset."""
    bs = args.block_size
    part = manifest.partitions.add(partition_name=name)
    part.new_partition_info.size = len(image)
    part.new_partition_info.hash = hashlib.sha256(image).digest()
    covered = len(image)
    verity = dict(v.split("=", 1) for v in args.verity or []).get(name)
    if verity:
        # update_metadata.proto fields 10-16: the operations write the data
        # only; the device computes the tree over the data and the FEC over
        # data and tree (update_engine's verity writer), as delta_generator
        # leaves them to it.
        data, tree, fec, alg, salt, roots = verity.split(",")
        data, tree, fec = int(data), int(tree), int(fec)
        part.hash_tree_data_extent.start_block, part.hash_tree_data_extent.num_blocks = 0, data
        part.hash_tree_extent.start_block, part.hash_tree_extent.num_blocks = data, tree
        part.hash_tree_algorithm, part.hash_tree_salt = alg, bytes.fromhex(salt)
        if fec:
            part.fec_data_extent.start_block = 0
            part.fec_data_extent.num_blocks = data + tree
            part.fec_extent.start_block, part.fec_extent.num_blocks = data + tree, fec
            part.fec_roots = int(roots)
        covered = data * bs
    for i, start in enumerate(range(0, covered, args.chunk)):
        chunk = image[start:min(start + args.chunk, covered)]
        kind = kinds[i % len(kinds)]
        op = part.operations.add()
        op.dst_extents.add(start_block=start // bs, num_blocks=len(chunk) // bs)
        if kind == "zero":
            if chunk.count(0) == len(chunk):
                op.type = OP["ZERO"]
                continue
            kind = "raw"
        blob = encode(kind, chunk, args.xz_check)
        op.type = OP[KINDS[kind]]
        op.data_offset, op.data_length = offset, len(blob)
        op.data_sha256_hash = hashlib.sha256(blob).digest()
        blobs.append(blob)
        offset += len(blob)
    return offset


def rsa_size(key):
    out = subprocess.run(["openssl", "rsa", "-in", key, "-noout", "-modulus"],
                         check=True, capture_output=True, text=True).stdout
    return (int(out.strip().split("=", 1)[1], 16).bit_length() + 7) // 8


def sign_digest(key, digest):
    """PKCS#1 v1.5 signature with SHA-256 DigestInfo over a precomputed digest."""
    return subprocess.run(["openssl", "pkeyutl", "-sign", "-inkey", key,
                           "-pkeyopt", "digest:sha256"],
                          input=digest, check=True, capture_output=True).stdout


def signature_blob(sig, size):
    msg = PB["Signatures"]()
    msg.signatures.add(data=sig.ljust(size, b"\0"), unpadded_signature_size=len(sig))
    return msg.SerializeToString()


def build_payload(args):
    manifest = PB["DeltaArchiveManifest"](block_size=args.block_size, minor_version=0)
    if args.max_timestamp is not None:
        manifest.max_timestamp = args.max_timestamp
    blobs, offset, names = [], 0, []
    for spec in args.part:
        name, sep, rest = spec.partition("=")
        path, _, ops = rest.partition(":")
        kinds = [k.strip() for k in (ops or "xz,bz2,raw").split(",")]
        if not sep or not name or not path or name in names:
            sys.exit("bad or duplicate --part %r (want NAME=IMAGE[:OPS])" % spec)
        if any(k not in KINDS for k in kinds):
            sys.exit("unknown op kind in %r (choose from %s)" % (spec, ",".join(KINDS)))
        with open(path, "rb") as f:
            image = f.read()
        if len(image) % args.block_size:
            sys.exit("%s: size %d is not a multiple of block size %d"
                     % (path, len(image), args.block_size))
        offset = build_partition(manifest, name, image, kinds, args, blobs, offset)
        names.append(name)
    if args.group:
        gname, _, gsize = args.group.rpartition(":")
        if not gname:
            sys.exit("bad --group %r (want NAME:SIZE)" % args.group)
        manifest.dynamic_partition_metadata.groups.add(
            name=gname, size=int(gsize, 0), partition_names=names)
    data = b"".join(blobs)

    sig_size = 0
    if args.sign:
        key_size = rsa_size(args.sign)
        if key_size not in (256, 512):
            print("warning: update_engine only verifies 2048/4096-bit RSA", file=sys.stderr)
        sig_size = len(signature_blob(b"", key_size))  # fixed size: data padded to modulus
        manifest.signatures_offset, manifest.signatures_size = len(data), sig_size
    manifest_bytes = manifest.SerializeToString()
    metadata = b"CrAU" + struct.pack(">QQI", 2, len(manifest_bytes), sig_size) + manifest_bytes
    if not args.sign:
        return metadata + data, len(metadata)
    meta_sig = signature_blob(sign_digest(args.sign, hashlib.sha256(metadata).digest()), key_size)
    payload_sig = signature_blob(
        sign_digest(args.sign, hashlib.sha256(metadata + data).digest()), key_size)
    assert len(meta_sig) == len(payload_sig) == sig_size
    return metadata + meta_sig + data + payload_sig, len(metadata)


def properties(payload, metadata_size):
    b64 = lambda b: base64.b64encode(hashlib.sha256(b).digest()).decode()
    return ("FILE_HASH=%s\nFILE_SIZE=%d\nMETADATA_HASH=%s\nMETADATA_SIZE=%d\n"
            % (b64(payload), len(payload), b64(payload[:metadata_size]), metadata_size))


def write_zip(path, payload, props, align=4096):
    """OTA-style zip: payload.bin STORED with its data `align`-aligned (padding
    in a zipalign-style 0xD935 extra field), then payload_properties.txt."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zi = zipfile.ZipInfo("payload.bin", date_time=(2009, 1, 1, 0, 0, 0))
        fixed = zf.fp.tell() + 30 + len(zi.filename.encode()) + 6  # local header + extra head
        pad = -fixed % align
        zi.extra = struct.pack("<HHH", 0xD935, 2 + pad, align) + bytes(pad)
        zf.writestr(zi, payload)
        data_start = zi.header_offset + 30 + len(zi.filename.encode()) + len(zi.extra)
        zf.writestr(zipfile.ZipInfo("payload_properties.txt", date_time=(2009, 1, 1, 0, 0, 0)),
                    props)
    with open(path, "rb") as f:  # re-read the local header to confirm the alignment
        f.seek(zi.header_offset + 26)
        n, m = struct.unpack("<HH", f.read(4))
        if (zi.header_offset + 30 + n + m) % align:
            print("warning: payload.bin data is not %d-aligned" % align, file=sys.stderr)
    return data_start


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="output payload.bin")
    ap.add_argument("--block-size", type=int, default=4096)
    ap.add_argument("--chunk", type=int, default=1 << 20,
                    help="bytes per operation (multiple of the block size)")
    ap.add_argument("--part", action="append", required=True, metavar="NAME=IMAGE[:OPS]",
                    help="OPS cycles over raw,xz,bz2,zero per chunk (default xz,bz2,raw)")
    ap.add_argument("--group", metavar="NAME:SIZE",
                    help="dynamic partition group holding all partitions")
    ap.add_argument("--max-timestamp", type=int)
    ap.add_argument("--verity", action="append",
                    metavar="NAME=DATA,TREE,FEC,ALG,SALT,ROOTS",
                    help="hash tree (and FEC when FEC > 0 blocks) fields for NAME: "
                         "data, tree and FEC sizes in blocks, laid out in that order")
    ap.add_argument("--xz-check", choices=sorted(XZ_CHECKS), default="none",
                    help="xz integrity check (update_engine itself writes none)")
    ap.add_argument("--sign", metavar="KEY.pem", help="RSA private key (PEM)")
    ap.add_argument("--zip", metavar="OUT.zip", help="also write an OTA zip")
    args = ap.parse_args()
    if args.block_size <= 0 or args.chunk <= 0 or args.chunk % args.block_size:
        sys.exit("--chunk must be a positive multiple of --block-size")
    payload, metadata_size = build_payload(args)
    with open(args.out, "wb") as f:
        f.write(payload)
    props = properties(payload, metadata_size)
    if args.zip:
        write_zip(args.zip, payload, props)
    print("%s: %d bytes, metadata_size %d" % (args.out, len(payload), metadata_size))


if __name__ == "__main__":
    main()
