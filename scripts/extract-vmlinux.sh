#!/usr/bin/env bash
# Extract the uncompressed vmlinux (an ELF that keeps .BTF) from a bzImage.
# Usage: extract-vmlinux.sh VMLINUZ OUT
# Tries every compressed stream the kernel's own build may use, at each
# offset where its magic occurs, and keeps the first result that is an ELF.
set -euo pipefail
in=$1 out=$2
[ -f "$in" ] || { echo "extract-vmlinux: no such file: $in" >&2; exit 1; }
try() { # magic(hex, grep -P form) decompressor...
  local magic=$1; shift
  local off
  for off in $(LC_ALL=C grep -obUaP "$magic" "$in" | cut -d: -f1 | head -n 8); do
    tail -c +$((off + 1)) "$in" | "$@" >"$out" 2>/dev/null || true
    if [ "$(head -c 4 "$out" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ]; then
      return 0
    fi
  done
  return 1
}
try '\x28\xb5\x2f\xfd' zstd -dcq && exit 0
try '\xfd\x37\x7a\x58\x5a\x00' xz -dcq && exit 0
try '\x1f\x8b\x08' gzip -dcq && exit 0
try '\x02\x21\x4c\x18' lz4 -dcq && exit 0
rm -f "$out"
echo "extract-vmlinux: no ELF kernel image found inside $in" >&2
exit 1
