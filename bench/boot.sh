#!/usr/bin/env bash
# Boot-to-payload against bare QEMU with the same accelerator settings, memory, kernel command
# line and -kernel ktstr chose (read from its debug log), so that ratio is the harness's own
# cost; and against bare QEMU booting the kernel's bzImage as is (`-kernel vmlinuz`), which is
# what a user would run by hand (ktstr boots the PVH ELF it unpacked from that bzImage):
#   ktstr shell --exec true                 vs  a busybox /init that runs `true`
#   ktstr shell -i fio --exec 'fio --version'  vs  the same fio closure, uncompressed, with
#                                               a busybox /init running `fio --version`
#   and, when virtme-ng is installed, `vng` on the same kernel with the same commands.
# Each run's phases (from ktstr's debug log) show where ktstr's time goes.
# Usage: bench/boot.sh [RUNS]   (KTSTR: the ktstr binary, default build/ktstr)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
runs=${1:-5}

echo "kernel $kernel"
bare_initramfs "$work/true" "$work/true.cpio" '/bin/busybox true'
"$ktstr" initramfs -i fio -o "$work/fio-ref.cpio"
mkdir "$work/fio" && (cd "$work/fio" && cpio -idm --quiet <"$work/fio-ref.cpio")
bare_initramfs "$work/fio" "$work/fio.cpio" '/include-files/fio --version'

# ktstr_run TIMES PHASES ARGS...: one timed ktstr run; its phases line goes to PHASES.
ktstr_run() {
  local times=$1 phases=$2; shift 2
  timed "$times" "$ktstr" shell "$@" >/dev/null 2>"$work/ktstr.err" \
    || { cat "$work/ktstr.err" >&2; echo "ktstr failed" >&2; exit 1; }
  grep -oE 'phases: .*' "$work/ktstr.err" >>"$phases" || true
}

pair() {  # pair NAME BARE_CPIO KTSTR_ARGS...
  local name=$1 cpio=$2; shift 2
  read_ktstr_settings "$@"
  : >"$work/bare.t"; : >"$work/bz.t"; : >"$work/ours.t"; : >"$work/phases"
  ktstr_run /dev/null /dev/null "$@"  # warms the caches: a repeat run is measured
  # Each pair of bare and ktstr runs back to back, in turns first (ABBA), so that the drift
  # of the machine's speed over minutes falls on both alike; the bzImage run comes after.
  for i in $(seq "$runs"); do
    if (( i % 2 )); then
      timed "$work/bare.t" bare_boot "$cpio"
      ktstr_run "$work/ours.t" "$work/phases" "$@"
    else
      ktstr_run "$work/ours.t" "$work/phases" "$@"
      timed "$work/bare.t" bare_boot "$cpio"
    fi
    boot_kernel=$kernel timed "$work/bz.t" bare_boot "$cpio"
  done
  local bare bz ours
  bare=$(median <"$work/bare.t"); bz=$(median <"$work/bz.t"); ours=$(median <"$work/ours.t")
  echo "== $name"
  echo "  ktstr's settings: -kernel $qemu_kernel -accel $qemu_accel -cpu $qemu_cpu -smp $qemu_smp -m $qemu_mem -append '$qemu_append'"
  echo "  bare qemu, ktstr's settings (s): $(times_of "$work/bare.t")"
  echo "  bare qemu, -kernel $kernel (s): $(times_of "$work/bz.t")"
  echo "  ktstr (s): $(times_of "$work/ours.t")"
  echo "  ktstr's last run, $(tail -n1 "$work/phases")"
  printf '  median bare %.2f s, ktstr %.2f s: ratio %.3f (the harness'"'"'s own cost; target <= 1.05)\n' \
    "$bare" "$ours" "$(ratio "$ours" "$bare")"
  # Each ktstr run against the bare run beside it: the machine's speed drifts over minutes,
  # and a pair shares most of it.
  printf '  median of the %d paired ratios (ktstr run / bare run beside it): %.3f\n' "$runs" \
    "$(paste "$work/ours.t" "$work/bare.t" | awk '{print $1 / $2}' | median)"
  printf '  median bare bzImage %.2f s, ktstr %.2f s: ratio %.3f (against booting the bzImage by hand; target <= 1.10)\n' \
    "$bz" "$ours" "$(ratio "$ours" "$bz")"
}

pair "ktstr shell --exec true" "$work/true.cpio" --exec true
pair "ktstr shell -i fio --exec 'fio --version'" "$work/fio.cpio" -i fio --exec 'fio --version'

if ! command -v vng >/dev/null; then
  echo "== virtme-ng: skipped, vng is not installed (Debian's package: apt-get install -t trixie virtme-ng)"
  exit 0
fi
tcg=; [[ $qemu_accel == tcg* ]] && tcg=1
for cmd in true 'fio --version'; do
  : >"$work/vng.t"; : >"$work/ours.t"
  for _ in $(seq "$runs"); do
    timed "$work/vng.t" vng --run "$kernel" ${tcg:+--disable-kvm} --exec "$cmd" >/dev/null 2>&1 \
      || echo "vng failed on '$cmd'" >&2
    ktstr_run "$work/ours.t" /dev/null -i fio --exec "$cmd"
  done
  vng=$(median <"$work/vng.t"); ours=$(median <"$work/ours.t")
  printf "== virtme-ng --exec '%s': median vng %.2f s, ktstr %.2f s, ktstr %.1fx faster (target >= 5)\n" \
    "$cmd" "$vng" "$ours" "$(ratio "$vng" "$ours")"
done
