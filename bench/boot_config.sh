#!/usr/bin/env bash
# Boot-configuration study: bare QEMU with a busybox /init (`true`, then power off), ktstr's
# own settings as the baseline, one thing changed per row: machine type, CPU model, or words
# added to the kernel command line. Rows run round-robin so load drifts hit all alike. A
# boot past HANG_S seconds (default 120) counts as hung, a console with a panic as failed; neither is a candidate.
# Usage: bench/boot_config.sh [RUNS]   (KTSTR_ACCEL=kvm studies KVM where it works)
set -uo pipefail
source "$(dirname "$0")/lib.sh"
runs=${1:-3}
hang_s=${HANG_S:-120}

read_ktstr_settings --exec true
bare_initramfs "$work/true" "$work/true.cpio" '/bin/busybox true'
base_append=$qemu_append base_machine=$qemu_machine base_cpu=$qemu_cpu base_accel=$qemu_accel

# Each row: a name, then what it changes: machine=M, cpu=C, append=WORDS, accel=A, qemu=ARGS
# (more QEMU arguments), or entry=bzimage (boot the bzImage through its decompressor instead
# of ktstr's PVH ELF).
rows=(
  "baseline (ktstr's settings)|"
  "kernel entry: bzImage instead of PVH|entry=bzimage"
  "accel tcg,thread=multi (races: reliability.sh)|accel=tcg,thread=multi"
  "machine q35|machine=q35"
  "machine microvm, with its PIT, PIC and RTC|machine=microvm,pit=on,pic=on,rtc=on,isa-serial=on"
  "cpu qemu64|cpu=qemu64"
  "+ mitigations=off|append=mitigations=off"
  "+ tsc=reliable|append=tsc=reliable"
  "+ no_timer_check|append=no_timer_check"
  "+ i8042.noaux i8042.nokbd i8042.nopnp|append=i8042.noaux i8042.nokbd i8042.nopnp"
  "+ all four words above|append=mitigations=off tsc=reliable no_timer_check i8042.noaux i8042.nokbd i8042.nopnp"
  "+ three serial ports (ktstr's channel to the guest)|qemu=-chardev null,id=p1 -serial chardev:p1 -chardev null,id=p2 -serial chardev:p2 -chardev null,id=p3 -serial chardev:p3"
  "+ virtio-serial-pci, three ports (the channel before)|qemu=-device virtio-serial-pci,id=vser,max_ports=4 -chardev null,id=p1 -device virtserialport,bus=vser.0,chardev=p1,name=a -chardev null,id=p2 -device virtserialport,bus=vser.0,chardev=p2,name=b -chardev null,id=p3 -device virtserialport,bus=vser.0,chardev=p3,name=c"
)

one_boot() {  # one_boot INDEX: sets the row's settings, boots once, records time or status
  local i=$1 change=${rows[$1]#*|}
  qemu_machine=$base_machine qemu_cpu=$base_cpu qemu_append=$base_append
  qemu_accel=$base_accel boot_kernel= extra=
  case $change in
    entry=bzimage) boot_kernel=$kernel ;;
    accel=*) qemu_accel=${change#accel=} ;;
    machine=*) qemu_machine=${change#machine=} ;;
    cpu=*) qemu_cpu=${change#cpu=} ;;
    append=*) qemu_append="$base_append ${change#append=}" ;;
    qemu=*) extra=${change#qemu=} ;;
  esac
  local t0 rc; t0=$(now)
  timeout "$hang_s" bash -c "$(declare -f bare_boot); $(declare -p qemu_machine qemu_accel qemu_cpu qemu_smp qemu_mem qemu_append qemu_kernel boot_kernel work); bare_boot '$work/true.cpio' $extra" >/dev/null 2>&1
  rc=$?
  if [ $rc = 124 ]; then echo hung >>"$work/row$i.status"
  elif grep -q 'Kernel panic' "$work/bare.log" || [ $rc != 0 ]; then echo failed >>"$work/row$i.status"
  else echo "$(now) - $t0" | bc >>"$work/row$i.t"; fi
}

for _ in $(seq "$runs"); do
  for i in "${!rows[@]}"; do one_boot "$i"; done
done

echo "kernel $kernel; baseline: -kernel $qemu_kernel -accel $base_accel -cpu $base_cpu -smp $qemu_smp -m $qemu_mem ${base_machine:+-machine $base_machine }-append '$base_append'"
base=$(median <"$work/row0.t" 2>/dev/null)
for i in "${!rows[@]}"; do
  name=${rows[$i]%%|*}
  bad=$(sort "$work/row$i.status" 2>/dev/null | uniq -c | tr -s ' ' | tr '\n' ',')
  if [ -s "$work/row$i.t" ]; then
    m=$(median <"$work/row$i.t")
    printf '%-56s median %6.2f s  ratio %.3f  %s\n' "$name" "$m" "$(ratio "$m" "${base:-$m}")" "${bad:+NOT SAFE:$bad}"
  else
    printf '%-56s NOT SAFE: %s\n' "$name" "$bad"
  fi
done
