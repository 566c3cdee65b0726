#!/usr/bin/env python3
"""Lists the references Zucchini's ELF x86/x64 disassembler must find in an
ELF file, derived from binutils (readelf -SW / -rW, objdump -dw) rather than
from raw bytes:

  reloc <entry offset> <offset of r_offset>        every *_RELATIVE entry
  abs32 <offset of r_offset> <offset of its value> the pointer it relocates
  rel32 <offset of disp32> <offset of target>      per decoded instruction:
      E8/E9 rel32, 0F 8x rel32, and (x86-64) FF 15, FF 25, 89/8B/8D with a
      RIP-relative ModR/M whose disp32 ends the instruction; a jump/call
      target must lie in the same section.
  rel32:<type tag> <offset of instruction> <offset of target>   ARM
      (objdump of the cross binutils): ARM-mode B/BL/BLX(imm) and B<cond>
      are tag 2 (A24); Thumb2 16-bit B<cond> tag 3 (T8), 16-bit B tag 4
      (T11), 32-bit B<cond>.W tag 5 (T20), 32-bit B.W/BL/BLX tag 6 (T24);
      AArch64 TBZ/TBNZ tag 2 (Immd14), B.<cond>/CBZ/CBNZ tag 3 (Immd19),
      B/BL tag 4 (Immd26); the target must lie in an executable section.

All numbers are hexadecimal file offsets. Usage: refs.py ELF > ELF.refs
"""
import re
import subprocess
import sys

path = sys.argv[1]
data = open(path, "rb").read()
is64 = data[4] == 2
width = 8 if is64 else 4
machine = int.from_bytes(data[18:20], "little")
objdump = {40: "arm-linux-gnueabi-objdump", 183: "aarch64-linux-gnu-objdump"}.get(machine, "objdump")
RELATIVE = ("R_X86_64_RELATIVE", "R_386_RELATIVE", "R_ARM_RELATIVE", "R_AARCH64_RELATIVE")


def run(*args):
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


sections = []
for m in re.finditer(
    r"^\s*\[\s*\d+\]\s+(\S*)\s+(\S+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)",
    run("readelf", "-SW", path),
    re.M,
):
    name, typ, addr, off, size, es = m.groups()
    sections.append((name, typ, int(addr, 16), int(off, 16), int(size, 16), int(es, 16)))


def to_offset(rva):
    for name, typ, addr, off, size, _ in sections:
        if addr and size and typ != "NOBITS" and addr <= rva < addr + size:
            return off + rva - addr
    return None


def section_of(rva):
    for name, typ, addr, off, size, _ in sections:
        if addr and size and addr <= rva < addr + size:
            return name
    return None


out = []
relocs = run("readelf", "-rW", path)
for block in re.split(r"\n(?=Relocation section)", relocs):
    m = re.match(r"Relocation section '(\S+)' at offset 0x([0-9a-f]+)", block)
    if not m:
        continue
    sec = [s for s in sections if s[0] == m.group(1)][0]
    entries = [l for l in block.splitlines() if re.match(r"^[0-9a-f]{8,16}\s", l)]
    for i, line in enumerate(entries):
        r_offset, _, typ = line.split()[:3]
        if typ not in RELATIVE:
            continue
        loc = to_offset(int(r_offset, 16))
        out.append(("reloc", sec[3] + i * sec[5], loc))
        value = int.from_bytes(data[loc : loc + width], "little")
        target = to_offset(value)
        if target is not None:
            out.append(("abs32", loc, target))

text = run(objdump, "-dw", path)
exec_names = [m.group(1) for m in re.finditer(
    r"^\s*\[\s*\d+\]\s+(\S+)\s+PROGBITS\s.*\sA?X", run("readelf", "-SW", path), re.M)]
ARM_TAGS = {40: {"b": 2, "bl": 2, "blx": 2},
            183: {"tbz": 2, "tbnz": 2, "cbz": 3, "cbnz": 3, "b": 4, "bl": 4}}


CONDS = ("eq", "ne", "cs", "cc", "hs", "lo", "mi", "pl", "vs", "vc", "hi", "ls", "ge", "lt", "gt", "le")


def arm_branch(rest, hexwords):
    """(tag, target) of an ARM branch objdump line, or None. `hexwords`
    tells the encoding: one 8-digit word (ARM), one 4-digit halfword
    (16-bit Thumb2) or two (32-bit Thumb2)."""
    m = re.match(r"^([a-z.]+)\s+(?:.*,\s*)?([0-9a-f]+) <", rest)
    if not m:
        return None
    mn, target = m.group(1), int(m.group(2), 16)
    if machine == 183:
        if mn.startswith("b."):
            return 3, target
        tag = ARM_TAGS[183].get(mn)
        return None if tag is None else (tag, target)
    base = mn.split(".")[0]
    cond = len(base) == 3 and base[0] == "b" and base[1:] in CONDS
    if len(hexwords) == 1 and len(hexwords[0]) == 8:  # ARM mode
        return (2, target) if base in ("b", "bl", "blx") or cond or (
            base[:2] == "bl" and base[2:] in CONDS) else None
    if len(hexwords) == 1:  # 16-bit Thumb2
        return (3, target) if cond else (4, target) if base == "b" else None
    if cond:
        return 5, target
    return (6, target) if base in ("b", "bl", "blx") else None


current = None
for line in text.splitlines():
    m = re.match(r"^Disassembly of section (\S+):", line)
    if m:
        current = m.group(1)
        continue
    word = "[0-9a-f]+" if machine in ARM_TAGS else "[0-9a-f]{2}"
    m = re.match(r"^\s*([0-9a-f]+):\t((?:" + word + r" )+)\s*\t?(.*)$", line)
    if not m:
        continue
    addr = int(m.group(1), 16)
    if machine in ARM_TAGS:
        found = arm_branch(m.group(3), m.group(2).split())
        if found and section_of(found[1]) in exec_names:
            out.append((f"rel32:{found[0]}", to_offset(addr), to_offset(found[1])))
        continue
    b = [int(x, 16) for x in m.group(2).split()]
    n = len(b)
    cand = None
    if n == 5 and b[0] in (0xE8, 0xE9):
        cand = (1, False)
    elif n == 6 and b[0] == 0x0F and b[1] & 0xF0 == 0x80:
        cand = (2, False)
    elif is64:
        k = 1 if n > 1 and (0x40 <= b[0] <= 0x4F or b[0] == 0x66) else 0
        if n == k + 6 and (
            (b[k] == 0xFF and b[k + 1] in (0x15, 0x25))
            or (b[k] in (0x89, 0x8B, 0x8D) and b[k + 1] & 0xC7 == 0x05)
        ):
            cand = (k + 2, True)
    if cand is None:
        continue
    op, anywhere = cand
    disp = int.from_bytes(bytes(b[op : op + 4]), "little", signed=True)
    target_rva = (addr + n + disp) & 0xFFFFFFFF
    if not anywhere and section_of(target_rva) != current:
        continue
    target = to_offset(target_rva)
    if target is None:
        sys.exit(f"rel32 at {addr + op:#x}: target {target_rva:#x} has no file bytes")
    out.append(("rel32", to_offset(addr + op), target))

for kind, loc, target in sorted(out, key=lambda r: ("reloc", "abs32").index(r[0]) if r[0] in ("reloc", "abs32") else 2):
    print(f"{kind} {loc:x} {target:x}")
