#!/usr/bin/env bash
# Regenerates the seed corpus in fuzz/corpus/ from romkit's own writers
# (examples/fuzz_seeds.rs) plus ext4 images made by mke2fs/debugfs. Run
# `cargo fuzz cmin TARGET` afterwards to keep the committed corpus minimal.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${1:-fuzz/corpus}
cargo run --release --quiet --example fuzz_seeds -- "$OUT"

# ext4: in-inode xattrs (256-byte inodes, extents) and EA-block xattrs
# (128-byte inodes, ext2 block maps), reproducible.
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/src/etc" "$T/src/app"
printf 'ro.build.version.incremental=V14.0.5.0.TKHMIXM\n' >"$T/src/etc/build.prop"
head -c 3000 /dev/zero | tr '\0' 'r' >"$T/src/app/base.apk"
ln -s etc/build.prop "$T/src/prop"
mkdir -p "$OUT/ext4_xattr"
UUID=11111111-2222-3333-4444-555555555555
for kind in ext4:256 ext2:128; do
  fs=${kind%%:*}
  isize=${kind##*:}
  img="$T/$fs.img"
  E2FSPROGS_FAKE_TIME=1700000000 mke2fs -q -F -t "$fs" -b 1024 -N 16 -I "$isize" \
    -U "$UUID" -E hash_seed="$UUID" -d "$T/src" "$img" 128K
  for f in /etc/build.prop /app/base.apk /prop /; do
    debugfs -w -R "ea_set $f security.selinux u:object_r:system_file:s0" "$img" 2>/dev/null
  done
  debugfs -w -R "ea_set /app/base.apk user.long $(printf 'v%.0s' $(seq 1 200))" "$img" 2>/dev/null
  cp "$img" "$OUT/ext4_xattr/$fs-i$isize"
done
