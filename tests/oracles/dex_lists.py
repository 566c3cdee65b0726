"""Independent oracle for tests/zucchini_dex.rs: the references Zucchini's DEX
disassembler finds in id items and variable-length lists (type lists,
annotation sets, annotation set-ref lists, annotations directories, proto
parameters, static values), computed with androguard's DEX parser (Debian's
androguard package, system python3).

usage: python3 dex_lists.py FILE.dex  ->  JSON {type_tag: [[location, target], ...]}
Index targets are the offset of the indexed id item; absent (0) offsets are
left out, as Zucchini leaves them out.
"""
import json
import logging
import struct
import sys

logging.disable(logging.CRITICAL)
from androguard.core.bytecodes.dvm import DalvikVMFormat  # noqa: E402

raw = open(sys.argv[1], "rb").read()
strings, types, protos, fields, methods, class_defs = (
    struct.unpack_from("<I", raw, at)[0] for at in (60, 68, 76, 84, 92, 100)
)
items = {m.get_type(): m.get_item() for m in DalvikVMFormat(raw).map_list.map_item}
refs = {}


def add(tag, location, target, skip_zero=True):
    if target == 0 and skip_zero:
        return
    refs.setdefault(tag, []).append([location, target])


for i, s in enumerate(items.get(0x0001, [])):
    add(37, strings + 4 * i, s.get_string_data_off())
for i, t in enumerate(items[0x0002].type if 0x0002 in items else []):
    add(0, types + 4 * i, strings + 4 * t.descriptor_idx)
for i, p in enumerate(items[0x0003].proto if 0x0003 in items else []):
    at = protos + 12 * i
    add(1, at, strings + 4 * p.shorty_idx)
    add(7, at + 4, types + 4 * p.return_type_idx)
    add(26, at + 8, p.parameters_off)
for k, c in enumerate(items[0x0006].class_def if 0x0006 in items else []):
    add(39, class_defs + 32 * k + 28, c.static_values_off)
for tl in items.get(0x1001, []):
    base = tl.get_type_list_off()
    for k, t in enumerate(tl.get_list()):
        add(13, base + 4 + 2 * k, types + 4 * t.get_type_idx())
for s in items.get(0x1003, []):
    for k, a in enumerate(s.get_annotation_off_item()):
        add(38, s.get_off() + 4 + 4 * k, a.get_annotation_off())
for s in items.get(0x1002, []):
    for k, a in enumerate(s.get_list()):
        add(29, s.get_off() + 4 + 4 * k, a.get_annotations_off())
for d in items.get(0x2006, []):
    base = d.get_off()
    add(30, base, d.get_class_annotations_off())
    at = base + 16
    for tag_idx, tag_set, members, table, size in (
        (19, 31, d.get_field_annotations(), fields, 8),
        (22, 32, d.get_method_annotations(), methods, 8),
        (23, 28, d.get_parameter_annotations(), methods, 8),
    ):
        for m in members:
            idx = m.field_idx if tag_idx == 19 else m.method_idx
            add(tag_idx, at, table + size * idx, skip_zero=False)
            add(tag_set, at + 4, m.annotations_off)
            at += 8
for v in refs.values():
    v.sort()
print(json.dumps(refs, sort_keys=True))
