# Shared by the bench scripts: timing, medians, the ktstr binary, bare QEMU boots.
# Each script compares against a baseline it measures itself, in the same invocation.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ktstr=${KTSTR:-$here/build/ktstr}
[ -x "$ktstr" ] || { echo "no ktstr binary at $ktstr (build first, or set KTSTR)" >&2; exit 2; }
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR) print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
ratio() { echo "$1 / $2" | bc -l; }
# timed FILE CMD...: appends CMD's wall time in seconds to FILE; returns CMD's status.
timed() {
  local file=$1 t0 rc; shift
  t0=$(now); "$@"; rc=$?
  echo "$(now) - $t0" | bc >>"$file"
  return $rc
}
times_of() { tr '\n' ' ' <"$1"; }

# Debug lines (the QEMU command line, the phases) at default settings: -v would also
# switch on the full kernel log, which costs boot time under TCG.
export KTSTR_LOG=debug KTSTR_ACCEL=${KTSTR_ACCEL:-tcg}

# The settings ktstr chose, read from its own log ("running qemu-system-x86_64 ..."):
# sets qemu_kernel (what -kernel got: the PVH ELF ktstr unpacked, or the bzImage),
# qemu_accel, qemu_machine, qemu_cpu, qemu_smp, qemu_mem and qemu_append.
read_ktstr_settings() {
  local line
  "$ktstr" shell "$@" >/dev/null 2>"$work/settings.log" || true
  line=$(grep -m1 'running qemu-system' "$work/settings.log") \
    || { cat "$work/settings.log" >&2; echo "ktstr printed no QEMU command line" >&2; exit 2; }
  qemu_kernel=$(sed -nE 's/.* -kernel ([^ ]+) .*/\1/p' <<<"$line")
  qemu_accel=$(sed -nE 's/.* -accel ([^ ]+) .*/\1/p' <<<"$line")
  qemu_cpu=$(sed -nE 's/.* -cpu ([^ ]+) .*/\1/p' <<<"$line")
  qemu_smp=$(sed -nE 's/.* -smp ([^ ]+) .*/\1/p' <<<"$line")
  qemu_mem=$(sed -nE 's/.* -m ([^ ]+) .*/\1/p' <<<"$line")
  qemu_machine=$(sed -nE 's/.* -machine ([^ ]+) .*/\1/p' <<<"$line")
  qemu_append=$(sed -nE 's/.* -append (.*) -chardev [a-z]+,id=con.*/\1/p' <<<"$line")
  [ -n "$qemu_append" ] || { echo "cannot read the kernel command line from: $line" >&2; exit 2; }
}

# bare_initramfs DIR OUT CMD: DIR's tree with a busybox /init that runs CMD and powers off.
bare_initramfs() {
  local dir=$1 out=$2 cmd=$3
  mkdir -p "$dir/bin"
  [ -e "$dir/bin/busybox" ] || cp /bin/busybox "$dir/bin/busybox"
  rm -f "$dir/init"
  printf '#!/bin/busybox sh\n%s\n/bin/busybox poweroff -f\n' "$cmd" >"$dir/init"
  chmod 755 "$dir/init"
  (cd "$dir" && find . | LC_ALL=C sort | cpio -o -H newc --quiet >"$out")
}

# bare_boot INITRAMFS [EXTRA QEMU ARGS...]: one boot with ktstr's settings, console to a file;
# $boot_kernel, when set, replaces ktstr's -kernel (the bzImage, for the user's bare baseline).
bare_boot() {
  local initrd=$1; shift
  qemu-system-x86_64 -nodefaults -no-user-config -display none -no-reboot \
    ${qemu_machine:+-machine "$qemu_machine"} -accel "$qemu_accel" -cpu "$qemu_cpu" \
    -smp "$qemu_smp" -m "$qemu_mem" -kernel "${boot_kernel:-$qemu_kernel}" -initrd "$initrd" -append "$qemu_append" \
    -chardev file,id=con,path="$work/bare.log" -serial chardev:con "$@"
}

kernel=$("$ktstr" kernel list | head -n1 | sed "s/  (chosen: .*//")  # the one `shell` boots
