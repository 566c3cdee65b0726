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
# ARM: assembly sources, GNU cross binutils (binutils-arm-linux-gnueabi,
# binutils-aarch64-linux-gnu).
LFLAGS="-pie -z norelro -z max-page-size=0x10 -z common-page-size=0x10
  --hash-style=gnu --build-id=none -e entry"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for v in old new; do
  gcc $FLAGS -o x64_$v $v.c
  $CC32 $FLAGS -o x86_$v $v.c
  for a in a32 t32; do
    arm-linux-gnueabi-as -o "$tmp/${a}_$v.o" ${a}_$v.s
    arm-linux-gnueabi-ld $LFLAGS -o ${a}_$v "$tmp/${a}_$v.o"
  done
  aarch64-linux-gnu-as -o "$tmp/a64_$v.o" a64_$v.s
  aarch64-linux-gnu-ld $LFLAGS -o a64_$v "$tmp/a64_$v.o"
  for a in x64 x86 a32 t32 a64; do python3 refs.py ${a}_$v > ${a}_$v.refs; done
done
