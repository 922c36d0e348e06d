#!/usr/bin/env bash
# Build the kernel's example sched_ext schedulers (tools/sched_ext) from
# Debian's linux-source-7.* package into CACHE/scx/bin. Nothing is installed
# on the host; a second run with the binaries present does nothing.
# Usage: build-scx-examples.sh CACHE VMLINUX
set -euo pipefail
cache=$1 vmlinux=$2
out=$cache/scx
log() { printf 'scx: %s\n' "$*" >&2; }
if [ -x "$out/bin/scx_simple" ] && [ -x "$out/bin/scx_central" ]; then exit 0; fi
src_pkg=$(apt-cache search --names-only '^linux-source-7\.[0-9]+$' | awk '{print $1}' | sort -V | tail -n1)
[ -n "$src_pkg" ] || { log "no linux-source-7.* package found; skipping"; exit 0; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
log "fetching $src_pkg"
(cd "$tmp" && apt-get download -qq "$src_pkg" 2>&1 | grep -v unsandboxed || true)
dpkg-deb -x "$tmp"/*.deb "$tmp/x"
tarball=$(find "$tmp/x" -name 'linux-source-*.tar.*' | head -n1)
[ -n "$tarball" ] || { log "$src_pkg holds no source tarball"; exit 1; }
mkdir "$tmp/src"
tar -xf "$tarball" -C "$tmp/src" --strip-components=1 --wildcards \
  '*/tools/sched_ext' '*/tools/lib' '*/tools/include' '*/tools/scripts' '*/tools/build' \
  '*/tools/bpf' '*/include/uapi' '*/scripts' '*/Makefile' '*/arch/x86/include' 2>/dev/null || true
log "building tools/sched_ext"
make -s -C "$tmp/src/tools/sched_ext" CLANG=clang-19 LLVM_STRIP=llvm-strip-19 \
  BPFTOOL="$(command -v bpftool)" VMLINUX_BTF="$vmlinux" -j"$(nproc)" >"$tmp/build.log" 2>&1 \
  || { tail -n 30 "$tmp/build.log" >&2; exit 1; }
mkdir -p "$out/bin.part"
find "$tmp/src/tools/sched_ext/build/bin" -maxdepth 1 -type f -executable -exec cp {} "$out/bin.part/" \;
rm -rf "$out/bin"; mv "$out/bin.part" "$out/bin"
log "built: $(ls "$out/bin" | tr '\n' ' ')"
