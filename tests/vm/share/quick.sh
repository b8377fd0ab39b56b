#!/bin/sh
# The runner's cheap poll (a shell, not Python: a Python start costs a second or two of the guest's CPU under TCG).
# Usage: quick.sh SERIAL   -> key=value lines
serial="$1"
dev=""
# As probe.py's data_device: the controller's namespace, or under native multipath the disk nvme<S>n<N> of the
# subsystem nvme-subsys<S> that links the controller, whose hidden path the controller holds as nvme<S>c<C>n<N>.
for f in /sys/class/nvme/*/serial; do
  [ -e "$f" ] && [ -n "$serial" ] || continue
  if [ "$(tr -d ' ' <"$f")" = "$serial" ]; then
    c="$(basename "$(dirname "$f")")"
    for n in /sys/class/nvme/"$c"/nvme*n*; do
      [ -e "$n" ] || continue
      name="$(basename "$n")"
      case "$name" in
        nvme*c*n*)
          s="$(echo "$name" | sed 's/^nvme\([0-9]*\)c[0-9]*n[0-9]*$/\1/')"
          head="$(echo "$name" | sed 's/^nvme\([0-9]*\)c[0-9]*n\([0-9]*\)$/nvme\1n\2/')"
          sub="/sys/class/nvme-subsystem/nvme-subsys$s"
          if [ -e "$sub/$c" ] && [ -d "$sub/$head" ] && [ -e "/dev/$head" ]; then dev="/dev/$head"; break; fi
          ;;
        *)
          if [ -e "/dev/$name" ]; then dev="/dev/$name"; break; fi
          ;;
      esac
    done
  fi
done
echo "boot_id=$(cat /proc/sys/kernel/random/boot_id)"
echo "system=$(systemctl is-system-running 2>/dev/null)"
echo "dify=$(systemctl is-active dify.service 2>/dev/null)"
echo "device=$dev"
mount="$(findmnt -n -o SOURCE --mountpoint /opt/dify-data 2>/dev/null)"
echo "mount=$mount"
# Whether this boot's dify-bootstrap is past its DIFY-PREPARED marker, i.e. looking for the volume (asked only while
# the volume is there but not mounted: a journal read costs the guest a second).
if [ -n "$dev" ] && [ -z "$mount" ]; then
  if journalctl -b 0 -u dify.service -q --no-pager 2>/dev/null | grep -q 'DIFY-PREPARED'; then echo "prepared=1"; fi
fi
exit 0
