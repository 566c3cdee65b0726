#!/bin/sh
# Rebuilds the ELF test files and their reference lists (see README.md).
# Needs gcc with -m32 support (x86-64 host: gcc-multilib, or
# gcc-i686-linux-gnu with CC32=i686-linux-gnu-gcc), binutils and python3.
set -eu
cd "$(dirname "$0")"
CC32=${CC32:-gcc -m32}
FLAGS="-O1 -fPIE -pie -nostdlib -nostartfiles -fno-asynchronous-unwind-tables
  -fno-stack-protector -Wl,--build-id=none -Wl,-e,entry -Wl,-z,noseparate-code
  -Wl,-z,norelro -Wl,-z,max-page-size=0x10 -Wl,-z,common-page-size=0x10
  -Wl,--hash-style=gnu"
for v in old new; do
  gcc $FLAGS -o x64_$v $v.c
  $CC32 $FLAGS -o x86_$v $v.c
  for a in x64 x86; do python3 refs.py ${a}_$v > ${a}_$v.refs; done
done
