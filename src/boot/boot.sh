#!/bin/bash
# Dify boot script for dify_ec2_stack (rendered by terraform-provider-dify, which fills the placeholders in double braces).
# It mounts the Dify data volume without ever formatting a disk that holds data, then runs Dify's Docker Compose
# release {{DIFY_VERSION}} with its data on that volume. No secret passes through Terraform: the ones Dify needs are
# generated here, on first boot, and kept on the data volume.
set -euo pipefail
exec > >(tee -a /var/log/dify-boot.log | logger -t dify-boot -s 2>/dev/console) 2>&1

DATA_VOLUME_ID="{{DATA_VOLUME_ID}}"
DATA_DIR=/opt/dify-data
DIFY_VERSION="{{DIFY_VERSION}}"
DEVICE_WAIT_SECONDS=300

fail() { echo "dify-boot: FAILED: $*"; exit 1; }

find_device() {
  # Nitro instances (t3, m6i...) expose EBS as NVMe; the serial is the volume id without its dash.
  local serial="${DATA_VOLUME_ID/-/}"
  for candidate in "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${serial}" /dev/sdf /dev/xvdf; do
    if [ -b "$candidate" ]; then readlink -f "$candidate"; return 0; fi
  done
  return 1
}

if [ -n "$DATA_VOLUME_ID" ]; then
  device=""
  for _ in $(seq 1 "$DEVICE_WAIT_SECONDS"); do
    device="$(find_device || true)"
    [ -n "$device" ] && break
    sleep 1
  done
  [ -n "$device" ] || fail "data volume $DATA_VOLUME_ID did not appear within ${DEVICE_WAIT_SECONDS}s"
  # Format only a device with no filesystem and no partition table: never one that holds data.
  if ! blkid -p "$device" >/dev/null 2>&1; then
    echo "dify-boot: $device ($DATA_VOLUME_ID) is blank; creating a filesystem"
    mkfs.ext4 -q -L dify-data "$device"
  fi
  uuid="$(blkid -s UUID -o value "$device")" || fail "no filesystem UUID on $device"
  mkdir -p "$DATA_DIR"
  grep -q "UUID=$uuid" /etc/fstab || echo "UUID=$uuid $DATA_DIR ext4 defaults,nofail 0 2" >> /etc/fstab
  mountpoint -q "$DATA_DIR" || mount "$DATA_DIR" || fail "mounting $device at $DATA_DIR"
fi

dnf install -y -q docker git
systemctl enable --now docker
if ! docker compose version >/dev/null 2>&1; then
  mkdir -p /usr/local/lib/docker/cli-plugins
  curl -fsSL -o /usr/local/lib/docker/cli-plugins/docker-compose \
    "https://github.com/docker/compose/releases/latest/download/docker-compose-linux-$(uname -m)"
  chmod +x /usr/local/lib/docker/cli-plugins/docker-compose
fi

# Dify's Compose files of the release tag, never its moving main branch.
if [ ! -d /opt/dify ]; then
  git clone --quiet --depth 1 --branch "$DIFY_VERSION" https://github.com/langgenius/dify.git /opt/dify
fi
cd /opt/dify/docker
mkdir -p "$DATA_DIR/volumes"
if [ ! -L volumes ]; then
  if [ -d volumes ]; then cp -an volumes/. "$DATA_DIR/volumes/"; rm -rf volumes; fi
  ln -s "$DATA_DIR/volumes" volumes
fi

# Secrets: made once, on the instance, kept on the data volume (never in Terraform state or user data).
if [ ! -s "$DATA_DIR/secret_key" ]; then
  umask 077
  openssl rand -base64 42 > "$DATA_DIR/secret_key"
fi
[ -f .env ] || cp .env.example .env
sed -i "s|^SECRET_KEY=.*|SECRET_KEY=$(cat "$DATA_DIR/secret_key")|" .env

docker compose up -d
echo "dify-boot: Dify $DIFY_VERSION started"
