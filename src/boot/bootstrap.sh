#!/bin/bash
# dify-bootstrap: run by dify.service at every boot (installed by terraform-provider-dify's cloud-config).
# Mounts the Dify data volume without ever formatting a disk that holds data, makes Dify's secrets once and keeps
# them on that volume, and starts Dify's Docker Compose release with every data path on the volume. Idempotent.
set -euo pipefail
LOG="${DIFY_LOG:-/var/log/dify-bootstrap.log}"
exec > >(tee -a "$LOG" | logger -t dify-bootstrap -s 2>"${DIFY_CONSOLE:-/dev/console}") 2>&1

SETTINGS="${DIFY_SETTINGS:-/etc/dify/dify.env}"
DATA_DIR="${DIFY_DATA_DIR:-/opt/dify-data}"
DEVICE_WAIT_SECONDS="${DIFY_DEVICE_WAIT_SECONDS:-300}"
# Tests run the disk step against stand-in devices under DIFY_DEV_ROOT (regular files, fake blkid/mkfs/mount).
DEV_ROOT="${DIFY_DEV_ROOT:-}"
FSTAB="${DIFY_FSTAB:-/etc/fstab}"
IMDS=http://169.254.169.254/latest

fail() {
  echo "dify-bootstrap: FAILED: $*"
  exit 1
}

# The settings terraform-provider-dify rendered (no secrets in them).
# shellcheck disable=SC1090
. "$SETTINGS"

imds_tag() {
  local token
  token="$(curl -fsS -X PUT "$IMDS/api/token" -H 'X-aws-ec2-metadata-token-ttl-seconds: 60')" || return 1
  curl -fsS -H "X-aws-ec2-metadata-token: $token" "$IMDS/meta-data/tags/instance/$1"
}

find_device() {
  # Nitro instances (t3, m6i...) expose EBS as NVMe; the serial is the volume id without its dash.
  local serial="${1/-/}" candidate
  for candidate in "$DEV_ROOT/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${serial}" "$DEV_ROOT/dev/sdf" "$DEV_ROOT/dev/xvdf"; do
    if [ -b "$candidate" ] || { [ -n "$DEV_ROOT" ] && [ -e "$candidate" ]; }; then
      readlink -f "$candidate"
      return 0
    fi
  done
  return 1
}

mount_data_volume() {
  local volume_id="$1" device="" uuid _
  for _ in $(seq 1 "$DEVICE_WAIT_SECONDS"); do
    device="$(find_device "$volume_id" || true)"
    [ -n "$device" ] && break
    sleep 1
  done
  [ -n "$device" ] || fail "data volume $volume_id did not appear within ${DEVICE_WAIT_SECONDS}s"
  # Format only a device with no filesystem and no partition table: never one that holds data.
  if ! blkid -p "$device" >/dev/null 2>&1; then
    echo "dify-bootstrap: $device ($volume_id) is blank; creating a filesystem"
    mkfs.ext4 -q -L dify-data "$device"
  fi
  uuid="$(blkid -s UUID -o value "$device")" || fail "no filesystem UUID on $device"
  [ -n "$uuid" ] || fail "no filesystem UUID on $device"
  mkdir -p "$DATA_DIR"
  grep -q "UUID=$uuid" "$FSTAB" || echo "UUID=$uuid $DATA_DIR ext4 defaults,nofail 0 2" >>"$FSTAB"
  mountpoint -q "$DATA_DIR" || mount "$DATA_DIR" || fail "mounting $device at $DATA_DIR"
}

# Secrets: made once with the kernel's random source, mode 0600 on the data volume, reused by every boot and every
# replacement instance. Never in user data, Terraform state, plans or logs.
make_secrets() {
  local file="$DATA_DIR/secrets/dify-secrets.env" name
  mkdir -p "$DATA_DIR/secrets"
  chmod 0700 "$DATA_DIR/secrets"
  touch "$file"
  chmod 0600 "$file"
  for name in SECRET_KEY DB_PASSWORD REDIS_PASSWORD SANDBOX_API_KEY PLUGIN_DAEMON_KEY PLUGIN_DIFY_INNER_API_KEY WEAVIATE_API_KEY; do
    grep -q "^$name=" "$file" || echo "$name=$(head -c 36 /dev/urandom | base64 | tr -d '/+=\n')" >>"$file"
  done
}

# Values Dify's Compose file reads under a second name; they must equal the generated ones.
derive_secrets() {
  local file="$DATA_DIR/secrets/derived.env"
  # shellcheck disable=SC1091
  . "$DATA_DIR/secrets/dify-secrets.env"
  : >"$file"
  chmod 0600 "$file"
  {
    echo "POSTGRES_PASSWORD=$DB_PASSWORD"
    echo "CODE_EXECUTION_API_KEY=$SANDBOX_API_KEY"
    echo "WEAVIATE_AUTHENTICATION_APIKEY_ALLOWED_KEYS=$WEAVIATE_API_KEY"
  } >>"$file"
}

# Passwords of external services, read at boot with the instance profile: they never pass through Terraform.
fetch_external_passwords() {
  local file="$DATA_DIR/secrets/external.env"
  : >"$file"
  chmod 0600 "$file"
  if [ -n "${DIFY_DB_PASSWORD_SECRET_ARN:-}" ]; then
    echo "DB_PASSWORD=$(aws secretsmanager get-secret-value --secret-id "$DIFY_DB_PASSWORD_SECRET_ARN" --query SecretString --output text)" >>"$file"
  fi
  if [ -n "${DIFY_REDIS_PASSWORD_SECRET_ARN:-}" ]; then
    echo "REDIS_PASSWORD=$(aws secretsmanager get-secret-value --secret-id "$DIFY_REDIS_PASSWORD_SECRET_ARN" --query SecretString --output text)" >>"$file"
  fi
  # dify.secret_env: KEY=ARN lines; each value is read from Secrets Manager.
  if [ -f "$SETTINGS.secret-env" ]; then
    local line
    while IFS= read -r line || [ -n "$line" ]; do
      case "$line" in '' | '#'*) continue ;; esac
      echo "${line%%=*}=$(aws secretsmanager get-secret-value --secret-id "${line#*=}" --query SecretString --output text)" >>"$file"
    done <"$SETTINGS.secret-env"
  fi
}

# Sets KEY=value in Dify's .env (replacing the line or appending it), from each KEY=value line of the files given.
apply_env() {
  local env_file="$1" line key
  shift
  for source in "$@"; do
    while IFS= read -r line || [ -n "$line" ]; do
      case "$line" in '' | '#'*) continue ;; esac
      key="${line%%=*}"
      grep -v "^${key}=" "$env_file" >"$env_file.new" || true
      printf '%s\n' "$line" >>"$env_file.new"
      mv "$env_file.new" "$env_file"
    done <"$source"
  done
  chmod 0600 "$env_file"
}

install_docker() {
  command -v docker >/dev/null || dnf install -y -q docker git
  systemctl enable --now docker
  if ! docker compose version >/dev/null 2>&1; then
    mkdir -p /usr/local/lib/docker/cli-plugins
    curl -fsSL -o /usr/local/lib/docker/cli-plugins/docker-compose \
      "https://github.com/docker/compose/releases/download/${DIFY_COMPOSE_VERSION}/docker-compose-linux-$(uname -m)"
    chmod +x /usr/local/lib/docker/cli-plugins/docker-compose
  fi
}

fetch_dify() {
  # The Compose files of the release tag, never the moving main branch. A new version is fetched beside the old.
  local dir="/opt/dify/$DIFY_VERSION"
  if [ ! -d "$dir/docker" ]; then
    git clone --quiet --depth 1 --branch "$DIFY_VERSION" https://github.com/langgenius/dify.git "$dir"
  fi
  ln -sfn "$dir" /opt/dify/current
  mkdir -p "$DATA_DIR/volumes"
  # Every data path under docker/volumes (db, redis, weaviate, app/storage, plugin_daemon, sandbox) on the volume.
  if [ ! -L "$dir/docker/volumes" ]; then
    if [ -d "$dir/docker/volumes" ]; then cp -an "$dir/docker/volumes/." "$DATA_DIR/volumes/"; fi
    rm -rf "$dir/docker/volumes"
    ln -s "$DATA_DIR/volumes" "$dir/docker/volumes"
  fi
}

main() {
  local volume_id="${DIFY_DATA_VOLUME_ID:-}"
  [ -n "$volume_id" ] || volume_id="$(imds_tag dify:data-volume || true)"
  if [ -n "$volume_id" ]; then
    mount_data_volume "$volume_id"
  else
    echo "dify-bootstrap: no data volume for this instance; data stays on the root volume"
    mkdir -p "$DATA_DIR"
  fi
  make_secrets
  derive_secrets
  fetch_external_passwords
  [ "${DIFY_SKIP_COMPOSE:-}" = "1" ] && return 0
  install_docker
  fetch_dify
  cd /opt/dify/current/docker
  [ -f .env ] || cp .env.example .env
  apply_env .env "$SETTINGS.compose" "$DATA_DIR/secrets/dify-secrets.env" "$DATA_DIR/secrets/derived.env" "$DATA_DIR/secrets/external.env"
  if [ -f /etc/dify/docker-compose.override.yaml ]; then cp /etc/dify/docker-compose.override.yaml docker-compose.override.yaml; fi
  docker compose up -d --remove-orphans
  echo "dify-bootstrap: Dify $DIFY_VERSION started"
}

main "$@"
