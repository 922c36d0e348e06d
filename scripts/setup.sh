#!/usr/bin/env bash
# One-time set-up for ktstr on Debian 12 (run as root; safe to repeat).
#   1. adds bookworm-backports, trixie and trixie-backports, pinned low, reusing
#      the URIs of the Debian sources this machine already has;
#   2. installs the packages the build, the tests and the VM need;
#   3. fetches the newest Linux 7.x kernel image from trixie-backports into the
#      kernel cache (never installs it as the host kernel) and extracts vmlinux;
#      also bookworm's own 6.1 kernel (no sched_ext), for the tests that need one;
#   4. builds the kernel's example sched_ext schedulers into the cache;
#   5. configures and builds ktstr with CMake.
# Environment: KTSTR_CACHE_DIR (default ~/.cache/ktstr), BUILD_DIR (default build).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cache=${KTSTR_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ktstr}
build=${BUILD_DIR:-$here/build}
log() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (it installs packages)"

# --- 1. apt sources ----------------------------------------------------------
debian_uri() {
  # The URI that serves the "bookworm" suite, from deb822 or one-line sources.
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk 'BEGIN{RS=""} /Suites:[^\n]*bookworm([ \n]|$)/ && !/security/ {
           if (match($0, /URIs:[ \t]*[^ \t\n]+/)) {
             s = substr($0, RSTART, RLENGTH); sub(/URIs:[ \t]*/, "", s); print s; exit } }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i < NF; i++)
           if ($i ~ /^[a-z]+:\/\// && $(i+1) == "bookworm") { print $i; exit } }' "$f"
  done
}

newer=/etc/apt/sources.list.d/ktstr-newer-suites.sources
pin=/etc/apt/preferences.d/ktstr-newer-suites
if [ ! -f "$newer" ]; then
  uri=$(debian_uri | head -n1)
  [ -n "$uri" ] || die "no apt source for bookworm found to reuse for the newer suites"
  log "adding bookworm-backports, trixie, trixie-backports from the existing Debian source"
  cat >"$newer" <<SRC
Types: deb
URIs: $uri
Suites: bookworm-backports trixie trixie-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  rm -f /var/lib/ktstr-apt-updated
fi
if [ ! -f "$pin" ]; then
  # trixie is only a source of files we download, never of installs by accident.
  cat >"$pin" <<'PIN'
Package: *
Pin: release n=bookworm-backports
Pin-Priority: 100

Package: *
Pin: release n=trixie
Pin-Priority: 1

Package: *
Pin: release n=trixie-backports
Pin-Priority: 1
PIN
fi

stamp=/var/lib/ktstr-apt-updated
if [ ! -f "$stamp" ] || [ -n "$(find "$stamp" -mmin +720 2>/dev/null)" ]; then
  log "apt-get update"
  apt-get update -qq
  touch "$stamp"
fi

# --- 2. packages -------------------------------------------------------------
pkgs=(build-essential cmake ninja-build pkg-config git
      qemu-system-x86 busybox-static cpio zstd lz4 xz-utils bzip2 file
      libelf-dev zlib1g-dev libzstd-dev liblz4-dev liblzma-dev libfmt-dev nlohmann-json3-dev libboost1.81-dev
      clang-19 llvm-19 libxml2-utils
      fio stress-ng rt-tests bc)
bpo_pkgs=(libcatch2-dev libbpf-dev bpftool)
missing=()
for p in "${pkgs[@]}" "${bpo_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
  apt-get install -y -qq --no-install-recommends -t bookworm-backports "${bpo_pkgs[@]}" >/dev/null
fi

# --- 3. a sched_ext kernel ---------------------------------------------------
kdir=$cache/kernels
mkdir -p "$kdir"
kpkg=$(apt-cache search --names-only '^linux-binary-7\.[0-9.]+.*-amd64$' 2>/dev/null \
       | awk '{print $1}' | grep -v -- '-rt-' | grep -v -- '-cloud-' | sort -V | tail -n1)
[ -n "$kpkg" ] || die "no linux-binary-7.*-amd64 package found in trixie-backports"
kver=${kpkg#linux-binary-}
if [ ! -f "$kdir/$kver/vmlinuz" ]; then
  # The image package holds the vmlinuz; its config sits in linux-base-<ver>.
  log "fetching $kpkg and linux-base-$kver (neither is installed)"
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  chmod 755 "$tmp"
  (cd "$tmp" && apt-get download -qq "$kpkg" "linux-base-$kver" 2>&1 | grep -v unsandboxed || true)
  for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$tmp/x"; done
  vmlinuz=$(find "$tmp/x" \( -name vmlinuz -o -name 'vmlinuz-*' \) -type f | head -n1)
  config=$(find "$tmp/x" \( -name config -o -name 'config-*' \) -type f -path '*modules*' | head -n1)
  [ -n "$vmlinuz" ] || die "$kpkg holds no vmlinuz"
  rm -rf "$kdir/$kver.part"; mkdir -p "$kdir/$kver.part"
  cp "$vmlinuz" "$kdir/$kver.part/vmlinuz"
  if [ -n "$config" ]; then cp "$config" "$kdir/$kver.part/config"; fi
  rm -rf "$kdir/$kver"
  mv "$kdir/$kver.part" "$kdir/$kver"
  rm -rf "$tmp"; trap - EXIT
fi
ln -sfn "$kver" "$kdir/default"
if [ ! -f "$kdir/$kver/vmlinux" ]; then
  log "extracting vmlinux (with BTF) from the vmlinuz"
  bash "$here/scripts/extract-vmlinux.sh" "$kdir/$kver/vmlinuz" "$kdir/$kver/vmlinux.part"
  mv "$kdir/$kver/vmlinux.part" "$kdir/$kver/vmlinux"
fi
log "kernel: $kdir/$kver/vmlinuz"

# --- 3b. a kernel without sched_ext: bookworm's own 6.1 ------------------------
# For the tests that scheduler tests skip on it. Never the default kernel: `default` stays on
# the 7.x one. The guest needs no module from it: its ports are serial ports, built in.
oldpkg=$(apt-cache search --names-only '^linux-image-6\.1\.[0-9]+-[0-9]+-amd64$' 2>/dev/null \
         | awk '{print $1}' | sort -V | tail -n1)
if [ -z "$oldpkg" ]; then
  log "no linux-image-6.1.*-amd64 in bookworm; the old-kernel test will be skipped"
elif [ ! -f "$kdir/${oldpkg#linux-image-}/vmlinuz" ]; then
  oldver=${oldpkg#linux-image-}
  log "fetching $oldpkg (not installed): a kernel without sched_ext"
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  chmod 755 "$tmp"
  (cd "$tmp" && apt-get download -qq "$oldpkg" 2>&1 | grep -v unsandboxed || true)
  dpkg-deb -x "$tmp"/"$oldpkg"_*.deb "$tmp/x" || die "cannot unpack $oldpkg"
  part=$kdir/$oldver.part
  rm -rf "$part"; mkdir -p "$part"
  cp "$tmp/x/boot/vmlinuz-$oldver" "$part/vmlinuz" || die "$oldpkg holds no vmlinuz-$oldver"
  cp "$tmp/x/boot/config-$oldver" "$part/config" || die "$oldpkg holds no config-$oldver"
  rm -rf "$kdir/$oldver"
  mv "$part" "$kdir/$oldver"
  rm -rf "$tmp"; trap - EXIT
  log "kernel without sched_ext: $kdir/$oldver/vmlinuz"
fi

# --- 4. the kernel's example sched_ext schedulers -----------------------------
if [ "${KTSTR_SKIP_SCX:-0}" != 1 ]; then
  bash "$here/scripts/build-scx-examples.sh" "$cache" "$kdir/$kver/vmlinux"
fi

# --- 5. build ----------------------------------------------------------------
cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DKTSTR_VMLINUX="$kdir/$kver/vmlinux" >/dev/null
cmake --build "$build"
log "done: $build/ktstr"
